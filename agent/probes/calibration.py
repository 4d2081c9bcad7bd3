"""Calibration of a head's units against the distribution they should have learned: the
primary endpoint of the detection study (docs/science.md §8, issue 36 item 1).

At one state (a lab task's pre-outcome state, or one cue state of the in-task protocol) each
unit i has a value vᵢ and an asymmetry τᵢ, and a *target*: the statistic at τᵢ of the
outcome distribution presented there (expectile units: the τ-expectile; quantile units: the
τ-quantile; mean units: the mean). Lab tasks: the true distribution of the utility; in a
task: the rollouts' discounted returns G from the cloned cue state.

- **Spread ratio** c = SD over units of vᵢ / SD over units of the targets. c = 1: the units
  span the targets' range; c = 0.5: half of it (a compressed code). Undefined (NaN, with the
  reason) when the targets do not spread (mean units, a deterministic outcome).
- **Offset** = (mean of vᵢ − mean of the targets) / s, and **each unit's error**
  (vᵢ − targetᵢ) / s, in units of a return scale s.
- **The scale s** is the SD of the returns pooled over the seed's probed states: the SD of
  the equal-weight mixture of their outcome distributions, √(mean σ_c² + var μ_c). On a lab
  task (one state) that is the outcome's SD. Each state's own SD σ_c is the natural unit but
  vanishes at a nearly deterministic cue (the greedy policy's return known to a few points),
  where any value bias becomes tens of SDs; the pooled SD stays the size of the returns the
  agent meets at its cue states, is one number per seed (offsets comparable across its cue
  states), and is zero only when every state's return is the same constant.
- **Over seeds**: the per-seed statistic is the median over the seed's states; the group's
  median over seeds with a 95 % interval: percentile bootstrap of the median over seeds with
  4 or more seeds, the range (min, max) with fewer (a bootstrap of 2–3 values is no interval).

Where it is reported: every group of the study's detection.json (:func:`group_calibration`),
the lab probe's and the in-task probe's probe.json (:func:`calibration_of`,
:func:`cue_calibration`: per state and the medians over states, one seed, no interval over
seeds) and population_probe.json (:func:`members_calibration`: median and interval over
members). What a given (c, offset) costs in detection: :mod:`agent.probes.calibration_curve`.

Everything is batched over states: a single state is a batch of one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.errors import DataError

#: seeds from which the interval over seeds is a bootstrap (fewer: the range)
MIN_BOOTSTRAP_SEEDS = 4
BOOTSTRAP_RESAMPLES = 2000
#: targets whose SD is below this fraction of the return scale do not spread (c undefined)
MIN_TARGET_SPREAD = 1e-9

NOTE = (
    "noise-free: each unit's value at the state against its target, the statistic of the "
    "outcome distribution at its tau (expectile units: tau-expectile; quantile units: "
    "tau-quantile; mean units: the mean; lab task: the true utility distribution; in a task: "
    "the rollouts' returns G); spread ratio c = SD(units) / SD(targets) over units; offset = "
    "(mean units - mean targets) / s and unit errors (unit - target) / s, s = the SD of the "
    "returns pooled over the seed's probed states (equal-weight mixture; a lab task: the "
    "outcome SD), which, unlike each cue's own SD, does not vanish at a nearly deterministic "
    "cue; per seed the median over its states; median over seeds with a 95 % interval "
    "(percentile bootstrap over seeds with >= 4 seeds, else the range)"
)

PROBE_NOTE = (
    "noise-free: each unit's value at the probed state against its target, the statistic of "
    "the outcome distribution presented there at its tau (expectile units: tau-expectile; "
    "quantile units: tau-quantile; mean units: the mean; lab task: the true utility "
    "distribution; in a task: the rollouts' returns G from the cue state); spread_ratio c = "
    "SD(units) / SD(targets) over units; offset = (mean units - mean targets) / scale and "
    "unit_errors = (unit - target) / scale, scale = the SD of the outcomes pooled over the "
    "probed states (equal-weight mixture; one state: its outcome SD); states in the order "
    "they were probed; spread_ratio and offset: medians over states (one seed: no interval "
    "over seeds; a population's is under 'calibration' of its summary)"
)


@dataclass(frozen=True)
class StateUnits:
    """One seed's units at its probed states, with their targets (raw return units)."""

    taus: np.ndarray  # [N]
    values: np.ndarray  # [C, N] each unit's value at each state
    targets: np.ndarray  # [C, N] the statistic at the unit's τ of the state's outcomes
    return_means: np.ndarray  # [C] mean outcome at each state
    return_sds: np.ndarray  # [C] outcome SD at each state

    def __post_init__(self) -> None:
        c, n = self.values.shape
        if self.taus.shape != (n,) or self.targets.shape != (c, n):
            raise DataError(
                f"calibration: taus {self.taus.shape}, values {self.values.shape} and targets "
                f"{self.targets.shape} must be [N], [C, N] and [C, N]"
            )
        if self.return_means.shape != (c,) or self.return_sds.shape != (c,):
            raise DataError(
                f"calibration: {c} states need {c} return means and SDs, got "
                f"{self.return_means.shape} and {self.return_sds.shape}"
            )

    def to_json(self) -> dict[str, Any]:
        return {
            "tau": self.taus.tolist(),
            "values": self.values.tolist(),
            "targets": self.targets.tolist(),
            "return_means": self.return_means.tolist(),
            "return_sds": self.return_sds.tolist(),
        }

    @classmethod
    def from_json(cls, d: Any, where: str) -> StateUnits:
        """A saved seed's units; DataError naming ``where`` and the field otherwise."""
        if not isinstance(d, dict):
            raise DataError(f"{where}: calibration units must be an object")
        arrays = {}
        for key, dims in (("tau", 1), ("values", 2), ("targets", 2), ("return_means", 1),
                          ("return_sds", 1)):  # fmt: skip
            try:
                a = np.asarray(d.get(key), dtype=float)
            except (TypeError, ValueError):
                raise DataError(f"{where}: '{key}' must be numbers") from None
            if a.ndim != dims or a.size == 0:
                raise DataError(f"{where}: '{key}' must be a non-empty {dims}-d array")
            if not np.all(np.isfinite(a)):
                raise DataError(f"{where}: '{key}' must be finite")
            arrays[key] = a
        if np.any(arrays["return_sds"] < 0):
            raise DataError(f"{where}: 'return_sds' must be >= 0")
        try:
            return cls(arrays["tau"], arrays["values"], arrays["targets"],
                       arrays["return_means"], arrays["return_sds"])  # fmt: skip
        except DataError as err:
            raise DataError(f"{where}: {err}") from None

    @classmethod
    def of_cues(cls, cues: Sequence[dict[str, Any]]) -> StateUnits:
        """One agent's units at the cue states of an in-task probe.json (each cue's
        ``unit_taus``, ``unit_values``, ``unit_targets`` and the rollouts' returns
        ``true_distribution.values``); at least one cue."""
        returns = [np.asarray(c["true_distribution"]["values"], dtype=float) for c in cues]
        return cls(
            taus=np.asarray(cues[0]["unit_taus"], dtype=float),
            values=np.array([c["unit_values"] for c in cues], dtype=float),
            targets=np.array([c["unit_targets"] for c in cues], dtype=float),
            return_means=np.array([g.mean() for g in returns]),
            return_sds=np.array([g.std() for g in returns]),
        )


