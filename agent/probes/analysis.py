"""The analysis pipeline of Dabney et al. 2020 (docs/science.md §3), in numpy and scipy.stats.

Input is a tidy cell table (one row per trial: `cell`, `magnitude`, `response`), from recorded
neurons or from agent units. Per cell it finds the reversal point (a model-free count criterion
on the utility axis, not a line fit) and the asymmetry τ = α⁺/(α⁺ + α⁻) of the response slopes
around it, then tests the paper's claims across cells: reversal points are reliable across
random halves of the trials, and τ correlates positively with the reversal point.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.optimize
import scipy.stats

from ..core.errors import DataError
from .analyses import run_all as run_analyses
from .paper_extras import baseline_relation, same_vs_diverse
from .recording import Recording
from .recording import pearson as kernel_pearson
from .trials import (
    CellTrials,
    by_cell,
    cell_means,
    pearson,
    utility_axis,
)


def zero_crossing_reversal_point(mean_response: np.ndarray, axis: np.ndarray) -> float:
    """Alternative RP: linear interpolation at the first upward zero crossing of the mean curve.

    Offered beside the paper's count criterion, not instead of it. All means ≥ 0 → U₁;
    all means < 0 → U_K. Magnitudes with a NaN mean are skipped.
    """
    mean_response = np.asarray(mean_response, dtype=float)
    axis = np.asarray(axis, dtype=float)
    ok = np.isfinite(mean_response)
    y, x = mean_response[ok], axis[ok]
    if y.size == 0:
        return math.nan
    if y[0] >= 0:
        return float(x[0])
    up = np.flatnonzero((y[:-1] < 0) & (y[1:] >= 0))
    if up.size == 0:
        return float(x[-1])
    i = up[0]
    return float(x[i] + (x[i + 1] - x[i]) * (-y[i]) / (y[i + 1] - y[i]))


# ----------------------------------------------------------------------------- asymmetry


def asymmetry(
    mean_response: np.ndarray,
    axis: np.ndarray,
    rp: float,
    counts: np.ndarray | None = None,
) -> tuple[float, float, float]:
    """(τ, α⁺, α⁻) of one cell around its reversal point.

    With x = U − RP: α⁺ is the least-squares slope through the origin of response on x over
    the trials with x ≥ 0; α⁻ that of −response on −x over x ≤ 0; τ = α⁺/(α⁺ + α⁻)
    (Dabney et al. 2020, Methods). With ``counts`` (trials per magnitude) this is the paper's
    trial-level fit (MATLAB glmfit over every trial): every trial at magnitude m has the same
    x_m, so Σ_trials x·r / Σ_trials x² = Σ_m n_m·x_m·r̄_m / Σ_m n_m·x_m². Without ``counts``
    every magnitude weighs the same (a fit to the per-magnitude means). A side without usable
    points (or τ's denominator zero) gives NaN.
    """
    mean_response = np.asarray(mean_response, dtype=float)
    x = np.asarray(axis, dtype=float) - rp
    n = np.ones_like(x) if counts is None else np.asarray(counts, dtype=float)
    ok = np.isfinite(mean_response) & (n > 0)
    alpha = []
    for side in (x >= 0, x <= 0):
        sel = side & ok
        sxx = float(np.sum(n[sel] * x[sel] ** 2))
        # Slope of −r on −x equals Σx·r/Σx², so both sides share one formula.
        sxy = float(np.sum(n[sel] * x[sel] * mean_response[sel]))
        alpha.append(sxy / sxx if sxx > 0 else math.nan)
    a_plus, a_minus = alpha
    denom = a_plus + a_minus
    tau = a_plus / denom if np.isfinite(denom) and denom != 0 else math.nan
    return tau, a_plus, a_minus


SLOPES = ("linear", "hill")


def trial_asymmetry(
    mag_index: np.ndarray, response: np.ndarray, axis: np.ndarray, rp: float, slope: str = "linear"
) -> tuple[float, float, float]:
    """(τ, α⁺, α⁻) fitted to every trial of one cell (the paper's glmfit; see :func:`asymmetry`)
    with straight lines (``slope="linear"``) or saturating curves (``"hill"``,
    :func:`hill_asymmetry`)."""
    if slope == "hill":
        return hill_asymmetry(mag_index, response, axis, rp)
    if slope != "linear":
        raise DataError(f"slope must be one of {', '.join(SLOPES)}, got {slope!r}")
    mag_index = np.asarray(mag_index, dtype=int)
    k = len(axis)
    counts = np.bincount(mag_index, minlength=k)
    return asymmetry(cell_means(mag_index, np.asarray(response, float), k), axis, rp, counts)


def hill_asymmetry(
    mag_index: np.ndarray, response: np.ndarray, axis: np.ndarray, rp: float
) -> tuple[float, float, float]:
    """(τ, α⁺, α⁻) from saturating response curves around the reversal point.

    Our reading of the paper's saturating fit: with x = U − RP, every trial's response is
    fitted by least squares with r = A±·x/(|x| + h), A⁺ for x ≥ 0 and A⁻ for x < 0, one
    half-saturation h shared by both sides (bounded to 0.001–100 × the range of x; at the
    upper bound the curve is a line over the data). For a given h the model is linear in A±
    (closed-form slopes), so h is found by a bounded scalar search
    (scipy.optimize.minimize_scalar on log h). The slopes at the reversal point are
    α± = A±/h, so τ = A⁺/(A⁺ + A⁻). NaN when a side has no trials.
    """
    x = np.asarray(axis, dtype=float)[np.asarray(mag_index, dtype=int)] - rp
    r = np.asarray(response, dtype=float)
    up, down = x >= 0, x < 0
    if not (np.any(x > 0) and np.any(down)):
        return math.nan, math.nan, math.nan
    log_span = math.log(float(np.ptp(x)))

    def amplitudes(log_h: float) -> tuple[float, float, float]:
        f = x / (np.abs(x) + math.exp(log_h))
        a = [float(f[s] @ r[s]) / float(f[s] @ f[s]) for s in (up, down)]
        sse = float(np.sum((r - np.where(up, a[0], a[1]) * f) ** 2))
        return a[0], a[1], sse

    best = scipy.optimize.minimize_scalar(
        lambda log_h: amplitudes(log_h)[2],
        bounds=(log_span - 7.0, log_span + 4.6),
        method="bounded",
    )
    a_plus, a_minus, _ = amplitudes(float(best.x))
    h = math.exp(float(best.x))
    denom = a_plus + a_minus
    tau = a_plus / denom if denom != 0 else math.nan
    return float(tau), float(a_plus / h), float(a_minus / h)


@dataclass(frozen=True)
class FoldAsymmetry:
    """τ of one cell on 7 disjoint folds: fold values, standard error, t-test against a mean."""

    fold_taus: np.ndarray
    se: float
    t: float
    p: float


def fold_asymmetry(
    mag_index: np.ndarray,
    response: np.ndarray,
    axis: np.ndarray,
    rp: float,
    rng: np.random.Generator,
    population_tau: float = math.nan,
    n_folds: int = 7,
    slope: str = "linear",
) -> FoldAsymmetry:
    """τ of one cell on ``n_folds`` disjoint random folds of ⌊n/n_folds⌋ trials each.

    As the paper's Methods: the cell's n trials are permuted, fold f takes the f-th block of
    ⌊n/7⌋ trials (the rest are unused), τ per fold is the trial-level fit around the
    all-trials reversal point ``rp``. Returns the fold τ's, their standard error and a
    one-sample t-test (scipy.stats.ttest_1samp) of the fold τ's against ``population_tau``
    (the population mean τ): the cell's asymmetry p-value.
    """
    mag_index = np.asarray(mag_index, dtype=int)
    response = np.asarray(response, dtype=float)
    size = mag_index.size // n_folds
    order = rng.permutation(mag_index.size)
    taus = np.array(
        [
            trial_asymmetry(mag_index[idx], response[idx], axis, rp, slope)[0]
            for idx in (order[f * size : (f + 1) * size] for f in range(n_folds))
        ]
    )
    ok = taus[np.isfinite(taus)]
    if ok.size < 2:
        return FoldAsymmetry(taus, math.nan, math.nan, math.nan)
    se = float(np.std(ok, ddof=1) / math.sqrt(ok.size))
    t, p = math.nan, math.nan
    if math.isfinite(population_tau) and se > 0:
        res = scipy.stats.ttest_1samp(ok, population_tau)
        t, p = float(res.statistic), float(res.pvalue)
    return FoldAsymmetry(taus, se, t, p)


def tau_standard_error(
    mag_index: np.ndarray,
    response: np.ndarray,
    axis: np.ndarray,
    rp: float,
    rng: np.random.Generator,
    n_folds: int = 7,
) -> float:
    """Standard error of τ over ``n_folds`` disjoint folds of ⌊n/n_folds⌋ trials (see
    :func:`fold_asymmetry`)."""
    return fold_asymmetry(mag_index, response, axis, rp, rng, n_folds=n_folds).se


# ----------------------------------------------------------------------------- split halves


@dataclass(frozen=True)
class SplitHalf:
    """Per-split results of the cross-validation: arrays [n_splits] or [n_splits, C]."""

    rp_a: np.ndarray
    rp_b: np.ndarray
    tau_b: np.ndarray
    reliability_r: np.ndarray
    reliability_p: np.ndarray
    optimism_r: np.ndarray
    optimism_p: np.ndarray


def split_half(
    table: pd.DataFrame | CellTrials,
    axis: np.ndarray,
    n_splits: int = 100,
    rng: np.random.Generator | None = None,
    slope: str = "linear",
) -> SplitHalf:
    """Cross-validate reversal points and asymmetries over random halves of the trials.

    Per cell and magnitude, a random half of the trials (A, ⌊n/2⌋ trials) gives RP_A; the rest
    (B) give RP_B and τ_B (trial-level slopes around RP_B). Per split: reliability =
    pearson(RP_A, RP_B) across cells; optimism = pearson(τ_B, RP_A). The splits are the
    batched kernel's (:mod:`agent.probes.recording`): the recording repeated ``n_splits``
    times, each copy split once.
    """
    rng = np.random.default_rng() if rng is None else rng
    axis = np.asarray(axis, dtype=float)
    halves = Recording.from_cells(table, axis).repeated(n_splits).split(rng)
    rp_a, rp_b, tau_b = halves.pairs(rng)
    if slope == "hill":
        # saturating curves are fitted per cell and split, to the trials of half B
        mags = np.broadcast_to(np.arange(axis.size)[:, None], halves.responses.shape[2:])
        tau_b = np.array([
            [hill_asymmetry(mags[m], halves.responses[s, c][m], axis, rp_b[s, c])[0]
             for c, m in enumerate(halves.in_b[s])]
            for s in range(n_splits)
        ])  # fmt: skip
    rel_r, rel_p = kernel_pearson(rp_a, rp_b)
    opt_r, opt_p = kernel_pearson(rp_a, tau_b)
    return SplitHalf(rp_a, rp_b, tau_b, rel_r, rel_p, opt_r, opt_p)


# ----------------------------------------------------------------------------- population


def _summary(r: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    """Median and 25/75 percentiles of per-split r and p (NaN splits ignored)."""
    out: dict[str, Any] = {"n_splits": int(r.size), "n_valid": int(np.isfinite(r).sum())}
    finite_p = p[np.isfinite(p)]
    out["fraction_p_below_0.01"] = float(np.mean(finite_p < 0.01)) if finite_p.size else math.nan
    for name, v in (("r", r), ("p", p)):
        v = v[np.isfinite(v)]
        if v.size:
            out[name] = float(np.median(v))
            out[f"{name}_iqr"] = [float(np.percentile(v, 25)), float(np.percentile(v, 75))]
        else:
            out[name], out[f"{name}_iqr"] = math.nan, [math.nan, math.nan]
    return out


def jsonable(value: Any) -> Any:
    """Nested lists/dicts of plain floats, ints and str; NaN and ±inf become None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value if isinstance(value, str) or value is None else str(value)


def analyse_population(
    table: pd.DataFrame | CellTrials,
    *,
    axis: str | Sequence[float] | np.ndarray | None = None,
    n_splits: int = 100,
    seed: int = 0,
    reward_sd: float | None = None,
    slope: str = "linear",
) -> dict[str, Any]:
    """The whole section-3 analysis of one population, as probe.json fields.

    slope: "linear" (the paper's lines through the reversal point) or "hill" (saturating
    curves, :func:`hill_asymmetry`) for every τ. With a ``baseline`` column the result has
    ``baseline_relation`` (RP and τ vs baseline rate); ``same_vs_diverse`` scores one shared
    reversal point against one per cell on held-out trials (docs/science.md §6).

    axis: "empirical" (default; the paper's axis for neurons), "reward", or K values.
    reward_sd: the reward SD on the axis' scale; by default the SD of the utility axis weighted
    by each magnitude's trial frequency. Returns plain JSON-able values (NaN as None).
    """
    if slope not in SLOPES:
        raise DataError(f"slope must be one of {', '.join(SLOPES)}, got {slope!r}")
    pop = by_cell(table)
    rng = np.random.default_rng(seed)
    magnitudes, u = utility_axis(pop, "empirical" if axis is None else axis)
    means = pop.mean_responses()
    trials = pop.cell_trials()
    rps = Recording.from_cells(pop, u).all_trials(rng)[0][0]
    asym = np.array([trial_asymmetry(k, r, u, rps[c], slope) for c, (k, r) in enumerate(trials)])
    tau = asym[:, 0]
    mean_tau = float(np.nanmean(tau)) if np.isfinite(tau).any() else math.nan
    folds = [
        fold_asymmetry(k, r, u, rps[c], rng, mean_tau, slope=slope)
        for c, (k, r) in enumerate(trials)
    ]
    zero_cross = np.array([zero_crossing_reversal_point(m, u) for m in means])

    if reward_sd is None:
        freq = pop.trial_counts() / pop.trial_counts().sum()
        mean_u = float(np.sum(freq * u))
        reward_sd = float(np.sqrt(np.sum(freq * (u - mean_u) ** 2)))
    rp_std = float(np.std(rps, ddof=1)) if rps.size > 1 else math.nan
    rp_range = float(np.ptp(rps))

    halves = split_half(pop, u, n_splits=n_splits, rng=rng, slope=slope)
    r_all, p_all = pearson(rps, tau)

    extras: dict[str, Any] = {
        "same_vs_diverse": same_vs_diverse(pop, u, n_splits=n_splits, seed=seed),
        # the registered analyses of this recording (agent/probes/analyses.py)
        "analyses": run_analyses(Recording.from_cells(pop, u), seed),
    }
    if pop.baseline is not None:
        extras["baseline_rate"] = pop.baseline
        extras["baseline_relation"] = baseline_relation(rps, tau, pop.baseline)
    return jsonable(
        {
            "cells": pop.cells,
            "magnitudes": magnitudes,
            "utility_axis": u,
            "reversal_points": rps,
            "asymmetries": tau,
            "alpha_plus": asym[:, 1],
            "alpha_minus": asym[:, 2],
            "asymmetry_se": [f.se for f in folds],
            "asymmetry_p": [f.p for f in folds],
            "asymmetry_p_note": (
                "per cell: t-test of tau on 7 disjoint folds of floor(n/7) trials against the "
                "population mean tau"
            ),
            "reversal_points_zero_crossing": zero_cross,
            "trial_counts": pop.trial_counts(),
            "reversal_spread": {
                "std": rp_std,
                "range": rp_range,
                "reward_sd": reward_sd,
                "std_rel_reward_sd": rp_std / reward_sd if reward_sd else math.nan,
                "range_rel_reward_sd": rp_range / reward_sd if reward_sd else math.nan,
            },
            "split_half": _summary(halves.reliability_r, halves.reliability_p),
            "asymmetry_vs_reversal": {
                **_summary(halves.optimism_r, halves.optimism_p),
                "r_all_trials": r_all,
                "p_all_trials": p_all,
                "note": (
                    "r, p: cross-validated (tau from half B against RP from half A), median "
                    "over splits; r_all_trials: RP and tau from the same trials, inflated by "
                    "shared noise even under the classical null"
                ),
            },
            "slope": slope,
            **extras,
        }
    )
