"""What the detection study takes as input, checked once before any analysis (issue 34).

- **Identity.** A run counts once, however it is given
  (:func:`agent.store.run_identity.unique_runs`: repeats dropped and named in one note, two
  checkpoints of one run refused); a copy of a run (its seed twice in a group) is refused.
- **Comparability.** A group pools seeds of one agent × response model × task: its seeds must
  be distinct and their heads alike (the same τ of every unit, so the same number of units);
  every lab-task group of a study must be on the same task (outcome axis, magnitudes and
  probabilities), since the groups are contrasted with each other. Mixing is refused in one
  line naming what differs and two runs.
- **Saved unit responses** (``unit_responses.json``) are validated field by field: shapes
  consistent, values finite and within :data:`MAX_ABS_AXIS` / :data:`MAX_RESPONSE_RATIO`,
  probabilities in [0, 1] summing to 1, axes increasing, seeds distinct integers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.errors import ConfigError, DataError
from .responses import names as response_names

#: Largest |value| of an outcome axis or magnitude: utilities and discounted returns are far
#: below it (MinAtar returns are tens, Atari scores below 1e7); past it sums of squares over
#: the study's trials approach float64's range.
MAX_ABS_AXIS = 1e12
#: Largest |response| relative to its condition's axis scale (max |axis|, at least 1). The
#: measured (first-order, / eta) responses of the committed studies reach 5e4 times it
#: (MinAtar, a 131k-parameter torso); 1e12 leaves seven orders of magnitude for larger
#: networks while 1e300 (a corrupt or hand-edited file) is refused before it overflows the
#: noise model. The analysis itself is scale-free (signs and slope ratios), so the bound only
#: guards the arithmetic.
MAX_RESPONSE_RATIO = 1e12
#: |sum of probabilities - 1| allowed (JSON round trips of float64 sums stay far below)
PROB_TOLERANCE = 1e-6


# ----------------------------------------------------------------------------- comparability


@dataclass(frozen=True)
class SeedSource:
    """Where one seed of a group comes from, and what makes it comparable with the others."""

    label: str  # the run dir or saved file, for messages
    seed: int
    taus: np.ndarray | None = None  # the head's τ of every unit (None: not known yet)
    # the config keys that set an in-task group's return distribution (None: a lab task,
    # checked across the study by check_same_lab_task)
    task: dict[str, Any] | None = None


#: env keys that set how a run steps its envs, not the task
RUNTIME_ENV_KEYS = ("num_envs", "eval_num_envs", "imports")


def check_group_seeds(group: str, sources: Sequence[SeedSource]) -> None:
    """One group's seeds: distinct, on one task (in a task: the env config and γ, which set
    the returns the units are probed with), and heads alike (number of units, τ of every
    unit)."""
    seen: dict[int, SeedSource] = {}
    first = sources[0]
    for s in sources:
        if s.seed in seen:
            raise ConfigError(
                f"{group}: {seen[s.seed].label} and {s.label} both have seed {s.seed}; the same "
                "seed trains the same network, so it counts once: give one of them"
            )
        seen[s.seed] = s
        differs = first_difference(first.task, s.task)
        if differs:
            raise ConfigError(
                f"{group}: {first.label} and {s.label} differ in {differs}; a group pools "
                "seeds of one task: study them separately"
            )
        if s.taus is None or first.taus is None:
            continue
        if s.taus.shape != first.taus.shape or not np.allclose(s.taus, first.taus):
            raise ConfigError(
                f"{group}: the τ grid of {first.label} ({_span(first.taus)}) differs from "
                f"{s.label}'s ({_span(s.taus)}); a group pools seeds of one head: study them "
                "separately"
            )


def _span(taus: np.ndarray) -> str:
    return f"{taus.size} units, τ {float(taus.min()):.4g}..{float(taus.max()):.4g}"


@dataclass(frozen=True)
class LabTaskSource:
    """The lab task one group (or run) was probed on."""

    label: str
    axis: np.ndarray
    magnitudes: np.ndarray
    probs: np.ndarray
    config: dict[str, Any] | None  # env.id and env.kwargs.* of a run (None: a saved group)


def check_same_lab_task(sources: Sequence[LabTaskSource]) -> None:
    """Every lab-task group of one study on the same task: its groups are contrasted with
    each other and a group's seeds are analysed on one axis. Names the first differing config
    key (e.g. ``env.kwargs.utility``) and two runs."""
    if not sources:
        return
    first = sources[0]
    for s in sources[1:]:
        same = all(
            a.shape == b.shape and np.allclose(a, b, rtol=1e-9, atol=0.0)
            for a, b in ((s.axis, first.axis), (s.magnitudes, first.magnitudes),
                         (s.probs, first.probs))
        )  # fmt: skip
        if same:
            continue
        what = first_difference(first.config, s.config)
        what = what or "the outcome axis, magnitudes or probabilities"
        raise ConfigError(
            f"study= mixes lab tasks: {first.label} and {s.label} differ in {what}; a study "
            "compares runs of one task: study each task separately"
        )


def first_difference(a: dict[str, Any] | None, b: dict[str, Any] | None) -> str | None:
    """``"key (a's value against b's)"`` for the first key (sorted) on which two configs
    differ; None when they agree or either is unknown."""
    if a is None or b is None:
        return None
    key = next((k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)), None)
    return None if key is None else f"{key} ({a.get(key)!r} against {b.get(key)!r})"


def config_items(node: Any, prefix: str) -> dict[str, Any]:
    """A config node (OmegaConf, or a namespace in tests) as flat ``prefix.key`` items."""
    from omegaconf import DictConfig, OmegaConf

    data = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
    out: dict[str, Any] = {}
    for key, value in (data if isinstance(data, dict) else vars(data)).items():
        if isinstance(value, dict):
            out.update(config_items(value, f"{prefix}.{str(key)}"))
        else:
            out[f"{prefix}.{str(key)}"] = value
    return out


# ----------------------------------------------------------------------------- saved files


def validated_group(d: Any, where: str) -> dict[str, Any]:
    """One group of a saved ``unit_responses.json`` as arrays, every field checked; DataError
    naming ``where`` (file and group), the field and the problem otherwise."""
    if not isinstance(d, dict):
        raise DataError(f"{where}: a group must be an object, got {type(d).__name__}")
    out: dict[str, Any] = {}
    for key in ("name", "agent", "response_model"):
        value = d.get(key)
        if not isinstance(value, str) or not value:
            raise DataError(f"{where}: '{key}' must be a non-empty string, got {_shown(value)}")
        out[key] = value
    if out["response_model"] not in response_names():
        raise DataError(
            f"{where}: 'response_model' must be one of {', '.join(response_names())}, "
            f"got {out['response_model']!r}"
        )
    where = f"{where} ('{out['name']}')"
    seeds = d.get("seeds")
    if not isinstance(seeds, list) or not seeds:
        raise DataError(f"{where}: 'seeds' must be a non-empty list of integers")
    if any(type(s) is not int for s in seeds):  # bool and float are not seeds
        raise DataError(f"{where}: 'seeds' must hold integers, got {_shown(seeds)}")
    if len(set(seeds)) != len(seeds):
        raise DataError(f"{where}: 'seeds' repeats a seed ({_shown(seeds)}); each counts once")
    out["seeds"] = list(seeds)
    responses = d.get("responses")
    if not isinstance(responses, list) or len(responses) != len(seeds):
        raise DataError(f"{where}: 'responses' must be a list with one entry per seed")
    for key in ("note", "task"):
        if not isinstance(d.get(key, ""), str):
            raise DataError(f"{where}: '{key}' must be a string")
    if not isinstance(d.get("extra", {}), dict):
        raise DataError(f"{where}: 'extra' must be an object")
    out.update(note=d.get("note", ""), task=d.get("task", ""), extra=d.get("extra", {}))
    units: set[int] = set()
    if d.get("cue_axes") is None:  # a lab task: one condition per seed
        axis = _vector(d.get("axis"), f"{where}: 'axis'", increasing=True)
        mags = _vector(d.get("magnitudes"), f"{where}: 'magnitudes'", increasing=True)
        probs = _probabilities(d.get("probs"), f"{where}: 'probs'")
        if not axis.size == mags.size == probs.size:
            raise DataError(
                f"{where}: 'axis', 'magnitudes' and 'probs' must have one value per magnitude, "
                f"got {axis.size}, {mags.size} and {probs.size}"
            )
        out.update(axis=axis, magnitudes=mags, probs=probs, cue_axes=None, cue_probs=None)
        out["responses"] = [
            _responses(r, axis, f"{where}: 'responses' of seed {s}", units)
            for s, r in zip(seeds, responses, strict=True)
        ]
        return out
    empty = np.zeros(0)
    out.update(axis=empty, magnitudes=empty, probs=empty)
    cue_axes, cue_probs = d.get("cue_axes"), d.get("cue_probs")
    if not (isinstance(cue_axes, list) and isinstance(cue_probs, list)) or not (
        len(cue_axes) == len(cue_probs) == len(seeds)
    ):
        raise DataError(
            f"{where}: 'cue_axes' and 'cue_probs' must be lists with one entry per seed"
        )
    out.update(cue_axes=[], cue_probs=[], responses=[])
    for s, axes, probs_s, resp in zip(seeds, cue_axes, cue_probs, responses, strict=True):
        at = f"{where}: seed {s}"
        if not all(isinstance(x, list) for x in (axes, probs_s, resp)) or not (
            0 < len(axes) == len(probs_s) == len(resp)
        ):
            raise DataError(
                f"{at}: 'cue_axes', 'cue_probs' and 'responses' must list the same cue states "
                "(at least one)"
            )
        a = [
            _vector(x, f"{at}: 'cue_axes' of cue {c}", increasing=True) for c, x in enumerate(axes)
        ]
        p = [_probabilities(x, f"{at}: 'cue_probs' of cue {c}") for c, x in enumerate(probs_s)]
        for c, (ac, pc) in enumerate(zip(a, p, strict=True)):
            if ac.size != pc.size:
                raise DataError(
                    f"{at}: cue {c} has {ac.size} axis values and {pc.size} probabilities"
                )
        out["cue_axes"].append(a)
        out["cue_probs"].append(p)
        out["responses"].append(
            [_responses(r, ac, f"{at}: 'responses' of cue {c}", units)
             for c, (r, ac) in enumerate(zip(resp, a, strict=True))]
        )  # fmt: skip
    return out


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _array(value: Any, where: str, ndim: int) -> np.ndarray:
    """``value`` as a float array of ``ndim`` dimensions (a ragged or nested list is refused)."""
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise DataError(f"{where} must be numbers in a {ndim}-D array") from None
    if arr.ndim != ndim:
        raise DataError(f"{where} must be a {ndim}-D array, got {arr.ndim}-D {list(arr.shape)}")
    if not np.isfinite(arr).all():
        raise DataError(f"{where} holds a non-finite value (NaN or inf)")
    return arr


def _vector(value: Any, where: str, increasing: bool = False) -> np.ndarray:
    v = _array(value, where, 1)
    if v.size < 3:
        raise DataError(f"{where} needs at least 3 values, got {v.size}")
    if np.abs(v).max() > MAX_ABS_AXIS:
        raise DataError(f"{where} has |value| {np.abs(v).max():.3g} > {MAX_ABS_AXIS:.0e}")
    if increasing and not (np.diff(v) > 0).all():
        raise DataError(f"{where} must increase strictly (one value per magnitude, in order)")
    return v


def _probabilities(value: Any, where: str) -> np.ndarray:
    p = _array(value, where, 1)
    if ((p < 0) | (p > 1)).any():
        raise DataError(
            f"{where} must lie in [0, 1], got {float(p.min()):.3g}..{float(p.max()):.3g}"
        )
    if not math.isclose(float(p.sum()), 1.0, abs_tol=PROB_TOLERANCE):
        raise DataError(f"{where} must sum to 1, got {float(p.sum()):.6g}")
    return p


def _responses(value: Any, axis: np.ndarray, where: str, units: set[int]) -> np.ndarray:
    """One condition's responses [N units, K magnitudes]; every seed of a group has N units."""
    r = _array(value, where, 2)
    if r.shape[1] != axis.size or r.shape[0] < 1:
        raise DataError(f"{where} must be [units, {axis.size}], got {list(r.shape)}")
    units.add(r.shape[0])
    if len(units) > 1:
        raise DataError(f"{where}: the seeds differ in their number of units ({sorted(units)})")
    bound = MAX_RESPONSE_RATIO * max(1.0, float(np.abs(axis).max()))
    if np.abs(r).max() > bound:
        raise DataError(
            f"{where} has |response| {np.abs(r).max():.3g}, more than {MAX_RESPONSE_RATIO:.0e} "
            "times its axis scale"
        )
    return r
