"""Importer for the Uchida-lab recordings of the variable-magnitude task (Dabney et al. 2020).

One MATLAB v5 file per cell, holding `events` (per trial `odorOn`, `trialType`) and
`responses` (`spike` time stamps in ms). The response of each trial is extracted as in
docs/science.md section 3; the result is a tidy cell table (one row per trial).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import scipy.io
import scipy.signal

from ..core.errors import DataError

#: Reward sizes (µl) by magnitude index 1..7.
MAGNITUDES_UL = np.array([0.1, 0.3, 1.2, 2.5, 5.0, 10.0, 20.0])

_PRE_MS = 1000  # trial window starts 1000 ms before odour onset (or uncued reward)
_POST_MS = 3000  # ... and ends 3000 ms after it
_UNCUED_WINDOW_MS = (200, 600)  # after the reward, which is at odour-onset time on uncued trials
_CUED_WINDOW_MS = (1700, 2100)  # after odour onset (reward comes at 1500 ms)


def smoothing_kernel() -> np.ndarray:
    """k(t) = (1 − e^{−t})·e^{−t/20} for t = 0..50 ms, normalised to sum 1."""
    t = np.arange(51, dtype=float)
    k = (1.0 - np.exp(-t)) * np.exp(-t / 20.0)
    return k / k.sum()


def _smooth_causal(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """y[n] = Σ_t k[t]·x[n − t] along the last axis (zeros before the window)."""
    # One FFT convolution over the whole trials × time matrix; a per-row FIR loop is 20× slower.
    full = scipy.signal.fftconvolve(x, k[None, :], axes=-1)
    return full[..., : x.shape[-1]]


def _smooth_centred(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """The same kernel with its middle sample at lag 0 (zeros beyond both ends)."""
    half = (len(k) - 1) // 2
    full = scipy.signal.fftconvolve(x, k[None, :], axes=-1)
    return full[..., half : half + x.shape[-1]]


def trial_responses(spikes_ms: np.ndarray, onsets_ms: np.ndarray, cued: np.ndarray) -> np.ndarray:
    """Baseline-subtracted smoothed rate (spikes/s) in each trial's response window.

    spikes_ms: sorted spike times; onsets_ms: per-trial odour onset (reward time when uncued);
    cued: per-trial bool. Returns one response per trial.
    """
    return trial_responses_and_baselines(spikes_ms, onsets_ms, cued)[0]


def trial_responses_and_baselines(
    spikes_ms: np.ndarray, onsets_ms: np.ndarray, cued: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(responses, baselines) per trial, both in spikes/s.

    The response is that of :func:`trial_responses`; the baseline is the trial's mean smoothed
    rate over −1000..0 ms, the value subtracted before the second smoothing (docs/science.md §6).
    """
    n_bins = _PRE_MS + _POST_MS
    onsets = np.asarray(onsets_ms, dtype=float)
    spikes = np.sort(np.asarray(spikes_ms, dtype=float).ravel())
    # Spike counts in 1 ms bins, all trials at once: find each trial's spike range, then bincount.
    lo = np.searchsorted(spikes, onsets - _PRE_MS, side="left")
    hi = np.searchsorted(spikes, onsets + _POST_MS, side="left")
    counts = hi - lo
    trial_of_spike = np.repeat(np.arange(len(onsets)), counts)
    # Index of each spike in `spikes`: its trial's first index plus its rank within the trial.
    starts = np.repeat(lo - (np.cumsum(counts) - counts), counts)
    spike_idx = starts + np.arange(counts.sum())
    rel = spikes[spike_idx] - onsets[trial_of_spike] + _PRE_MS
    bins = np.clip(np.floor(rel).astype(int), 0, n_bins - 1)
    raster = np.bincount(trial_of_spike * n_bins + bins, minlength=len(onsets) * n_bins).astype(
        float
    )
    raster = raster.reshape(len(onsets), n_bins)

    k = smoothing_kernel()
    rate = _smooth_causal(raster, k) * 1000.0  # per 1 ms bin → spikes/s
    baseline = rate[:, :_PRE_MS].mean(axis=1)
    rate -= baseline[:, None]
    rate = _smooth_centred(rate, k)

    uncued_mean = rate[:, _PRE_MS + _UNCUED_WINDOW_MS[0] : _PRE_MS + _UNCUED_WINDOW_MS[1]].mean(1)
    cued_mean = rate[:, _PRE_MS + _CUED_WINDOW_MS[0] : _PRE_MS + _CUED_WINDOW_MS[1]].mean(1)
    return np.where(np.asarray(cued, dtype=bool), cued_mean, uncued_mean), baseline