def unit_targets(
    representation: str, taus: np.ndarray, outcomes: np.ndarray, probs: np.ndarray | None = None
) -> np.ndarray:
    """[N] what each unit should hold at a state: the statistic at its τ ``taus`` [N] of the
    outcome distribution there (``representation`` "expectile": the τ-expectile; "quantile":
    the τ-quantile; otherwise the mean). ``outcomes`` [K] with ``probs`` [K] is a discrete
    distribution (a lab task's); without ``probs`` a sample (a task's rollout returns, each
    weighted 1/K; its quantiles interpolated linearly)."""
    from .tabular import expectiles, quantiles

    taus, g = np.asarray(taus, dtype=float), np.asarray(outcomes, dtype=float)
    if taus.ndim != 1 or g.ndim != 1 or g.size == 0:
        raise ValueError(f"unit_targets: taus {taus.shape} [N], outcomes {g.shape} [K]")
    p = np.full(g.size, 1.0 / g.size) if probs is None else np.asarray(probs, dtype=float)
    if p.shape != g.shape:
        raise ValueError(f"unit_targets: probs {p.shape} must match outcomes {g.shape}")
    if representation == "expectile":
        return np.asarray(expectiles(g.tolist(), p.tolist(), taus.tolist()), dtype=float)
    if representation == "quantile":
        if probs is None:
            return np.quantile(g, np.clip(taus, 0.0, 1.0))
        return np.asarray(quantiles(g.tolist(), p.tolist(), taus.tolist()), dtype=float)
    return np.full(taus.size, float(g @ (p / p.sum())))


