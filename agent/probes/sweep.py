"""How the paper's statistics degrade with response noise and trial count (docs/science.md §6).

Every population is given by its noise-free mean responses [N, K] on a utility axis [K].
For each noise level ρ (each unit's trial SD relative to the SD of its own mean responses
across magnitudes, the quantity measured on the recorded cells by :mod:`agent.probes.noise`)
noisy trials are drawn and the cross-validated statistics of docs/science.md §3 computed:

- split-half reliability r(RP_A, RP_B), median over splits, and its median p;
- cross-validated optimism r(τ_B, RP_A), median over splits, and its median p;
- the spread of the all-trials reversal points (SD relative to the reward SD), and its ratio
  to a classical reference population's spread at the same noise.

A population "shows the signature" at a noise level when both median p's are below 0.01 and
both r's are positive, as for the recorded cells. This is a descriptive summary of the
median over splits and draws, not a test and not a detection probability: those come from
the detection study (:mod:`agent.probes.detection`, ``dopa-probe study=``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..core.progress import progress
from .noise import noise_sd, recorded_noise, trial_counts
from .recording import Recording

#: Noise levels ρ of the default sweep (the recorded median is about 1).
DEFAULT_LEVELS = (0.01, 0.03, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0)
SIGNATURE_P = 0.01


@dataclass(frozen=True)
class MeanPopulation:
    """Noise-free mean responses of a population and the axis they are analysed on."""

    mean: np.ndarray  # [N, K]
    axis: np.ndarray  # [K] utility of each magnitude
    magnitudes: np.ndarray  # [K]
    reward_sd: float  # SD of the outcome distribution on the axis


#: the statistics whose range over draws the noise sweep records (its figure's error bars)
SPREAD_KEYS = ("split_half_r", "tau_rp_r", "rp_sd_rel_reward_sd")


def noisy_statistics(
    pop: MeanPopulation,
    noise: float | str,
    *,
    trials: int | str | Sequence[int] = "recorded",
    n_splits: int = 50,
    draws: int = 3,
    seed: int = 0,
    spread: bool = False,
) -> dict[str, float]:
    """Cross-validated statistics of ``pop`` at noise ``noise``: the median over ``draws``
    independent noisy recordings (one draw of 25-40 units varies a lot near ρ = 1);
    ``spread=True`` adds ``<key>_min`` / ``<key>_max`` over the draws for ``SPREAD_KEYS``.

    ``noise``: ρ (a number: SD = ρ × each unit's SD of its mean responses) or "recorded".
    """
    rows = [
        _one_draw(pop, noise, trials, n_splits, np.random.default_rng([seed, d]))
        for d in range(draws)
    ]
    out = {key: float(np.median([r[key] for r in rows])) for key in rows[0]}
    if spread:  # the range over draws: the noise sweep's error bars
        for key in SPREAD_KEYS:
            values = [r[key] for r in rows]
            out[f"{key}_min"], out[f"{key}_max"] = float(np.min(values)), float(np.max(values))
    return out


def _one_draw(
    pop: MeanPopulation,
    noise: float | str,
    trials: int | str | Sequence[int],
    n_splits: int,
    rng: np.random.Generator,
) -> dict[str, float]:
    """One noisy recording of ``pop`` (:meth:`Recording.with_counts`), its all-trials reversal
    points and ``n_splits`` random splits of it (the batched kernel)."""
    counts = trial_counts(trials, pop.mean.shape[1])
    sd = noise_sd(pop.mean, noise, per_unit=True)
    recording = Recording.with_counts(pop.mean, counts, sd, pop.axis, rng)
    rps = recording.all_trials(rng)[0][0]
    halves = recording.repeated(n_splits).split(rng).analyse(rng)
    rp_sd = float(np.std(rps, ddof=1))

    def med(x: np.ndarray) -> float:
        x = x[np.isfinite(x)]
        return float(np.median(x)) if x.size else float("nan")

    return {
        "split_half_r": med(halves.split_half_r),
        "split_half_p": med(halves.split_half_p),
        "tau_rp_r": med(halves.tau_rp_r),
        "tau_rp_p": med(halves.tau_rp_p),
        "rp_sd_rel_reward_sd": rp_sd / pop.reward_sd,
    }


def shows_signature(row: Mapping[str, Any]) -> bool:
    """Reliable and optimistic like the recorded cells: both median p < 0.01, both r > 0."""
    return bool(
        row["split_half_r"] > 0
        and row["tau_rp_r"] > 0
        and row["split_half_p"] < SIGNATURE_P
        and row["tau_rp_p"] < SIGNATURE_P
    )


def noise_sweep(
    populations: Mapping[str, MeanPopulation],
    *,
    levels: Sequence[float] = DEFAULT_LEVELS,
    references: Mapping[str, str] | None = None,
    trials: int | str | Sequence[int] = "recorded",
    n_splits: int = 50,
    draws: int = 3,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per (population, noise level ρ) with :func:`noisy_statistics` and the
    ``spread_ratio`` to ``references[name]`` (a classical population of the same sweep) at
    that level. The recorded median ρ is added to ``levels``."""
    rho = recorded_noise().ratio
    grid = sorted({float(x) for x in levels} | {rho})
    rows = []
    cells = [(name, pop, i, x) for name, pop in populations.items() for i, x in enumerate(grid)]
    for name, pop, i, level in progress(cells, "noise sweep", unit="level"):
        stats = noisy_statistics(
            pop, level, trials=trials, n_splits=n_splits, draws=draws, seed=seed + i, spread=True
        )
        rows.append({"population": name, "noise": level, "is_recorded_level": level == rho,
                     **stats})  # fmt: skip
    out = pd.DataFrame(rows)
    out["signature"] = [shows_signature(r) for r in out.to_dict("records")]
    for suffix in ("", "_min", "_max"):
        out[f"spread_ratio{suffix}"] = np.nan
    for name, ref in (references or {}).items():
        mine = out["population"] == name
        base = out[out["population"] == ref].set_index("noise")["rp_sd_rel_reward_sd"]
        base_at = base.loc[out.loc[mine, "noise"]].to_numpy()
        # the median ratio, and the range of this population's draws over the reference median
        for suffix in ("", "_min", "_max"):
            spread = out.loc[mine, f"rp_sd_rel_reward_sd{suffix}"].to_numpy()
            out.loc[mine, f"spread_ratio{suffix}"] = spread / base_at
    return out


def signature_threshold(sweep: pd.DataFrame, name: str) -> float | None:
    """The largest noise ρ up to which ``name`` shows the signature at every level (None if
    it does not at the lowest level)."""
    rows = sweep[sweep["population"] == name].sort_values("noise")
    best = None
    for row in rows.to_dict("records"):
        if not row["signature"]:
            break
        best = float(row["noise"])
    return best


def trials_needed(
    distributional: MeanPopulation,
    classical: MeanPopulation,
    *,
    noise: float | str = "recorded",
    counts: Sequence[int] = (5, 10, 20, 40, 80, 160, 320),
    n_splits: int = 50,
    draws: int = 3,
    seed: int = 0,
) -> dict[str, Any]:
    """Smallest trials per magnitude at which, at ``noise``, the distributional population
    shows the signature and the classical one does not (None if none of ``counts`` does)."""
    rows = []
    for i, n in progress(list(enumerate(counts)), "trials needed", unit="count"):
        kw: dict[str, Any] = {
            "trials": int(n),
            "n_splits": n_splits,
            "draws": draws,
            "seed": seed + i,
        }
        d = noisy_statistics(distributional, noise, **kw)
        c = noisy_statistics(classical, noise, **kw)
        rows.append({"trials": int(n), "distributional": d, "classical": c,
                     "told_apart": shows_signature(d) and not shows_signature(c)})  # fmt: skip
    needed = next((r["trials"] for r in rows if r["told_apart"]), None)
    return {"trials_needed": needed, "noise": noise, "rows": rows}


def recorded_point(
    result: Mapping[str, Any], sweep: pd.DataFrame, reference: str
) -> dict[str, Any]:
    """The recorded cells on the sweep's axes: their median split-half and τ–RP r (from
    :func:`analyse_population`) and their RP spread (× reward SD) over that of ``reference``
    (a classical population of the sweep) at the recorded noise."""
    rho = recorded_noise().ratio
    ref = sweep[(sweep["population"] == reference) & np.isclose(sweep["noise"], rho)]
    spread = result["reversal_spread"]["std_rel_reward_sd"]
    ratio = float(spread / ref["rp_sd_rel_reward_sd"].iloc[0]) if len(ref) else None
    return {
        "noise": rho,
        "split_half_r": result["split_half"]["r"],
        "tau_rp_r": result["asymmetry_vs_reversal"]["r"],
        "rp_sd_rel_reward_sd": spread,
        "spread_ratio": ratio,
        "spread_reference": reference,
    }


def learner_population(
    learner: Any, cfg: Any, huber_scale: float | str | None = "auto"
) -> MeanPopulation:
    """Noise-free outcome responses of a trained learner's units on its lab task.

    Quantile-Huber units are scaled so that no response saturates (``"auto"``), so every
    population is compared on linear responses."""
    from .agent_cells import lab_task, read_units
    from .responses.gradient import resolve_scale, unit_responses

    task = lab_task(cfg)
    readout = read_units(learner, task.observation[None, :])[0]
    mean, _ = unit_responses(readout, task.values, resolve_scale(readout, task.values, huber_scale))
    return MeanPopulation(mean, task.values, task.magnitudes, task.reward_sd)


def tabular_populations(
    like: MeanPopulation,
    probs: Sequence[float] | np.ndarray,
    n_cells: int = 40,
    seed: int = 0,
) -> dict[str, MeanPopulation]:
    """Tabular expectile-TD (τ ~ U(0.02, 0.98)) and classical-TD populations of ``n_cells``
    trained on the same outcome distribution (axis values, ``probs``) as ``like``."""
    from . import tabular

    task = tabular.TabularTask.single_state(like.axis, probs)
    dist = tabular.train_distributional_td(
        task, tabular.cell_taus(n_cells, "random", seed=seed + 1), n_iters=3000, seed=seed
    )
    classical = tabular.train_classical_td(task, n_cells, n_iters=3000, alpha=0.05, seed=seed)
    out = {}
    for name, pop in (("tabular distributional", dist), ("tabular classical", classical)):
        # Responses on the utility axis itself (the axis is the utility of each magnitude).
        mean = tabular.mean_responses(pop.pre_outcome_values(), pop.taus, like.axis)
        out[name] = MeanPopulation(mean, like.axis, like.magnitudes, like.reward_sd)
    return out