def _field(struct: object, name: str, path: Path, struct_name: str) -> np.ndarray:
    if not hasattr(struct, name):
        raise DataError(f"{path}: struct '{struct_name}' has no field '{name}'")
    try:
        return np.atleast_1d(np.asarray(getattr(struct, name), dtype=float))
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: {struct_name}.{name} is not numeric") from exc


_NAME_SUFFIXES = ("_CommonFormat_verified", "_CommonFormat", "_Common")


def cell_id(path: str | Path) -> str:
    """Cell id from a file name: the stem without the lab's '_Common…' format suffix."""
    stem = Path(path).stem
    for suffix in _NAME_SUFFIXES:
        if stem.endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def cued_uncued_shift(table: pd.DataFrame) -> float:
    """The authors' one population-wide constant added to every uncued response
    (docs/science.md §3).

    mean over cells and magnitudes of each cell's mean cued response at each magnitude, minus
    the same mean of the uncued responses. ``table`` holds unpooled ``cell, magnitude, cued,
    response`` rows. A per-cell shift would move each cell's reversal point on its own.
    """
    means = table.groupby(["cell", "magnitude", "cued"])["response"].mean().unstack("cued")
    if True not in means.columns or False not in means.columns:
        return 0.0  # only one trial kind: nothing to align
    return float(means[True].mean() - means[False].mean())  # NaN (no trials) skipped


def _pool(table: pd.DataFrame, shift: float) -> pd.DataFrame:
    out = table.copy()
    out["response"] = np.where(out["cued"], out["response"], out["response"] + shift)
    out.attrs["uncued_shift"] = shift
    return out


def import_file(
    path: str | Path, *, cell: str | None = None, pool: bool = True, shift: float | None = None
) -> pd.DataFrame:
    """Tidy table (cell, magnitude, cued, trial, response, baseline) for one recorded cell.

    ``baseline`` is each trial's pre-stimulus rate (spikes/s, −1000..0 ms, before subtraction).
    With ``pool`` (default), every uncued response is shifted by ``shift``, by default
    :func:`cued_uncued_shift` of this cell alone (for a population use :func:`import_folder`,
    which applies one constant to all cells, as the authors did).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"recorded-cell file not found: {path}")
    try:
        mat = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
    except Exception as exc:  # scipy raises several types for corrupt/non-MAT files
        raise DataError(f"{path}: not a readable MATLAB file ({exc})") from exc
    for name in ("events", "responses"):
        if name not in mat:
            raise DataError(f"{path}: missing struct '{name}' (expected 'events' and 'responses')")
    on = _field(mat["events"], "odorOn", path, "events")
    trial_type = _field(mat["events"], "trialType", path, "events")
    spikes = _field(mat["responses"], "spike", path, "responses")
    if on.shape != trial_type.shape:
        raise DataError(f"{path}: events.odorOn and events.trialType differ in length")

    # Types 1–7 uncued, 8–14 cued; 15 (second odour) and NaN (not a task trial) are dropped.
    keep = np.isfinite(trial_type) & (trial_type >= 1) & (trial_type <= 14) & np.isfinite(on)
    if not keep.any():
        raise DataError(f"{path}: no trials of type 1-14 (cell has no task trials)")
    tt = trial_type[keep].astype(int)
    cued = tt >= 8
    mag_index = np.where(cued, tt - 7, tt) - 1
    response, baseline = trial_responses_and_baselines(spikes, on[keep], cued)
    table = pd.DataFrame(
        {
            "cell": cell if cell is not None else cell_id(path),
            "magnitude": MAGNITUDES_UL[mag_index],
            "cued": cued,
            "trial": np.flatnonzero(keep),
            "response": response,
            "baseline": baseline,
        }
    )
    if not pool:
        return table
    return _pool(table, cued_uncued_shift(table) if shift is None else float(shift))


def import_folder(folder: str | Path, *, pool: bool = True) -> pd.DataFrame:
    """Tidy table for every `*.mat` file in `folder` (ids from `cell_id`), sorted by name.

    With ``pool``, every uncued response of every cell is shifted by one population-wide
    constant (:func:`cued_uncued_shift`, stored in ``table.attrs["uncued_shift"]``).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"recorded-cell folder not found: {folder}")
    files = sorted(folder.glob("*.mat"))
    if not files:
        raise DataError(f"no .mat files in {folder}")
    table = pd.concat([import_file(f, pool=False) for f in files], ignore_index=True)
    return _pool(table, cued_uncued_shift(table)) if pool else table
