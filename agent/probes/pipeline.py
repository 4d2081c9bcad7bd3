"""One pipeline for neurons and units: decode from the (RP, τ) the analysis estimated.

Dabney et al. 2020 (Fig. 5) decode the reward distribution from each cell's reversal point
and asymmetry read as an (expectile, τ) pair. The same is done here for every population:
recorded cells, agent units and simulations alike are decoded from the pairs that
:func:`agent.probes.analysis.analyse_population` estimated from their noisy trials. Two
spaces are offered:

- ``utility``: the pairs as they are, on the utility axis U₁..U_K (spikes/s for cells,
  utility units for agents), samples bounded to [U₁, U_K];
- ``reward``: each reversal point mapped back to µl through the monotone utility axis
  (piecewise-linear interpolation of U₁..U_K against the magnitudes, as the paper), samples
  bounded to [min, max magnitude] = [0.1, 20] µl on the variable-magnitude task.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .decoding import decode_report

SPACES = ("utility", "reward")
UNITS = {"utility": "utility (axis units)", "reward": "reward (µl)"}


def utility_to_reward(
    points: Sequence[float] | np.ndarray,
    axis: Sequence[float] | np.ndarray,
    magnitudes: Sequence[float] | np.ndarray,
) -> np.ndarray:
    """Map values on the utility axis to reward sizes by interpolating U₁..U_K → magnitudes.

    The axis must increase (the empirical one does for the recorded cells); values outside
    [U₁, U_K] are clipped to the end magnitudes.
    """
    u = np.asarray(axis, dtype=float)
    m = np.asarray(magnitudes, dtype=float)
    if np.any(np.diff(u) <= 0):
        # A non-monotone empirical axis has no inverse; use its running maximum, said in notes.
        u = np.maximum.accumulate(u) + 1e-9 * np.arange(u.size)
    return np.interp(np.asarray(points, dtype=float), u, m)


def _pairs(result: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rps = np.array([np.nan if v is None else v for v in result["reversal_points"]], float)
    taus = np.array([np.nan if v is None else v for v in result["asymmetries"]], float)
    usable = np.isfinite(rps) & np.isfinite(taus) & (taus > 0) & (taus < 1)
    return rps, taus, usable


def pipeline_decodes(
    result: dict[str, Any],
    probs: Sequence[float] | np.ndarray,
    *,
    spaces: Sequence[str] = SPACES,
    seed: int = 0,
    restarts: int = 5,
) -> dict[str, dict[str, Any]]:
    """Decodes of an analysed population from its estimated (RP, τ) pairs, per space.

    ``result`` is :func:`analyse_population`'s output (``reversal_points``, ``asymmetries``,
    ``utility_axis``, ``magnitudes``); ``probs`` the true probability of each magnitude. In
    the utility space the truth is each magnitude's axis value; in reward space the
    magnitude itself. Returns ``{space: decode_report + cells_used, space, unit, note}``.
    """
    u = np.asarray(result["utility_axis"], dtype=float)
    mags = np.asarray(result["magnitudes"], dtype=float)
    probs = np.asarray(probs, dtype=float)
    rps, taus, usable = _pairs(result)
    out: dict[str, dict[str, Any]] = {}
    for space in spaces:
        if space == "utility":
            e, truth = rps[usable], u
            note = "pipeline (RP, tau) pairs read as (expectile, tau) on the utility axis"
        elif space == "reward":
            e, truth = utility_to_reward(rps[usable], u, mags), mags
            note = (
                "reversal points mapped to reward through the utility axis (interpolation "
                f"of U_1..U_K against the magnitudes); samples bounded to [{mags.min():g}, "
                f"{mags.max():g}]"
            )
        else:
            raise ValueError(f"space must be one of {SPACES}, got {space!r}")
        if usable.sum() == 0:
            # e.g. an untrained head: no cell has a finite τ inside (0, 1) to decode from.
            out[space] = {
                "samples": [], "wasserstein1": None, "ks": None, "identifiable": False,
                "reason": "no cell has a finite asymmetry strictly between 0 and 1",
                "cells_used": 0, "space": space, "unit": UNITS[space], "note": note,
                "true_values": [float(v) for v in truth], "references": {},
            }  # fmt: skip
            continue
        rep = decode_report(e, taus[usable], truth, probs, seed=seed, restarts=restarts)
        rep.update(
            cells_used=int(usable.sum()), space=space, unit=UNITS[space], note=note,
            true_values=[float(v) for v in truth],
        )  # fmt: skip
        if np.any(np.diff(u) <= 0):
            rep["note"] += "; the utility axis is not increasing, so the decode is rough"
        out[space] = rep
    return out


def robustness_and_overlay(
    result: dict[str, Any],
    probs: Sequence[float] | np.ndarray,
    utility_values: Sequence[float] | np.ndarray,
    *,
    seed: int = 0,
    restarts: int = 2,
    robustness: bool = True,
) -> dict[str, Any]:
    """docs/science.md §6 extras of an analysed population, for probe.json (``robustness=False``
    skips the seven extra decodes of the robustness analysis).

    ``decode_robustness``: the reward-space decode from the pipeline's (RP, τ) with degraded
    asymmetries against altered truths (:func:`agent.probes.paper_extras.decode_robustness`).
    ``simulation_overlay``: the paper's distributional-TD simulation on ``utility_values``
    (the model's utility of each magnitude), mapped onto the result's utility axis.
    """
    from .paper_extras import decode_robustness, simulation_overlay

    u = np.asarray(result["utility_axis"], dtype=float)
    mags = np.asarray(result["magnitudes"], dtype=float)
    rps, taus, usable = _pairs(result)
    out: dict[str, Any] = {}
    if robustness and usable.sum() >= 2:
        out["decode_robustness"] = decode_robustness(
            utility_to_reward(rps[usable], u, mags), taus[usable], mags, probs,
            restarts=restarts, seed=seed,
        )  # fmt: skip
        out["decode_robustness"]["space"] = "reward"
    x, y = simulation_overlay(utility_values, probs, axis=u, seed=seed)
    out["simulation_overlay"] = {"distributional-TD simulation (151 cells)": [x, y]}
    return out
