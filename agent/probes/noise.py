"""Response noise calibrated to the recorded cells (docs/science.md §6, "Realistic noise").

A simulated population (agent units, tabular cells) has noise-free mean responses per
magnitude; a recording has trials. What decides whether reversal points can be told apart
is each cell's **signal-to-noise ratio**: its trial-to-trial SD relative to the spread of its
own mean responses across magnitudes, and the number of trials per magnitude. This module
measures both on the committed recordings and draws noisy trials that match them:

    ρ_c = s_c / sd_m(r̄_{c,m}),   s_c² = Σ_m (n_{c,m} − 1)·var_{c,m} / Σ_m (n_{c,m} − 1)

(pooled within-magnitude SD over the SD of the cell's 7 per-magnitude means). A simulated
unit i then gets Gaussian noise of SD ρ·sd_m(mean response of unit i) with ρ the recorded
median, and the recorded median trial count at each magnitude.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd

from ..core.config import RECORDED as RECORDED
from ..core.config import parse_noise as parse_noise
from ..core.config import parse_trials as parse_trials


@dataclass(frozen=True)
class RecordedNoise:
    """What the recordings show: per-cell noise ratios ρ and trial counts per magnitude."""

    ratios: np.ndarray  # [C] ρ of each cell
    trials_per_magnitude: np.ndarray  # [K] median over cells of the trial count per magnitude
    magnitudes: np.ndarray  # [K]
    noise_sd_rel_axis_sd: float  # median within-cell SD / SD of the empirical utility axis

    @property
    def ratio(self) -> float:
        """The median ρ over cells: the default noise level of simulated populations."""
        return float(np.median(self.ratios))

    def summary(self) -> dict[str, Any]:
        return {
            "noise_ratio_median": self.ratio,
            "noise_ratio_iqr": [float(np.percentile(self.ratios, q)) for q in (25, 75)],
            "noise_sd_rel_axis_sd": self.noise_sd_rel_axis_sd,
            "trials_per_magnitude": [int(n) for n in self.trials_per_magnitude],
            "trials_per_cell": int(np.sum(self.trials_per_magnitude)),
            "n_cells": int(self.ratios.size),
            "definition": (
                "rho = pooled within-magnitude trial SD / SD of the cell's mean responses "
                "across magnitudes; median over the 40 recorded cells"
            ),
        }


def noise_ratios(table: pd.DataFrame) -> pd.Series:
    """ρ of every cell of a tidy table (see the module docstring)."""
    g = table.groupby(["cell", "magnitude"])["response"]
    counts = g.count().unstack()
    var = g.var(ddof=1).unstack()
    means = g.mean().unstack()
    dof = (counts - 1).clip(lower=0)
    pooled = np.sqrt((dof * var).sum(axis=1) / dof.sum(axis=1))
    return pooled / means.std(axis=1, ddof=0)


def measure_recorded_noise(table: pd.DataFrame) -> RecordedNoise:
    """Noise ratios and trial counts of a recorded population (e.g. the 40 cells)."""
    ratios = noise_ratios(table)
    g = table.groupby(["cell", "magnitude"])["response"]
    counts = g.count().unstack()
    means = g.mean().unstack()
    dof = (counts - 1).clip(lower=0)
    pooled = np.sqrt((dof * g.var(ddof=1).unstack()).sum(axis=1) / dof.sum(axis=1))
    axis_sd = float(means.mean(axis=0).std(ddof=0))
    return RecordedNoise(
        ratios=ratios.to_numpy(dtype=float),
        trials_per_magnitude=np.rint(counts.median(axis=0).to_numpy(dtype=float)).astype(int),
        magnitudes=counts.columns.to_numpy(dtype=float),
        noise_sd_rel_axis_sd=float(np.median(pooled)) / axis_sd,
    )


@functools.lru_cache(maxsize=1)
def recorded_noise() -> RecordedNoise:
    """:func:`measure_recorded_noise` of the committed table of the 40 recorded cells."""
    from ..data.tidy import PACKAGED_TABLE, load_cell_table

    return measure_recorded_noise(load_cell_table(PACKAGED_TABLE))


def trial_counts(trials: int | str | Sequence[int], n_magnitudes: int) -> np.ndarray:
    """Trials per magnitude [K]: a number for all, ``"recorded"`` (the cells' medians), or K."""
    if isinstance(trials, str):
        if parse_trials(trials) != RECORDED:
            return np.full(n_magnitudes, int(trials))
        rec = recorded_noise().trials_per_magnitude
        if rec.size != n_magnitudes:
            # Another task: keep the recorded median count per magnitude.
            return np.full(n_magnitudes, int(np.median(rec)))
        return rec.copy()
    if np.ndim(trials) == 0:
        return np.full(n_magnitudes, int(cast(int, trials)))
    counts = np.asarray(trials, dtype=int)
    if counts.shape != (n_magnitudes,):
        raise ValueError(f"need one trial count per magnitude ({n_magnitudes}), got {counts}")
    return counts


def noise_sd(
    mean: np.ndarray, noise: float | str, scale: float = 1.0, *, per_unit: bool = False
) -> np.ndarray:
    """Per-unit noise SD [N] for mean responses [N, K].

    ``"recorded"``: the recorded median ρ times each unit's SD of its own means across
    magnitudes; a number ρ with ``per_unit``: ρ times that SD; a number otherwise:
    ``noise × scale`` for every unit (``scale`` e.g. the reward SD).
    """
    mean = np.asarray(mean, dtype=float)
    if noise == RECORDED:
        return recorded_noise().ratio * mean.std(axis=1, ddof=0)
    if per_unit:
        return float(noise) * mean.std(axis=1, ddof=0)
    return np.full(mean.shape[0], float(noise) * scale)


def noisy_trials(
    mean: np.ndarray,
    magnitudes: np.ndarray,
    *,
    noise: float | str,
    trials: int | str | Sequence[int],
    scale: float = 1.0,
    per_unit: bool = False,
    seed: int | np.random.Generator = 0,
    cells: Sequence[Any] | None = None,
) -> pd.DataFrame:
    """Tidy table (cell, magnitude, response, trial) of noisy trials around ``mean`` [N, K].

    Unit i at magnitude k gets ``trial_counts(trials)[k]`` responses mean[i, k] + ε,
    ε ~ N(0, noise_sd(mean, noise, scale, per_unit=per_unit)[i]²).
    """
    mean = np.asarray(mean, dtype=float)
    n, k = mean.shape
    counts = trial_counts(trials, k)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    sd = noise_sd(mean, noise, scale, per_unit=per_unit)
    mag_idx = np.repeat(np.arange(k), counts)  # one unit's trials
    n_per_unit = mag_idx.size
    resp = mean[:, mag_idx] + sd[:, None] * rng.standard_normal((n, n_per_unit))
    ids = np.arange(n) if cells is None else np.asarray(cells)
    return pd.DataFrame(
        {
            "cell": np.repeat(ids, n_per_unit),
            "magnitude": np.tile(np.asarray(magnitudes, dtype=float)[mag_idx], n),
            "response": resp.ravel(),
            "trial": np.tile(np.arange(n_per_unit), n),
        }
    )
