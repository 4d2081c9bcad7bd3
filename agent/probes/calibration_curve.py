"""The calibration curve of a task: how often the detection study would find the paper's two
findings in a population that is miscalibrated by a known amount (issue 36 item 1;
docs/science.md §8).

P(both) alone is a cliff, not a measure: it cannot tell "no code" from "a code at 80 % of its
scale". So beside every detection result the study places ideal units at a grid of spread
ratios c and offsets o and runs the same protocol on them. At every probed state of every seed
of a group (:class:`agent.probes.calibration.StateUnits`), unit i with target tᵢ is placed at

    vᵢ = c · (tᵢ − mean t) + mean t + o · s          (s: the seed's pooled return SD)

so that :func:`agent.probes.calibration.calibrate` reports exactly (c, o); its responses are
the own-gradient responses of a unit at vᵢ (:func:`agent.probes.calibration.ideal_responses`),
and the protocol, draws and detection rule are the study's. c = 1, o = 0 is the ideal ceiling.

**Common random numbers.** Every placement of a (seed, state) reuses one random stream: the
same units drawn, the same recorded cells, noise and splits (only ties of the count criterion
are broken by independent jitter). So the curve's differences between placements come from the
placement alone, which makes it smooth in c and o at modest draws; its intervals are still
each placement's own (binomial over seeds × draws, clustered by seed, as every P(both) of the
study).

Cost: the placements × the study's draws per group of units (one per agent and task, shared
by its response models), all placements of a (seed, state) simulated as one batch: 4–8 s of
CPU per agent at 43 placements × 3 seeds × 50 draws on MinAtar (docs/results.md §8b).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .calibration import StateUnits, ideal_responses, pooled_return_sd
from .recording import HalvesResult, analyse_halves, concat, simulate_recordings, split_trials
from .statistics import detected, detection_probability, study_rng

#: the spread ratios and offsets (in the seed's pooled return SD) of the curve's grid
SPREAD_RATIOS = (0.25, 0.5, 0.7, 0.8, 0.9, 1.0, 1.2)
OFFSETS = (-1.0, -0.5, 0.0, 0.5, 1.0, 2.0)
#: values simulated at once (placements × draws × units × outcomes × trial slots; 32 MB)
BATCH_VALUES = 4_000_000
#: the detection numbers each placement reports (Spearman: the headline; Pearson beside)
KEYS = ("rank_p_detect_both", "rank_p_detect_both_ci", "p_detect_both", "p_detect_both_ci",
        "p_detect_both_count", "rank_p_detect_both_count")  # fmt: skip

NOTE = (
    "ideal units placed at spread ratio c and offset o: at every probed state of every seed, "
    "unit i at c * (target_i - mean target) + mean target + o * s (s: the seed's pooled "
    "return SD, as the calibration's), own-gradient responses, the study's protocol, draws and "
    "detection rule; every placement of a (seed, state) uses the same random draws (units, "
    "recorded cells, noise, splits: common random numbers; only ties of the reversal-point "
    "criterion are broken independently), so differences between placements are the "
    "placement's; intervals: each placement's own 95 % (as every P(both)); c = 1, "
    "o = 0 is the ideal ceiling; 'agent': the placement at the group's median c and offset"
)


def placed_values(units: StateUnits, spread_ratio: float, offset: float) -> np.ndarray:
    """[C, N] the units at every state placed at ``spread_ratio`` × their targets' spread about
    the targets' mean, shifted by ``offset`` pooled return SDs (module docstring)."""
    scale = pooled_return_sd(units.return_means, units.return_sds)
    centre = units.targets.mean(axis=1, keepdims=True)
    return spread_ratio * (units.targets - centre) + centre + offset * scale


