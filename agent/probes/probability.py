"""The variable-probability analysis (docs/science.md §2) and its tabular simulation.

Each cell's cue responses are z-scored across the three cues (10%, 50%, 90%). Two
Mann–Whitney tests classify it: the 50% response not different from the 90% one but
different from the 10% one → optimistic; not different from the 10% one but different from
the 90% one → pessimistic; anything else → middle. Distributional TD predicts both optimistic
and pessimistic cells at once; classical TD predicts all cells alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu

from .tabular import (
    TabularTask,
    cell_taus,
    train_classical_td,
    train_distributional_td,
)

CLASSES = ("pessimistic", "middle", "optimistic")
REQUIRED = ("cell", "cue_probability", "response")


def classify_cells(table: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """One row per cell: z-scored mean response per cue, both p-values, and the class.

    ``table`` needs columns ``cell, cue_probability, response`` (``trial`` optional) and three
    cue probabilities; they are taken as low < mid < high.
    """
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise ValueError(f"cue table lacks columns {missing}; expected {list(REQUIRED)}")
    levels = np.sort(table["cue_probability"].unique())
    if levels.size != 3:
        raise ValueError(f"expected three cue probabilities, got {levels.tolist()}")
    low, mid, high = levels
    rows = []
    for cell, g in table.groupby("cell", sort=True):
        r = g["response"].to_numpy(dtype=np.float64)
        sd = r.std()
        z = (r - r.mean()) / (sd if sd > 0 else 1.0)
        cue = g["cue_probability"].to_numpy()
        zl, zm, zh = (z[cue == lvl] for lvl in (low, mid, high))
        if min(zl.size, zm.size, zh.size) == 0:
            raise ValueError(f"cell {cell} lacks trials for one of the cues {levels.tolist()}")
        p_mh = float(mannwhitneyu(zm, zh, alternative="two-sided").pvalue)
        p_ml = float(mannwhitneyu(zm, zl, alternative="two-sided").pvalue)
        if p_mh > alpha and p_ml <= alpha:
            kind = "optimistic"
        elif p_ml > alpha and p_mh <= alpha:
            kind = "pessimistic"
        else:
            kind = "middle"
        rows.append(
            {
                "cell": cell,
                "z_low": float(zl.mean()),
                "z_mid": float(zm.mean()),
                "z_high": float(zh.mean()),
                "p_mid_vs_high": p_mh,
                "p_mid_vs_low": p_ml,
                "class": kind,
            }
        )
    return pd.DataFrame(rows)


def count_classes(table_or_classified: pd.DataFrame, alpha: float = 0.05) -> dict[str, int]:
    """Number of pessimistic, middle and optimistic cells (classifies a raw cue table first)."""
    df = table_or_classified
    if "class" not in df.columns:
        df = classify_cells(df, alpha)
    counts = df["class"].value_counts()
    return {name: int(counts.get(name, 0)) for name in CLASSES}


def cue_table(
    cue_errors: np.ndarray,
    cue_probabilities: np.ndarray,
    *,
    trials: int | str = "recorded",
    response_noise: float | str = "recorded",
    scale: float = 1.0,
    seed: int | np.random.Generator = 0,
) -> pd.DataFrame:
    """Noisy cue responses ``cell, cue_probability, response, trial`` around ``cue_errors``
    [N, C] (each cell's TD error at each cue's onset).

    ``response_noise="recorded"``: each cell's trial SD is the recorded cells' median noise
    ratio ρ times the SD of its own mean responses across the cues (the calibration of
    :mod:`agent.probes.noise`; no variable-probability recordings are at hand, so the
    variable-magnitude cells' ρ is used); a number: ``response_noise × scale``.
    ``trials="recorded"``: the recorded cells' median trial count per condition.
    """
    from .noise import noise_sd, parse_noise, parse_trials, trial_counts

    errors = np.asarray(cue_errors, dtype=float)
    n_cells, n_cues = errors.shape
    n_trials = int(trial_counts(parse_trials(trials), n_cues)[0])
    sd = noise_sd(errors, parse_noise(response_noise), scale)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    resp = errors[:, :, None] + sd[:, None, None] * rng.standard_normal((n_cells, n_cues, n_trials))
    return pd.DataFrame(
        {
            "cell": np.repeat(np.arange(n_cells), n_cues * n_trials),
            "cue_probability": np.tile(np.repeat(cue_probabilities, n_trials), n_cells),
            "response": resp.ravel(),
            "trial": np.tile(np.arange(n_cues * n_trials), n_cells),
        }
    )


def simulate_probability_cells(
    kind: str = "distributional",
    *,
    n_cells: int = 40,
    trials: int | str = "recorded",
    response_noise: float | str = "recorded",
    task_kwargs: Mapping[str, Any] | None = None,
    train_kwargs: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Cue responses of a tabular population trained on the variable-probability task.

    A cell's response to cue c is its TD error at cue onset, γ·Vᵢ(cue c) − Vᵢ(last ITI
    state), plus Gaussian noise (:func:`cue_table`: by default calibrated to the recorded
    cells; a number is in reward units). ``kind`` is ``distributional`` (expectile rule, τ
    evenly spaced) or ``classical``. Returns the tidy table ``cell, cue_probability,
    response, trial``.

    The task is the environment's own (``task_kwargs`` override it): the outcome comes 2 s
    after cue onset, as in the lab. Measured (docs/results.md): with that delay the
    distributional population still has both optimistic and pessimistic cells, but which
    class a cell lands in follows its own τ much less than without the delay
    (``task_kwargs=dict(cue_steps=1, delay_steps=0, iti_steps=1)``), since each bootstrap
    from sampled expectiles reshapes the upstream code.
    """
    from ..envs.lab_tasks import VARIABLE_PROBABILITY_ID, VariableProbabilityTask

    kwargs = dict(task_kwargs or {})
    env = VariableProbabilityTask(**kwargs)
    task = TabularTask.from_env(VARIABLE_PROBABILITY_ID, **kwargs)
    tk = {"gamma": 0.95, **dict(train_kwargs or {})}
    if kind == "distributional":
        pop = train_distributional_td(task, cell_taus(n_cells), seed=seed, **tk)
    elif kind == "classical":
        pop = train_classical_td(task, n_cells, seed=seed, **tk)
    else:
        raise ValueError(f"kind must be 'distributional' or 'classical', got {kind!r}")
    gamma = tk["gamma"]
    iti = (
        pop.values[task.sequences[0, task.cue_step - 1]] if task.cue_step > 0 else np.zeros(n_cells)
    )
    cue_err = np.stack([gamma * pop.cue_values(c) - iti for c in range(env.n_cues)], axis=1)
    return cue_table(
        cue_err, np.asarray(env.cue_probabilities, float), trials=trials,
        response_noise=response_noise, scale=float(env.reward_size), seed=seed + 1,
    )  # fmt: skip