def lab_state_units(values: np.ndarray, taus: np.ndarray, representation: str,
                    outcomes: np.ndarray, probs: np.ndarray) -> StateUnits:  # fmt: skip
    """Units ``values`` [N] with ``taus`` [N] at a lab task's probed state, whose outcomes
    (returns there) are ``outcomes`` [K] with ``probs`` [K]: one state."""
    g, p = np.asarray(outcomes, dtype=float), np.asarray(probs, dtype=float)
    mean = float(g @ p)
    return StateUnits(
        taus=np.asarray(taus, dtype=float),
        values=np.asarray(values, dtype=float)[None, :],
        targets=unit_targets(representation, taus, g, p)[None, :],
        return_means=np.array([mean]),
        return_sds=np.array([math.sqrt(float(((g - mean) ** 2) @ p))]),
    )


@dataclass(frozen=True)
class Calibration:
    """Calibration of units at B states (:func:`calibrate`)."""

    spread_ratio: np.ndarray  # [B] c (NaN where undefined)
    offset: np.ndarray  # [B] in units of the scale (NaN where undefined)
    errors: np.ndarray  # [B, N] (unit - target) / scale
    reasons: list[str | None]  # [B] why c or the offset is NaN (None: both defined)


def calibrate(values: np.ndarray, targets: np.ndarray, scale: np.ndarray) -> Calibration:
    """c, offset and unit errors of units ``values`` [B, N] against ``targets`` [B, N] at B
    states, with the return scale ``scale`` [B] of each. Degenerate states give NaN and a
    reason, never an error: a non-finite input, no positive finite scale, targets that do not
    spread (c only: their SD below :data:`MIN_TARGET_SPREAD` × the scale)."""
    values = np.asarray(values, dtype=float)
    targets = np.asarray(targets, dtype=float)
    scale = np.asarray(scale, dtype=float)
    if values.ndim != 2 or targets.shape != values.shape or scale.shape != values.shape[:1]:
        raise ValueError(
            f"calibrate: values {values.shape} and targets {targets.shape} must be the same "
            f"[B, N] and scale {scale.shape} [B]"
        )
    finite = np.isfinite(values).all(axis=1) & np.isfinite(targets).all(axis=1)
    scaled = finite & np.isfinite(scale) & (scale > 0)
    target_sd = targets.std(axis=1)
    spreads = scaled & (target_sd > MIN_TARGET_SPREAD * np.where(scaled, scale, 1.0))
    safe = np.where(scaled, scale, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(spreads, values.std(axis=1) / np.where(spreads, target_sd, 1.0), np.nan)
        errors = np.where(scaled[:, None], (values - targets) / safe[:, None], np.nan)
    offset = np.where(scaled, errors.mean(axis=1), np.nan)
    reasons: list[str | None] = []
    for ok, has_scale, spread in zip(finite, scaled, spreads, strict=True):
        if not ok:
            reasons.append("a unit value or target is not finite")
        elif not has_scale:
            reasons.append("the return scale is zero or not finite (every return the same)")
        elif not spread:
            reasons.append("the targets do not spread (mean units or a deterministic outcome)")
        else:
            reasons.append(None)
    return Calibration(ratio, offset, errors, reasons)


def pooled_return_sd(means: np.ndarray, sds: np.ndarray) -> float:
    """SD of the equal-weight mixture of C outcome distributions with ``means`` [C] and
    ``sds`` [C]: √(mean σ² + var μ) (the module docstring's scale s)."""
    means, sds = np.asarray(means, dtype=float), np.asarray(sds, dtype=float)
    if means.ndim != 1 or sds.shape != means.shape or means.size == 0:
        raise ValueError(f"pooled_return_sd: means {means.shape} and sds {sds.shape} must be [C]")
    return math.sqrt(float(np.mean(sds**2) + np.var(means)))


def seed_calibration(units: StateUnits) -> tuple[Calibration, float]:
    """The calibration of one seed's units at its states, and the seed's return scale."""
    scale = pooled_return_sd(units.return_means, units.return_sds)
    c = units.values.shape[0]
    return calibrate(units.values, units.targets, np.full(c, scale)), scale


def over_seeds(per_seed: Sequence[float], seed: int = 0) -> dict[str, Any]:
    """Median over seeds of a per-seed statistic with its 95 % interval (NaN values left
    out): percentile bootstrap of the median with >= :data:`MIN_BOOTSTRAP_SEEDS` seeds, the
    range with fewer; None where no seed has a value."""
    v = np.asarray([x for x in per_seed if x is not None and math.isfinite(x)], dtype=float)
    if v.size == 0:
        return {"median": None, "interval": [None, None], "interval_method": None, "n_seeds": 0}
    if v.size < MIN_BOOTSTRAP_SEEDS:
        lo, hi, method = float(v.min()), float(v.max()), "range over seeds"
    else:
        rng = np.random.default_rng(seed)
        boot = np.median(v[rng.integers(v.size, size=(BOOTSTRAP_RESAMPLES, v.size))], axis=1)
        lo, hi = (float(x) for x in np.quantile(boot, [0.025, 0.975]))
        method = f"95 % percentile bootstrap over seeds ({BOOTSTRAP_RESAMPLES} resamples)"
    return {"median": float(np.median(v)), "interval": [lo, hi], "interval_method": method,
            "n_seeds": int(v.size)}  # fmt: skip


def _median(v: np.ndarray) -> float:
    v = v[np.isfinite(v)]
    return float(np.median(v)) if v.size else math.nan


def _seed_row(units: StateUnits) -> dict[str, Any]:
    """One seed's calibration at its states (JSON): per state c, offset and unit errors (and
    why c or the offset is undefined); the scale; the medians over states."""
    cal, scale = seed_calibration(units)
    abs_err = np.abs(cal.errors)
    states = [
        {"spread_ratio": _json(c), "offset": _json(o), "unit_errors": [_json(e) for e in errs],
         **({"undefined": why} if why else {})}
        for c, o, errs, why in zip(cal.spread_ratio, cal.offset, cal.errors, cal.reasons,
                                   strict=True)
    ]  # fmt: skip
    return {
        "scale": scale,
        "states": states,
        "spread_ratio": _json(_median(cal.spread_ratio)),
        "offset": _json(_median(cal.offset)),
        "median_abs_unit_error": _json(_median(abs_err.ravel()) if abs_err.size else math.nan),
    }


def calibration_of(units: StateUnits) -> dict[str, Any]:
    """probe.json's ``calibration`` of one agent (one seed) at its probed states: per state
    (``states``, in the order the states were probed) c, offset and unit errors, the medians
    over states with their range over states, and, where c is undefined at every state (a
    classical head: every target is the mean), ``spread_ratio_undefined`` with the reason."""
    row = _seed_row(units)
    out: dict[str, Any] = {"note": PROBE_NOTE, **row}
    for key in ("spread_ratio", "offset"):
        v = [s[key] for s in row["states"] if s[key] is not None]
        out[f"{key}_range_over_states"] = [min(v), max(v)] if v else [None, None]
    if row["spread_ratio"] is None:
        out["spread_ratio_undefined"] = next(
            (s["undefined"] for s in row["states"] if "undefined" in s), "no state"
        )
    return out


def cue_calibration(cues: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The in-task probe.json's ``calibration``: :func:`calibration_of` the units at its cue
    states (:meth:`StateUnits.of_cues`; ``states`` in the order of ``cues``), or why there is
    none (every cue state skipped)."""
    if not cues:
        return {"note": PROBE_NOTE, "undefined": "no cue state was probed (all skipped)"}
    return calibration_of(StateUnits.of_cues(cues))


def members_calibration(members: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A population's calibration from its members' probe.json ``calibration`` (members
    without one are left out): the median over members of each member's c, offset and
    median unit error with the interval of :func:`over_seeds`."""
    cals = [m["calibration"] for m in members if isinstance(m.get("calibration"), dict)]
    return {
        "note": "each member's calibration (its probe.json 'calibration': medians over its "
        "probed states) summarised over members: median with a 95 % interval (percentile "
        f"bootstrap over members with >= {MIN_BOOTSTRAP_SEEDS}, else the range)",
        **{k: over_seeds([_nan_if_none(c.get(k)) for c in cals])
           for k in ("spread_ratio", "offset", "median_abs_unit_error")},
    }  # fmt: skip


def _nan_if_none(x: Any) -> float:
    return math.nan if x is None else float(x)


def group_calibration(seeds: Sequence[int], units: Sequence[StateUnits]) -> dict[str, Any]:
    """A group's calibration (detection.json ``calibration``): per seed and state c, offset and
    unit errors; per seed their medians over states; the median over seeds with intervals;
    and the worst state (c farthest from 1 by |log c|; NaN states left out)."""
    if len(seeds) != len(units) or not units:
        raise ValueError(f"group_calibration: {len(seeds)} seeds and {len(units)} unit sets")
    rows = [{"seed": int(s), **_seed_row(u)} for s, u in zip(seeds, units, strict=True)]
    worst = None
    for row in rows:
        for i, state in enumerate(row["states"]):
            c = state["spread_ratio"]
            if c is not None and c > 0 and (worst is None or abs(math.log(c)) > worst[0]):
                worst = (abs(math.log(c)), row["seed"], i, c, state["offset"])
    return {
        "note": NOTE,
        **{k: over_seeds([_nan_if_none(r[k]) for r in rows])
           for k in ("spread_ratio", "offset", "median_abs_unit_error")},
        "worst_state": None if worst is None else {
            "seed": worst[1], "state": worst[2], "spread_ratio": worst[3], "offset": worst[4]
        },
        "per_seed": rows,
    }  # fmt: skip


def _json(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def ideal_responses(taus: np.ndarray, targets: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """Noise-free own-gradient responses [N, K] of units sitting exactly on their ``targets``
    [N] to the outcomes ``axis`` [K] (the study's ideal population, the ceiling of detection):
    :func:`agent.probes.agent_cells.unit_responses` with the linear rule (units on the targets
    need no Huber clipping)."""
    from ..algos.base import UnitReadout
    from .responses.gradient import unit_responses

    taus, targets, axis = (np.asarray(a, dtype=float) for a in (taus, targets, axis))
    if taus.ndim != 1 or targets.shape != taus.shape or axis.ndim != 1:
        raise ValueError(
            f"ideal_responses: taus {taus.shape} and targets {targets.shape} must be [N], "
            f"axis {axis.shape} [K]"
        )
    ideal = UnitReadout(targets, taus, "linear", None, "ideal", "units on their targets")
    return unit_responses(ideal, axis)[0]