def placed_detection(
    group: Any,
    units: Sequence[StateUnits],
    placements: Sequence[tuple[float, float]],
    protocol: Any,
    *,
    draws: int,
    n_units: int,
    alpha: float,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """P(both) (Spearman and Pearson, with intervals) of ideal units at each (c, offset) of
    ``placements``, at ``group``'s states and outcomes under ``protocol``: the study's draws
    shared out over each seed's states in turn; all placements of a (seed, state) simulated
    as one batch that shares every random draw (:func:`agent.probes.detection.
    simulate_recordings` with stacked populations; the split is shared too)."""
    n_place = len(placements)
    per_placement: list[list[HalvesResult]] = [[] for _ in placements]
    for i, (s, u) in enumerate(zip(group.seeds, units, strict=True)):
        conditions = group.conditions(i)
        shares = np.bincount(np.arange(draws) % len(conditions), minlength=len(conditions))
        values = np.stack([placed_values(u, c, o) for c, o in placements])  # [P, C, N]
        parts: list[list[HalvesResult]] = [[] for _ in placements]
        for state, ((axis, _, probs, _), n_draws) in enumerate(zip(conditions, shares,
                                                                    strict=True)):  # fmt: skip
            proto = protocol.at_outcomes(probs) if group.cue_axes is not None else protocol
            means = np.stack([ideal_responses(u.taus, v[state], axis) for v in values])
            rng = study_rng(seed, "calibration curve", group.agent, group.task, s, state)
            slots = int(proto.counts.max())
            chunk = max(1, BATCH_VALUES // (n_place * n_units * axis.size * slots))
            for start in range(0, int(n_draws), chunk):
                d = min(chunk, int(n_draws) - start)
                resp, valid = simulate_recordings(means, proto, d, n_units, rng)
                # one split for every placement: split the slot indices, then take them
                order, in_a, in_b = split_trials(
                    np.broadcast_to(np.arange(slots, dtype=float), valid.shape), valid, rng
                )
                resp = np.take_along_axis(resp, order.astype(int)[None], axis=-1)
                flat = resp.reshape(n_place * d, *resp.shape[2:])
                res = analyse_halves(flat, np.broadcast_to(in_a, resp.shape).reshape(flat.shape),
                                     np.broadcast_to(in_b, resp.shape).reshape(flat.shape),
                                     axis, rng)  # fmt: skip
                for j in range(n_place):
                    parts[j].append(_rows(res, slice(j * d, (j + 1) * d)))
        for j in range(n_place):
            per_placement[j].append(concat(parts[j]))
    out = []
    for (c, o), per_seed in zip(placements, per_placement, strict=True):
        hits = {
            name: np.stack([detected(getattr(h, f"split_half{rank}_r"),
                                     getattr(h, f"split_half{rank}_p"), alpha)
                            & detected(getattr(h, f"tau_rp{rank}_r"),
                                       getattr(h, f"tau_rp{rank}_p"), alpha)
                            for h in per_seed])
            for name, rank in (("p_detect_both", ""), ("rank_p_detect_both", "_rank"))
        }  # fmt: skip
        point: dict[str, Any] = {"spread_ratio": c, "offset": o}
        for name, h in hits.items():
            d = detection_probability(h)
            point.update({name: d["p"], f"{name}_ci": d["ci"], f"{name}_count": [d["k"], d["n"]]})
        out.append(point)
    return out


def _rows(res: HalvesResult, rows: slice) -> HalvesResult:
    return HalvesResult(*(getattr(res, f)[rows] for f in HalvesResult.__dataclass_fields__))


def calibration_curve(
    group: Any,
    units: Sequence[StateUnits],
    calibration: dict[str, Any],
    protocol: Any,
    *,
    draws: int,
    n_units: int,
    alpha: float,
    seed: int = 0,
    spread_ratios: Sequence[float] = SPREAD_RATIOS,
    offsets: Sequence[float] = OFFSETS,
) -> dict[str, Any]:
    """detection.json ``calibration_curve`` of a group of units: P(both) on the grid of
    ``spread_ratios`` × ``offsets`` and at the group's own median (c, offset) from its
    ``calibration`` (:func:`agent.probes.calibration.group_calibration`), which is left out
    (``agent`` None, with the reason) where c is undefined; ``ceiling``: the point c = 1,
    offset 0 (in the grid or added). Targets that do not spread at every state (a classical
    head) have no curve: every placement is the ceiling; ``undefined`` says so."""
    c_med = calibration["spread_ratio"]["median"]
    o_med = calibration["offset"]["median"]
    spreads = calibration["spread_ratio"]["n_seeds"] > 0  # c defined at some seed's states
    grid = [(float(c), float(o)) for o in offsets for c in spread_ratios] if spreads else []
    if (1.0, 0.0) not in grid:
        grid.append((1.0, 0.0))
    at_agent = c_med is not None and o_med is not None
    placements = grid + ([(float(c_med), float(o_med))] if at_agent else [])
    points = placed_detection(group, units, placements, protocol, draws=draws,
                              n_units=n_units, alpha=alpha, seed=seed)  # fmt: skip
    agent = points.pop() if at_agent else None
    ceiling = points[grid.index((1.0, 0.0))]
    out: dict[str, Any] = {
        "note": NOTE,
        "n_seeds": len(group.seeds),
        "n_draws": draws,
        "spread_ratios": [float(c) for c in spread_ratios] if spreads else [],
        "offsets": [float(o) for o in offsets] if spreads else [],
        "points": points if spreads else [],
        "ceiling": ceiling,
        "agent": None if agent is None else {
            **agent,
            "spread_ratio_interval": calibration["spread_ratio"]["interval"],
            "offset_interval": calibration["offset"]["interval"],
        },
    }  # fmt: skip
    if not spreads:
        out["undefined"] = (
            "the targets do not spread at any state (mean units: every target is the mean), so "
            "every placement is the ceiling"
        )
    if agent is None:
        out["agent_undefined"] = "the group's median c or offset is undefined"
    return out


def curve_slice(curve: dict[str, Any], *, offset: float | None = None,
                spread_ratio: float | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """The grid's points at one ``offset`` (ordered by c) or one ``spread_ratio`` (ordered by
    offset): the 1-D slices of the curve."""
    if (offset is None) == (spread_ratio is None):
        raise ValueError("curve_slice: give exactly one of offset and spread_ratio")
    if offset is not None:
        pts = [p for p in curve["points"] if math.isclose(p["offset"], offset)]
        return sorted(pts, key=lambda p: p["spread_ratio"])
    assert spread_ratio is not None
    pts = [p for p in curve["points"] if math.isclose(p["spread_ratio"], spread_ratio)]
    return sorted(pts, key=lambda p: p["offset"])
