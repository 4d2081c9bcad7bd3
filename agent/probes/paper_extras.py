"""The paper's further analyses (Dabney et al. 2020, Extended Data; docs/science.md §6).

- :func:`baseline_relation`: reversal point and τ against each cell's baseline firing rate
  (ED Fig. 9f: R = 0.18, P = 0.29 on the cells, which this project reproduces for the
  reversal point against baseline, r 0.17, p 0.28; the baseline-bias null predicts reversal
  points that track baseline).
- :func:`same_vs_diverse`: one shared reversal point vs one per cell, fitted on training
  trials and scored by predicting the sign of held-out responses (ED Fig. 4c).
- :func:`degrade_taus` and :func:`decode_robustness`: the decode's distance to the truth as
  the asymmetries are degraded, τ′ = Φ(Φ⁻¹(τ) + s), against shifted, scaled and mirrored
  versions of the true distribution (ED Fig. 8).
- :func:`dtd_simulation`: the paper's distributional-TD simulation (cells with α⁺, α⁻ ~
  U(0, 1), base rate 0.02, 25,000 steps, linear response), for the τ–RP overlay.
- the saturating ("hill") slope option is :func:`agent.probes.analysis.hill_asymmetry`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.stats

from .decoding import decode_distribution, score_decode
from .trials import (
    CellTrials,
    by_cell,
    criterion,
    pearson,
    rp_from_criterion,
    stratified_halves,
    utility_axis,
)

# ----------------------------------------------------------------------------- baseline


def baseline_relation(
    reversal_points: Sequence[float | None] | np.ndarray,
    asymmetries: Sequence[float | None] | np.ndarray,
    baseline: Sequence[float | None] | np.ndarray,
) -> dict[str, Any]:
    """Pearson r and p of RP vs baseline and τ vs baseline across cells (NaN pairs dropped).

    Dabney et al. 2020 ED Fig. 9f: on the recorded cells the fitted parameter is unrelated to
    baseline firing (R = 0.18, P = 0.29: those figures come out here for the reversal point
    against baseline, r 0.17, p 0.28; τ against baseline is r 0.02); a baseline-bias
    population has reversal points that track it.
    """

    def arr(v: Sequence[float | None] | np.ndarray) -> np.ndarray:
        return np.array([np.nan if x is None else x for x in v], dtype=float)

    rp, tau, base = arr(reversal_points), arr(asymmetries), arr(baseline)
    r_rp, p_rp = pearson(base, rp)
    r_tau, p_tau = pearson(base, tau)
    return {
        "rp_vs_baseline": {"r": r_rp, "p": p_rp},
        "tau_vs_baseline": {"r": r_tau, "p": p_tau},
        "n_cells": int(np.sum(np.isfinite(base))),
        "baseline_median": float(np.nanmedian(base)),
    }


# ----------------------------------------------------------------------------- same vs diverse


def same_vs_diverse(
    table: pd.DataFrame | CellTrials,
    axis: str | Sequence[float] | np.ndarray = "empirical",
    n_splits: int = 100,
    seed: int = 0,
) -> dict[str, Any]:
    """Held-out accuracy of one shared reversal point vs one per cell (ED Fig. 4c).

    Per split and cell, a random half of each magnitude's trials is the training set. Diverse
    model: each cell's count-criterion RP on its training trials; same model: one RP from the
    criterion pooled over every cell's training trials. Each model predicts the sign of every
    held-out response as sign(U_k − RP); the score is the fraction predicted correctly
    (zero responses skipped). Returns per-split accuracies and the median and IQR of
    (diverse − same), and the fraction of splits in which diverse wins.
    """
    pop = by_cell(table)
    _, u = utility_axis(pop, axis)
    rng = np.random.default_rng(seed)
    k = pop.n_magnitudes
    n_cells = len(pop.cells)
    pos_tr = np.zeros((n_splits, n_cells, k))
    neg_tr = np.zeros((n_splits, n_cells, k))
    pos_te = np.zeros((n_splits, n_cells, k))
    neg_te = np.zeros((n_splits, n_cells, k))
    for c, (mags, resp) in enumerate(pop.cell_trials()):
        train, onehot = stratified_halves(mags, k, n_splits, rng)
        pos, neg = onehot * (resp > 0)[:, None], onehot * (resp < 0)[:, None]
        pos_tr[:, c], neg_tr[:, c] = train @ pos, train @ neg
        pos_te[:, c], neg_te[:, c] = ~train @ pos, ~train @ neg
    rp_diverse = rp_from_criterion(criterion(pos_tr, neg_tr), u, rng)  # [S, C]
    rp_same = rp_from_criterion(criterion(pos_tr.sum(1), neg_tr.sum(1)), u, rng)  # [S]

    def accuracy(rp: np.ndarray) -> np.ndarray:
        above = u[None, None, :] > rp[..., None]  # [S, C, K]: predicted positive
        correct = np.where(above, pos_te, neg_te).sum(axis=(1, 2))
        return correct / (pos_te + neg_te).sum(axis=(1, 2))

    acc_d = accuracy(rp_diverse)
    acc_s = accuracy(np.broadcast_to(rp_same[:, None], rp_diverse.shape))
    diff = acc_d - acc_s
    return {
        "accuracy_diverse": float(np.median(acc_d)),
        "accuracy_same": float(np.median(acc_s)),
        "difference_median": float(np.median(diff)),
        "difference_iqr": [float(np.percentile(diff, 25)), float(np.percentile(diff, 75))],
        "fraction_diverse_better": float(np.mean(diff > 0)),
        "n_splits": int(n_splits),
        "metric": "held-out sign-prediction accuracy (diverse RP per cell minus one shared RP)",
    }


# ----------------------------------------------------------------------------- robustness


def degrade_taus(taus: Sequence[float] | np.ndarray, s: float) -> np.ndarray:
    """τ′ = Φ(Φ⁻¹(τ) + s): shift every asymmetry by s on the probit scale (ED Fig. 8)."""
    t = np.clip(np.asarray(taus, dtype=float), 1e-9, 1 - 1e-9)
    return scipy.stats.norm.cdf(scipy.stats.norm.ppf(t) + s)


def decode_robustness(
    expectiles: Sequence[float] | np.ndarray,
    taus: Sequence[float] | np.ndarray,
    true_values: Sequence[float] | np.ndarray,
    true_probs: Sequence[float] | np.ndarray,
    *,
    shifts: Sequence[float] = (-1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0),
    restarts: int = 3,
    seed: int = 0,
) -> dict[str, Any]:
    """W1 of the decode to the truth as τ is degraded by s, and the W1 of altered truths.

    The decode at each s uses the same (expectile, τ′) pairs, samples bounded to the truth's
    range. References (how far a decode would have to move to be "another distribution"):
    the truth shifted by ±0.5 SD, scaled ×0.5 and ×1.5 about its mean, and mirrored about
    its midrange, each scored by W1 to the truth.
    """
    e = np.asarray(expectiles, dtype=float)
    t = np.asarray(taus, dtype=float)
    v = np.asarray(true_values, dtype=float)
    p = np.asarray(true_probs, dtype=float)
    p = p / p.sum()
    bounds = (float(v.min()), float(v.max()))
    rows = []
    for s in shifts:
        dec = decode_distribution(e, degrade_taus(t, s), bounds, restarts=restarts, seed=seed)
        rows.append({"s": float(s), **score_decode(dec["samples"], v, p)})
    mean = float(v @ p)
    sd = float(np.sqrt(((v - mean) ** 2) @ p))
    altered = {
        "shifted +0.5 SD": v + 0.5 * sd,
        "shifted -0.5 SD": v - 0.5 * sd,
        "scaled x0.5": mean + 0.5 * (v - mean),
        "scaled x1.5": mean + 1.5 * (v - mean),
        "mirrored": v.max() + v.min() - v,
    }
    refs = {name: score_decode(np.repeat(a, np.maximum(1, np.rint(p * 1000).astype(int))), v, p)
            for name, a in altered.items()}  # fmt: skip
    return {"by_shift": rows, "altered_truths": refs, "metric": "1-Wasserstein to the truth"}


# ----------------------------------------------------------------------------- simulation


def dtd_simulation(
    values: Sequence[float] | np.ndarray,
    probs: Sequence[float] | np.ndarray,
    *,
    n_cells: int = 151,
    n_steps: int = 25_000,
    base_rate: float = 0.02,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """The paper's distributional-TD simulation on one outcome distribution.

    Cell i has α⁺ᵢ, α⁻ᵢ ~ U(0, 1) and value Vᵢ (start 0); each step draws an outcome r and
    updates Vᵢ ← Vᵢ + base_rate·α±ᵢ·(r − Vᵢ) (α⁺ if r > Vᵢ, else α⁻): the expectile rule, so
    Vᵢ → the τᵢ-expectile with τᵢ = α⁺ᵢ/(α⁺ᵢ + α⁻ᵢ). Returns ``reversal_points`` (Vᵢ, on the
    axis of ``values``), ``taus`` and the rates.
    """
    rng = np.random.default_rng(seed)
    v = np.asarray(values, dtype=float)
    p = np.asarray(probs, dtype=float)
    a_plus = rng.uniform(0, 1, n_cells)
    a_minus = rng.uniform(0, 1, n_cells)
    outcomes = v[rng.choice(v.size, size=n_steps, p=p / p.sum())]
    value = np.zeros(n_cells)
    for r in outcomes:
        delta = r - value
        value += base_rate * np.where(delta > 0, a_plus, a_minus) * delta
    return {
        "reversal_points": value,
        "taus": a_plus / (a_plus + a_minus),
        "alpha_plus": a_plus,
        "alpha_minus": a_minus,
    }


def simulation_overlay(
    utility_values: Sequence[float] | np.ndarray,
    probs: Sequence[float] | np.ndarray,
    axis: Sequence[float] | np.ndarray | None = None,
    seed: int = 0,
) -> tuple[list[float], list[float]]:
    """(RP, τ) of :func:`dtd_simulation` on the utilities, mapped onto ``axis`` (e.g. the
    recorded cells' empirical axis, by interpolating utility → axis value per magnitude)."""
    u = np.asarray(utility_values, dtype=float)
    sim = dtd_simulation(u, probs, seed=seed)
    rp = sim["reversal_points"]
    if axis is not None:
        rp = np.interp(rp, u, np.asarray(axis, dtype=float))
    return [float(x) for x in rp], [float(x) for x in sim["taus"]]
