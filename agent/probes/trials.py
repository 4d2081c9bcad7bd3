"""Trials grouped by cell, the utility axis, the count-criterion reversal point and the
statistics shared by the probe's analyses (:mod:`agent.probes.analysis`, the section-3
pipeline, and :mod:`agent.probes.paper_extras`, the paper's further figures): one place, public
names, no module importing another's private helpers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd
import scipy.stats

from ..core.errors import DataError
from ..data.tidy import validate_table

# Edge rules of the paper when the best cut lies outside the magnitudes (docs/science.md §3).
_BELOW_ALL_OFFSET = 0.01  # every response positive: RP = U₁ + 0.01
_ABOVE_ALL_OFFSET = 0.1  # every response negative: RP = U_K − 0.1
# Tie-break noise added to the integer counts: far below 1 so it only orders exact ties.
_TIE_NOISE = 1e-3


@dataclass(frozen=True)
class CellTrials:
    """Trials grouped by cell: magnitude index (0..K−1) and response of every trial."""

    cells: list[Any]
    magnitudes: np.ndarray  # [K] distinct reward sizes, ascending
    mag_index: list[np.ndarray]  # per cell: [T_i] int
    response: list[np.ndarray]  # per cell: [T_i] float
    baseline: np.ndarray | None = None  # [C] each cell's mean pre-stimulus rate, if known

    @property
    def n_magnitudes(self) -> int:
        return len(self.magnitudes)

    def mean_responses(self) -> np.ndarray:
        """[C, K] mean response of each cell at each magnitude (NaN where a cell has no trials)."""
        return np.stack([cell_means(k, r, self.n_magnitudes) for k, r in self.cell_trials()])

    def trial_counts(self) -> np.ndarray:
        """[K] number of trials at each magnitude, pooled over cells."""
        return cast(
            np.ndarray, sum(np.bincount(k, minlength=self.n_magnitudes) for k in self.mag_index)
        )

    def cell_trials(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return list(zip(self.mag_index, self.response, strict=True))


def by_cell(table: pd.DataFrame | CellTrials) -> CellTrials:
    """Validate a tidy cell table and group its trials by cell (cells in order of appearance)."""
    if isinstance(table, CellTrials):
        return table
    table = validate_table(table)
    magnitudes = np.unique(table["magnitude"].to_numpy(dtype=float))
    index = np.searchsorted(magnitudes, table["magnitude"].to_numpy(dtype=float))
    response = table["response"].to_numpy(dtype=float)
    codes, cells = pd.factorize(table["cell"], sort=False)
    mag_index, responses = [], []
    for c in range(len(cells)):
        rows = codes == c
        mag_index.append(index[rows])
        responses.append(response[rows])
    baseline = None
    if "baseline" in table.columns:
        baseline = np.bincount(codes, weights=table["baseline"].to_numpy(float)) / np.bincount(
            codes
        )
    return CellTrials(list(cells), magnitudes, mag_index, responses, baseline)


def cell_means(mag_index: np.ndarray, response: np.ndarray, k: int) -> np.ndarray:
    counts = np.bincount(mag_index, minlength=k)
    sums = np.bincount(mag_index, weights=response, minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def utility_axis(
    table: pd.DataFrame | CellTrials, axis: str | Sequence[float] | np.ndarray = "empirical"
) -> tuple[np.ndarray, np.ndarray]:
    """(magnitudes [K], utility axis [K]).

    "empirical": the mean over cells of each cell's mean response at each magnitude (the
    paper's axis for recorded neurons); "reward": the magnitudes themselves; or K values given.
    """
    pop = by_cell(table)
    if isinstance(axis, str):
        if axis == "empirical":
            values = np.nanmean(pop.mean_responses(), axis=0)
        elif axis == "reward":
            values = pop.magnitudes.copy()
        else:
            raise DataError(f"utility axis must be 'empirical', 'reward' or K values, got {axis!r}")
    else:
        values = np.asarray(axis, dtype=float)
        if values.shape != pop.magnitudes.shape:
            raise DataError(
                f"utility axis has {values.size} values but the table has "
                f"{pop.n_magnitudes} magnitudes"
            )
    if not np.all(np.isfinite(values)):
        raise DataError("utility axis holds NaN (a magnitude with no trials in any cell)")
    return pop.magnitudes, values


# ----------------------------------------------------------------------------- reversal point


def criterion(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """crit(c) for cuts j = 0..K from per-magnitude counts of positive/negative responses.

    pos, neg: [..., K]. Cut j lies between magnitude indices j−1 and j (0-based), i.e.
    c = j + 0.5 in the paper's 1-based notation: crit = #(k ≥ j, r > 0) + #(k < j, r < 0).
    """
    zero = np.zeros(pos.shape[:-1] + (1,))
    pos_above = np.concatenate([np.cumsum(pos[..., ::-1], axis=-1)[..., ::-1], zero], axis=-1)
    neg_below = np.concatenate([zero, np.cumsum(neg, axis=-1)], axis=-1)
    return pos_above + neg_below


def rp_from_criterion(crit: np.ndarray, axis: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Reversal points [...] from criteria [..., K+1] (noise breaks ties; paper's edge rules)."""
    k = axis.shape[0]
    crit = crit + _TIE_NOISE * rng.random(crit.shape)
    best = np.argmax(crit, axis=-1)
    inner = np.clip(best, 1, k - 1)  # the formulas below are only used where 1 ≤ best ≤ K−1
    at = np.take_along_axis(crit, inner[..., None], -1)[..., 0]
    lower = np.take_along_axis(crit, inner[..., None] - 1, -1)[..., 0]
    upper = np.take_along_axis(crit, inner[..., None] + 1, -1)[..., 0]
    # Weight each neighbouring magnitude by 1/|crit(c*) − crit(c* ∓ 1)|: the closer the
    # neighbouring cut's count, the closer the crossing lies to the magnitude between them.
    w_lo = 1.0 / np.abs(at - lower)
    w_hi = 1.0 / np.abs(at - upper)
    interp = (w_lo * axis[inner - 1] + w_hi * axis[inner]) / (w_lo + w_hi)
    rp = np.where(best == 0, axis[0] + _BELOW_ALL_OFFSET, interp)
    return np.where(best == k, axis[-1] - _ABOVE_ALL_OFFSET, rp)


