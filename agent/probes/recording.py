"""A recording and the one batched kernel of the paper's cross-validation (issue 35).

A :class:`Recording` is trials of B recordings × U units × K magnitudes × L trial slots with a
validity mask (slot ℓ exists) and the utility axis [K]; a single recording is a batch of one.
Every entry point of the probe goes through the kernel below: the lab and in-task probes
(:func:`agent.probes.analysis.analyse_population`), the detection study
(:mod:`agent.probes.detection`) and the noise sweep (:mod:`agent.probes.sweep`):

    means [N, K] → Recording (a protocol: :meth:`RecordedProtocol` or fixed counts and SDs)
      → :meth:`Recording.split` (stratified halves) → :func:`analyse_halves`
      (reversal points, asymmetries, Pearson and Spearman r and p per recording) → statistics.

The count-criterion reversal point and its edge rules are :mod:`agent.probes.trials`'s; τ is
the paper's trial-level linear slope ratio (:func:`agent.probes.analysis.asymmetry`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.stats

from ..core.errors import DataError
from .trials import CellTrials, by_cell, criterion, rp_from_criterion

#: the Friedman test level at which the recorded cells' SD profile across magnitudes is used
PROFILE_ALPHA = 0.01
#: recordings analysed at once (bounds memory: chunk × units × magnitudes × max trials)
CHUNK = 64

# ----------------------------------------------------------------------------- protocol


@dataclass(frozen=True)
class RecordedProtocol:
    """What every simulated recording copies from the recorded cells."""

    ratios: np.ndarray  # [C] each recorded cell's noise ratio ρ
    counts: np.ndarray  # [C, K] each recorded cell's trials per magnitude
    sd_profile: np.ndarray  # [K] relative trial SD per magnitude (pooled = 1)
    profile_p: float  # Friedman test of SD against magnitude, across cells
    profile_used: bool  # whether the profile is applied (p < PROFILE_ALPHA), else flat

    @property
    def n_magnitudes(self) -> int:
        return int(self.counts.shape[1])

    def at_outcomes(self, probs: np.ndarray) -> RecordedProtocol:
        """The protocol for a task whose K outcomes occur with ``probs`` (the in-task
        protocol's bins of G): each cell keeps its noise ratio and its total trials, shared
        over the outcomes by how often they occur (as the recorded counts follow the lab
        task's magnitude probabilities; at least 2 per outcome, one per half); the SD profile
        across magnitudes is carried over by rank (linear interpolation onto K points)."""
        probs = np.asarray(probs, dtype=float) / float(np.sum(probs))
        totals = self.counts.sum(axis=1, keepdims=True)  # [C, 1]
        counts = np.maximum(np.rint(totals * probs[None, :]), 2).astype(int)
        where = np.linspace(0.0, 1.0, probs.size)
        profile = np.interp(where, np.linspace(0.0, 1.0, self.n_magnitudes), self.sd_profile)
        w = np.maximum(np.median(counts, axis=0) - 1, 0)
        profile = profile / math.sqrt(float(w @ profile**2) / float(w.sum()))
        return dataclasses.replace(self, counts=counts, sd_profile=profile)

    def summary(self) -> dict[str, Any]:
        return {
            "n_cells": int(self.ratios.size),
            "noise_ratio_median": float(np.median(self.ratios)),
            "noise_ratio_range": [float(self.ratios.min()), float(self.ratios.max())],
            "trials_per_magnitude_median": [int(v) for v in np.median(self.counts, axis=0)],
            "noise_sd_profile": [float(v) for v in self.sd_profile],
            "noise_sd_profile_friedman_p": self.profile_p,
            "noise_sd_profile_used": self.profile_used,
            "definition": (
                "each simulated unit is paired with one recorded cell drawn at random: that "
                "cell's noise ratio rho (pooled within-magnitude trial SD / SD of its mean "
                "responses) times the unit's own response spread, and that cell's trial count "
                "at each magnitude; the SD at magnitude k is scaled by the recorded cells' "
                "median relative SD at k (pooled over magnitudes = 1) when the cells' SD "
                "depends on magnitude (Friedman test p < 0.01)"
            ),
        }


def recorded_protocol(table: pd.DataFrame | None = None) -> RecordedProtocol:
    """The protocol measured on a recorded table (default: the committed 40 cells)."""
    if table is None:
        return _packaged_protocol()
    return _measure_protocol(table)


@functools.lru_cache(maxsize=1)
def _packaged_protocol() -> RecordedProtocol:
    from ..data.tidy import PACKAGED_TABLE, load_cell_table

    return _measure_protocol(load_cell_table(PACKAGED_TABLE))


def _measure_protocol(table: pd.DataFrame) -> RecordedProtocol:
    from .noise import noise_ratios

    g = table.groupby(["cell", "magnitude"])["response"]
    counts = g.count().unstack().fillna(0)
    sd = g.std(ddof=1).unstack()
    dof = (counts - 1).clip(lower=0)
    pooled = np.sqrt((dof * sd**2).sum(axis=1) / dof.sum(axis=1))
    relative = sd.div(pooled, axis=0).dropna()
    profile_p = math.nan
    if len(relative) >= 3 and relative.shape[1] >= 3:
        profile_p = float(scipy.stats.friedmanchisquare(*relative.to_numpy().T).pvalue)
    profile = relative.median(axis=0).to_numpy(dtype=float)
    used = bool(math.isfinite(profile_p) and profile_p < PROFILE_ALPHA)
    if used:
        # Pooled over magnitudes (weighted by the median trial dof) the profile is 1, so ρ keeps
        # its meaning: pooled within-magnitude SD / response spread.
        w = np.maximum(np.median(counts.to_numpy(), axis=0) - 1, 0)
        profile = profile / math.sqrt(float(w @ profile**2) / float(w.sum()))
    else:
        profile = np.ones(counts.shape[1])
    ratios = noise_ratios(table).reindex(counts.index).to_numpy(dtype=float)
    return RecordedProtocol(
        ratios=ratios,
        counts=counts.to_numpy(dtype=int),
        sd_profile=profile,
        profile_p=profile_p,
        profile_used=used,
    )


# ----------------------------------------------------------------------------- batched core


def simulate_recordings(
    mean: np.ndarray,
    protocol: RecordedProtocol,
    n_draws: int,
    n_units: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """``n_draws`` noisy recordings of ``n_units`` units of a population with noise-free mean
    responses ``mean`` [N, K]; returns responses [D, U, K, L] and a validity mask (trial
    slot ℓ of unit u at magnitude k exists) of the same shape, L the largest recorded count.
    Populations stacked as ``mean`` [P, N, K] share every random draw (the same units, cells
    and noise: common random numbers) and give responses [P, D, U, K, L]."""
    mean = np.asarray(mean, dtype=float)
    n, k = mean.shape[-2:]
    if k != protocol.n_magnitudes:
        raise DataError(
            f"the population has {k} magnitudes, the recorded cells {protocol.n_magnitudes}"
        )
    if n < n_units:
        raise DataError(f"the head has {n} units, fewer than the {n_units} the protocol draws")
    units = np.argsort(rng.random((n_draws, n)), axis=1)[:, :n_units]  # [D, U] no replacement
    cells = rng.integers(protocol.ratios.size, size=(n_draws, n_units))  # [D, U]
    mu = mean[..., units, :]  # [(P,) D, U, K]
    spread = mu.std(axis=-1)  # the unit's own response spread across magnitudes
    sd = (protocol.ratios[cells] * spread)[..., None] * protocol.sd_profile  # [D, U, K]
    counts = protocol.counts[cells]  # [D, U, K]
    slots = int(protocol.counts.max())
    valid = np.arange(slots) < counts[..., None]
    noise = rng.standard_normal((n_draws, n_units, k, slots))
    resp = np.where(valid, mu[..., None] + sd[..., None] * noise, 0.0)
    return resp, valid


def trial_layout(
    table: pd.DataFrame | CellTrials,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Any]]:
    """A tidy table's trials as arrays: responses [C, K, L], validity [C, K, L], the
    magnitudes [K] and the cells (order of appearance)."""
    pop = by_cell(table)
    k = pop.n_magnitudes
    counts = np.stack([np.bincount(m, minlength=k) for m in pop.mag_index])
    slots = int(counts.max())
    resp = np.zeros((len(pop.cells), k, slots))
    valid = np.zeros_like(resp, dtype=bool)
    for c, (mags, r) in enumerate(pop.cell_trials()):
        order = np.argsort(mags, kind="stable")
        mags, r = mags[order], r[order]
        slot = np.arange(mags.size) - np.searchsorted(mags, mags)  # index within magnitude
        resp[c, mags, slot] = r
        valid[c, mags, slot] = True
    return resp, valid, pop.magnitudes, pop.cells


def split_trials(
    resp: np.ndarray, valid: np.ndarray, rng: np.random.Generator, bootstrap: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One random stratified split per leading index: within every (unit, magnitude) the
    ⌊n/2⌋ trials with the lowest random keys form half A.

    Returns (responses, in_a, in_b) with the trials reordered so that half A holds slots
    0..⌊n/2⌋−1 and half B the next ⌈n/2⌉ slots. ``bootstrap``: each half's trials are then
    resampled with replacement within the half (a new recording of the same size).
    """
    keys = np.where(valid, rng.random(resp.shape), np.inf)
    order = np.argsort(keys, axis=-1)
    resp = np.take_along_axis(resp, order, axis=-1)
    n = valid.sum(axis=-1, keepdims=True)
    n_a = n // 2
    slot = np.arange(resp.shape[-1])
    in_a = slot < n_a
    in_b = (slot >= n_a) & (slot < n)
    if bootstrap:
        u = rng.random(resp.shape)
        idx = np.where(in_a, np.floor(u * n_a), n_a + np.floor(u * (n - n_a)))
        idx = np.where(in_a | in_b, idx, 0).astype(int)
        resp = np.take_along_axis(resp, idx, axis=-1)
    return resp, in_a, in_b


def reversal_points(
    resp: np.ndarray, mask: np.ndarray, axis: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """The paper's count-criterion reversal point [...] of the trials selected by ``mask``
    (responses [..., K, L]); :func:`agent.probes.analysis.reversal_point`, batched."""
    pos = ((resp > 0) & mask).sum(axis=-1)
    neg = ((resp < 0) & mask).sum(axis=-1)
    return rp_from_criterion(criterion(pos, neg), axis, rng)


def asymmetries(resp: np.ndarray, mask: np.ndarray, axis: np.ndarray, rp: np.ndarray) -> np.ndarray:
    """Trial-level τ = α⁺/(α⁺ + α⁻) [...] around ``rp`` [...] of the selected trials;
    :func:`agent.probes.analysis.trial_asymmetry` (linear slopes), batched."""
    counts = mask.sum(axis=-1).astype(float)  # [..., K]
    sums = np.where(mask, resp, 0.0).sum(axis=-1)
    x = axis - rp[..., None]
    slopes = []
    for side in (x >= 0, x <= 0):
        sel = side & (counts > 0)
        sxx = np.where(sel, counts * x**2, 0.0).sum(axis=-1)
        sxy = np.where(sel, x * sums, 0.0).sum(axis=-1)  # Σ_m n_m·x_m·r̄_m = Σ_m x_m·Σr
        with np.errstate(invalid="ignore", divide="ignore"):
            slopes.append(np.where(sxx > 0, sxy / sxx, np.nan))
    denom = slopes[0] + slopes[1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(np.isfinite(denom) & (denom != 0), slopes[0] / denom, np.nan)


def pearson(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pearson r and two-sided p across the last axis over finite pairs (as
    scipy.stats.pearsonr); NaN where fewer than 3 pairs or no variance."""
    ok = np.isfinite(x) & np.isfinite(y)
    n = ok.sum(axis=-1)
    nn = np.maximum(n, 1)
    mx = np.where(ok, x, 0.0).sum(axis=-1, keepdims=True) / nn[..., None]
    my = np.where(ok, y, 0.0).sum(axis=-1, keepdims=True) / nn[..., None]
    dx = np.where(ok, x - mx, 0.0)
    dy = np.where(ok, y - my, 0.0)
    sxx, syy = (dx**2).sum(axis=-1), (dy**2).sum(axis=-1)
    good = (n >= 3) & (sxx > 0) & (syy > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.clip((dx * dy).sum(axis=-1) / np.sqrt(sxx * syy), -1.0, 1.0)
        df = np.maximum(n - 2, 1)
        t = r * np.sqrt(df / np.maximum(1.0 - r**2, 1e-300))
    p = 2.0 * scipy.stats.t.sf(np.abs(t), df)
    return np.where(good, r, np.nan), np.where(good, p, np.nan)


@dataclass(frozen=True)
class HalvesResult:
    """Per draw [B]: split-half and cross-validated τ–RP r and p."""

    split_half_r: np.ndarray
    split_half_p: np.ndarray
    tau_rp_r: np.ndarray
    tau_rp_p: np.ndarray
    # the same with Spearman's rank correlation (robust to outlying units)
    split_half_rank_r: np.ndarray
    split_half_rank_p: np.ndarray
    tau_rp_rank_r: np.ndarray
    tau_rp_rank_p: np.ndarray


def analyse_halves(
    resp: np.ndarray,
    in_a: np.ndarray,
    in_b: np.ndarray,
    axis: np.ndarray,
    rng: np.random.Generator,
) -> HalvesResult:
    """The paper's cross-validation of recordings [B, U, K, L] split into halves A and B:
    RP_A, RP_B and τ_B per unit; r(RP_A, RP_B) and r(τ_B, RP_A) across units per recording."""
    rp_a, rp_b, tau_b = halves_pairs(resp, in_a, in_b, axis, rng)
    return HalvesResult(
        *pearson(rp_a, rp_b), *pearson(rp_a, tau_b),
        *pearson(*rank_pairs(rp_a, rp_b)), *pearson(*rank_pairs(rp_a, tau_b)),
    )  # fmt: skip


def rank_pairs(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average ranks along the last axis of the jointly finite pairs (others NaN): Pearson
    on them is Spearman's rank correlation, with its usual t-approximation p."""
    ok = np.isfinite(x) & np.isfinite(y)
    out = []
    for v in (x, y):
        ranked = scipy.stats.rankdata(np.where(ok, v, np.inf), axis=-1)
        out.append(np.where(ok, ranked, np.nan))
    return out[0], out[1]


def all_trial_pairs(
    resp: np.ndarray, valid: np.ndarray, axis: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(RP, τ) of every unit from all its trials (what the decode reads)."""
    rp = reversal_points(resp, valid, axis, rng)
    return rp, asymmetries(resp, valid, axis, rp)


def halves_pairs(
    resp: np.ndarray,
    in_a: np.ndarray,
    in_b: np.ndarray,
    axis: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RP_A, RP_B and τ_B [B, U] (τ_B around RP_B) of recordings split into halves A and B."""
    rp_a = reversal_points(resp, in_a, axis, rng)
    rp_b = reversal_points(resp, in_b, axis, rng)
    return rp_a, rp_b, asymmetries(resp, in_b, axis, rp_b)


def concat(parts: list[HalvesResult]) -> HalvesResult:
    """The recordings of several batches, in order."""
    names = [f.name for f in dataclasses.fields(HalvesResult)]
    return HalvesResult(*(np.concatenate([getattr(p, f) for p in parts]) for f in names))


# ----------------------------------------------------------------------------- typed stages


@dataclass(frozen=True)
class Recording:
    """Trials of B recordings of U units: ``responses`` [B, U, K, L] with ``valid`` of the same
    shape (trial slot ℓ of unit u at magnitude k exists) on the utility ``axis`` [K]."""

    responses: np.ndarray
    valid: np.ndarray
    axis: np.ndarray

    def __post_init__(self) -> None:
        if self.responses.ndim != 4 or self.valid.shape != self.responses.shape:
            raise ValueError(
                f"a recording is [B, U, K, L] responses with a mask of the same shape, got "
                f"{self.responses.shape} and {self.valid.shape}"
            )
        if self.axis.shape != (self.responses.shape[2],):
            raise ValueError(f"axis {self.axis.shape} does not match K = {self.responses.shape[2]}")

    @property
    def n_recordings(self) -> int:
        return int(self.responses.shape[0])

    @property
    def n_units(self) -> int:
        return int(self.responses.shape[1])

    @classmethod
    def simulated(
        cls,
        mean: np.ndarray,
        protocol: RecordedProtocol,
        axis: np.ndarray,
        n_recordings: int,
        n_units: int,
        rng: np.random.Generator,
    ) -> Recording:
        """``n_recordings`` of ``n_units`` units drawn from ``mean`` [N, K] under the recorded
        ``protocol`` (:func:`simulate_recordings`)."""
        resp, valid = simulate_recordings(mean, protocol, n_recordings, n_units, rng)
        return cls(resp, valid, np.asarray(axis, dtype=float))

    @classmethod
    def with_counts(
        cls,
        mean: np.ndarray,
        counts: np.ndarray,
        sd: np.ndarray,
        axis: np.ndarray,
        rng: np.random.Generator,
    ) -> Recording:
        """One recording of every unit of ``mean`` [U, K]: ``counts`` [K] trials at each
        magnitude, Gaussian noise of SD ``sd`` [U] per unit. The noise is drawn unit by unit in
        trial order, as :func:`agent.probes.noise.noisy_trials` draws it."""
        mean = np.asarray(mean, dtype=float)
        counts = np.asarray(counts, dtype=int)
        u, k = mean.shape
        mags = np.repeat(np.arange(k), counts)  # one unit's trials, magnitude by magnitude
        slot = np.arange(mags.size) - np.searchsorted(mags, mags)
        noise = rng.standard_normal((u, mags.size))
        resp = np.zeros((1, u, k, int(counts.max())))
        valid = np.zeros(resp.shape, dtype=bool)
        resp[0, :, mags, slot] = (mean[:, mags] + np.asarray(sd, float)[:, None] * noise).T
        valid[0, :, mags, slot] = True
        return cls(resp, valid, np.asarray(axis, dtype=float))

    @classmethod
    def from_cells(cls, cells: pd.DataFrame | CellTrials, axis: np.ndarray) -> Recording:
        """A tidy table's trials (cells in order of appearance) as a batch of one."""
        resp, valid, _, _ = trial_layout(cells)
        return cls(resp[None], valid[None], np.asarray(axis, dtype=float))

    def repeated(self, n: int) -> Recording:
        """``n`` copies of a single recording (to split it ``n`` ways at once; no copy made)."""
        if self.n_recordings != 1:
            raise ValueError("only a single recording is repeated")
        shape = (n, *self.responses.shape[1:])
        return Recording(
            np.broadcast_to(self.responses[0], shape), np.broadcast_to(self.valid[0], shape),
            self.axis,
        )  # fmt: skip

    def split(self, rng: np.random.Generator, bootstrap: bool = False) -> Halves:
        """One random stratified split of each recording (:func:`split_trials`)."""
        resp, in_a, in_b = split_trials(self.responses, self.valid, rng, bootstrap)
        return Halves(resp, in_a, in_b, self.axis)

    def all_trials(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(RP, τ) [B, U] of every unit from all its trials."""
        return all_trial_pairs(self.responses, self.valid, self.axis, rng)


@dataclass(frozen=True)
class Halves:
    """Recordings split into halves: trials reordered so that ``in_a`` and ``in_b`` select them."""

    responses: np.ndarray  # [B, U, K, L]
    in_a: np.ndarray
    in_b: np.ndarray
    axis: np.ndarray

    def pairs(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """RP_A, RP_B and τ_B [B, U] (:func:`halves_pairs`)."""
        return halves_pairs(self.responses, self.in_a, self.in_b, self.axis, rng)

    def analyse(self, rng: np.random.Generator) -> HalvesResult:
        """Split-half and cross-validated τ–RP r and p per recording (:func:`analyse_halves`)."""
        return analyse_halves(self.responses, self.in_a, self.in_b, self.axis, rng)