def reversal_point(
    mag_index: np.ndarray,
    response: np.ndarray,
    axis: np.ndarray,
    rng: np.random.Generator,
) -> float:
    """The paper's count-criterion reversal point of one cell on the utility axis.

    mag_index: [T] 0-based magnitude index of each trial; response: [T]; axis: [K] utility
    values U₁..U_K (ascending). For each cut c between magnitudes count the trials above the
    cut with response > 0 plus those below it with response < 0; the best cut c* (ties broken
    with tiny noise) gives RP = U₁ + 0.01 if c* < 1, U_K − 0.1 if c* > K, otherwise the
    average of the two magnitudes beside it weighted by 1/|crit(c*) − crit(c*∓1)|.
    """
    axis = np.asarray(axis, dtype=float)
    mag_index = np.asarray(mag_index, dtype=int)
    response = np.asarray(response, dtype=float)
    k = axis.shape[0]
    if k < 2:
        raise DataError(f"a reversal point needs at least two magnitudes, got {k}")
    pos = np.bincount(mag_index, weights=response > 0, minlength=k)
    neg = np.bincount(mag_index, weights=response < 0, minlength=k)
    return float(rp_from_criterion(criterion(pos, neg), axis, rng))


def pearson(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Pearson r and two-sided p over finite pairs; NaN when fewer than 3 or no variance."""
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan, math.nan
    res = scipy.stats.pearsonr(x, y)
    return float(res.statistic), float(res.pvalue)


def stratified_halves(
    mags: np.ndarray, k: int, n_splits: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Random halves of one cell's trials, for ``n_splits`` splits at once: within each of the
    ``k`` magnitudes, the ⌊n/2⌋ trials whose random key ranks lowest form half A.

    Returns ``in_a`` [S, T] (bool, True for half A) and the trials' one-hot magnitudes [T, K].
    """
    keys = rng.random((n_splits, mags.size))
    in_a = np.zeros((n_splits, mags.size), dtype=bool)
    for m in range(k):
        idx = np.flatnonzero(mags == m)
        ranks = np.argsort(np.argsort(keys[:, idx], axis=1), axis=1)
        in_a[:, idx] = ranks < idx.size // 2
    onehot = (mags[:, None] == np.arange(k)[None, :]).astype(float)
    return in_a, onehot
