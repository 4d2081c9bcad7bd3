"""The detection study: how often a population shows the paper's two findings under the
recorded protocol, over training seeds × simulated recordings (docs/science.md §4, issue 22).

A *finding* is detected in one simulated recording when its Pearson correlation across the
40 units is positive with a two-sided p < α (α = 0.01):

- split-half reliability r(RP_A, RP_B) of the reversal points from two random halves;
- cross-validated optimism r(τ_B, RP_A): asymmetry from half B against reversal point from A.

**The recorded protocol** (measured on the 40 recorded cells, :func:`recorded_protocol`).
Every simulated recording draws 40 units from the population's head (without replacement;
fewer units is an error unless asked for) and pairs each unit with one recorded cell drawn at
random: the unit gets that cell's noise ratio ρ_c (trial SD / SD of its own mean responses,
as :mod:`agent.probes.noise`) and that cell's trial count at each magnitude. The recorded
cells' trial SD grows with reward magnitude (measured, Friedman test over cells); the
simulated noise SD follows the cells' median profile across magnitudes, normalised so that
the pooled SD is still ρ_c × the unit's response spread. Noise is Gaussian.

**A draw** is one simulated recording (one noise realisation) analysed once, with one
random split of its trials into halves (within each magnitude, ⌊n/2⌋ trials to half A, as
:func:`agent.probes.analysis.stratified_halves`). For the recorded cells a draw is one random
split of the recorded trials; a second row resamples each half's trials with replacement
(within cell × magnitude) after the split, as a new recording of the same size would.

The median r or p over many splits of *one* recording is a smoother, different quantity: it
is reported as a descriptive number only, never as a detection probability.

Everything below the per-group loop is batched over draws and units (numpy), so the full
study (8 seeds × 50 draws × 6 groups) runs in seconds, not hours.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.stats

from ..core.errors import ConfigError, DataError
from ..envs import family_of
from ..store.run_identity import unique_runs
from . import responses as response_models
from .analyses import run_all as run_analyses
from .recording import (  # noqa: F401  (the kernel's names, re-exported for the study's users)
    CHUNK,
    HalvesResult,
    RecordedProtocol,
    Recording,
    all_trial_pairs,
    analyse_halves,
    asymmetries,
    concat,
    pearson,
    recorded_protocol,
    reversal_points,
    simulate_recordings,
    split_trials,
    trial_layout,
)
from .settings import RECORDED_UNITS, StudySettings
from .statistics import (  # noqa: F401  (re-exported for the study's users)
    ALPHA,
    clopper_pearson,
    design_effect,
    detected,
    detection_probability,
    study_rng,
    wilson,
)
from .study_inputs import (
    RUNTIME_ENV_KEYS,
    LabTaskSource,
    SeedSource,
    check_group_seeds,
    check_same_lab_task,
    config_items,
    validated_group,
)
from .trials import by_cell

FINDINGS = ("split_half", "tau_rp")
#: splits of one recording for the descriptive "median over splits" numbers
DESCRIPTIVE_SPLITS = 50


# ----------------------------------------------------------------------------- statistics


def across_seed_test(per_seed_r: np.ndarray) -> dict[str, float | None]:
    """Each seed one observation: Fisher z of its median r over draws, two-sided one-sample
    t-test against 0; the sign test (binomial, seeds with median r > 0) beside it."""
    r = np.asarray(per_seed_r, dtype=float)
    r = r[np.isfinite(r)]
    if r.size < 2:
        return {"t_p": None, "sign_p": None, "mean_z": None}
    z = np.arctanh(np.clip(r, -0.999999, 0.999999))
    t_p = float(scipy.stats.ttest_1samp(z, 0.0).pvalue) if np.ptp(z) > 0 else None
    nonzero = z[z != 0]
    sign_p = (
        float(scipy.stats.binomtest(int((nonzero > 0).sum()), nonzero.size).pvalue)
        if nonzero.size
        else None
    )
    return {"t_p": t_p, "sign_p": sign_p, "mean_z": float(z.mean())}


def permutation_p(
    a: np.ndarray, b: np.ndarray, rng: np.random.Generator | None = None, max_exact: int = 20000
) -> float | None:
    """Two-sided permutation p of the difference in means of per-seed values ``a`` and ``b``
    (seeds exchanged between the groups): exact over all relabelings when there are at most
    ``max_exact``, else 20,000 random ones (plus the observed). None with fewer than 2 seeds
    in a group."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.size < 2 or b.size < 2:
        return None
    pooled = np.concatenate([a, b])
    n, na = pooled.size, a.size
    observed = abs(a.mean() - b.mean())
    if math.comb(n, na) <= max_exact:
        in_a = _relabelings(n, na)
    else:
        rng = np.random.default_rng(0) if rng is None else rng
        keys = rng.random((20000, n))
        in_a = np.argsort(np.argsort(keys, axis=1), axis=1) < na
        in_a = np.vstack([np.arange(n) < na, in_a])
    diff = (in_a @ pooled) / na - (~in_a @ pooled) / (n - na)
    return float(np.mean(np.abs(diff) >= observed - 1e-12))


@functools.lru_cache(maxsize=8)
def _relabelings(n: int, na: int) -> np.ndarray:
    """Every way [comb(n, na), n] of choosing which ``na`` of ``n`` seeds form group a."""
    idx = np.array(list(combinations(range(n), na)))
    in_a = np.zeros((len(idx), n), dtype=bool)
    np.put_along_axis(in_a, idx, True, axis=1)
    in_a.setflags(write=False)
    return in_a


# ----------------------------------------------------------------------------- groups


@dataclass(frozen=True)
class UnitGroup:
    """Noise-free mean responses of one kind of population over training seeds.

    On a lab task every seed has one condition, the task's magnitudes (``axis``,
    ``magnitudes``, ``probs``; ``responses[s]`` [N, K]). In any other task (the in-task
    protocol, :func:`agent.probes.in_task.cue_conditions`) every seed has one condition per
    cue state, each with its own outcome axis, the binned discounted return G (K_c bins at
    cue c): ``cue_axes[s]`` and ``cue_probs[s]`` lists of [K_c], ``responses[s]`` a list of
    [N, K_c]; ``axis`` etc. are then empty."""

    name: str  # e.g. "erdqn/gradient"
    agent: str  # e.g. "erdqn" (the contrast pairs groups of one response model)
    response_model: str  # "gradient" | "measured"
    axis: np.ndarray  # [K] utility of each magnitude
    magnitudes: np.ndarray  # [K]
    probs: np.ndarray  # [K]
    seeds: list[int]
    responses: list[Any]  # per seed [N, K], or with cue_axes a list over cue states of [N, K_c]
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    cue_axes: list[list[np.ndarray]] | None = None  # per seed and cue [K_c]: mean G of each bin
    cue_probs: list[list[np.ndarray]] | None = None  # per seed and cue [K_c]: bin frequencies
    task: str = ""  # the env of an in-task group ("": the variable-magnitude lab task)

    def conditions(self, i: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """(axis, magnitudes, probs, mean responses [N, K]) of each condition of seed ``i``."""
        if self.cue_axes is None or self.cue_probs is None:
            return [(self.axis, self.magnitudes, self.probs, self.responses[i])]
        return [
            (a, a, p, r)
            for a, p, r in zip(self.cue_axes[i], self.cue_probs[i], self.responses[i], strict=True)
        ]

    def to_json(self) -> dict[str, Any]:
        from .analysis import jsonable

        return jsonable(
            {
                "name": self.name, "agent": self.agent, "response_model": self.response_model,
                "axis": self.axis, "magnitudes": self.magnitudes, "probs": self.probs,
                "seeds": self.seeds, "responses": self.responses, "note": self.note,
                "extra": self.extra, "cue_axes": self.cue_axes, "cue_probs": self.cue_probs,
                "task": self.task,
            }
        )  # fmt: skip

    @classmethod
    def from_json(cls, d: Any, where: str = "unit_responses.json") -> UnitGroup:
        """A saved group, every field validated (:func:`agent.probes.study_inputs.validated_group`:
        DataError naming ``where``, the field and the problem)."""
        return cls(**validated_group(d, where))


def read_unit_groups(path: Path) -> list[UnitGroup]:
    """The groups of a saved ``unit_responses.json``, validated; one DataError line naming the
    file otherwise (a FIFO or folder in its place included)."""
    import json

    from ..core.files import read_text_regular

    try:
        data = json.loads(read_text_regular(path))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: not a unit_responses.json of the study ({err})") from None
    except RecursionError:
        raise DataError(f"{path}: nested too deeply to be a unit_responses.json") from None
    except OSError as err:
        raise DataError(f"{path}: unreadable ({err.strerror})") from None
    if not isinstance(data, list) or not data:
        raise DataError(f"{path}: a unit_responses.json is a non-empty list of groups")
    groups = [UnitGroup.from_json(g, f"{path}: group {i}") for i, g in enumerate(data)]
    names = [g.name for g in groups]
    repeated = next((n for n in names if names.count(n) > 1), None)
    if repeated is not None:
        raise DataError(f"{path}: group '{repeated}' appears more than once")
    return groups


STUDY_DEFAULTS = StudySettings()

#: how the study presents quantile-Huber units with the gradient model (as the noise sweep)
SCALED = "; quantile-Huber units' errors are scaled first so that no response saturates"


def _draws(
    mean: np.ndarray,
    protocol: RecordedProtocol,
    axis: np.ndarray,
    n_draws: int,
    n_units: int,
    rng: np.random.Generator,
) -> HalvesResult:
    """``n_draws`` simulated recordings of one population, each split and analysed once."""
    parts = []
    for start in range(0, n_draws, CHUNK):
        n = min(CHUNK, n_draws - start)
        recording = Recording.simulated(mean, protocol, axis, n, n_units, rng)
        parts.append(recording.split(rng).analyse(rng))
    return concat(parts)


def _recorded_draws(
    recording: Recording, n_draws: int, rng: np.random.Generator, bootstrap: bool
) -> HalvesResult:
    """``n_draws`` random splits of one recording (each half resampled with ``bootstrap``)."""
    parts = []
    for start in range(0, n_draws, CHUNK):
        parts.append(recording.repeated(min(CHUNK, n_draws - start)).split(rng, bootstrap)
                     .analyse(rng))  # fmt: skip
    return concat(parts)


def _median(values: Sequence[float] | np.ndarray) -> float:
    """Median of the finite values (nan when none)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(np.median(v)) if v.size else math.nan


def _descriptive(res: HalvesResult) -> dict[str, float]:
    """Median r and p over the splits of one recording (descriptive, not a test)."""
    return {
        "split_half_r": _median(res.split_half_r),
        "split_half_p": _median(res.split_half_p),
        "tau_rp_r": _median(res.tau_rp_r),
        "tau_rp_p": _median(res.tau_rp_p),
    }


def _spread(values: Sequence[float]) -> dict[str, float | None]:
    v = np.array([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    if v.size == 0:
        return {"median": None, "min": None, "max": None}
    return {"median": float(np.median(v)), "min": float(v.min()), "max": float(v.max())}


def _group_summary(
    per_seed: list[HalvesResult], alpha: float
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Detection probabilities with intervals and the across-seed tests of one group."""
    hits = {
        "split_half": np.stack([detected(h.split_half_r, h.split_half_p, alpha) for h in per_seed]),
        "tau_rp": np.stack([detected(h.tau_rp_r, h.tau_rp_p, alpha) for h in per_seed]),
    }
    hits["both"] = hits["split_half"] & hits["tau_rp"]
    out: dict[str, Any] = {}
    for name, h in hits.items():
        d = detection_probability(h)
        out[f"p_detect_{name}"] = d["p"]
        out[f"p_detect_{name}_ci"] = d["ci"]
        out[f"p_detect_{name}_count"] = [d["k"], d["n"]]
        out[f"p_detect_{name}_design_effect"] = d["design_effect"]
    medians = {
        f: np.array([np.nanmedian(getattr(h, f"{f}_r")) if np.isfinite(getattr(h, f"{f}_r")).any()
                     else np.nan for h in per_seed])
        for f in FINDINGS
    }  # fmt: skip
    tests = {f: across_seed_test(medians[f]) for f in FINDINGS}
    ps = [tests[f]["t_p"] for f in FINDINGS]
    out["across_seed_p"] = None if any(p is None for p in ps) else max(ps)  # type: ignore[type-var]
    for f in FINDINGS:
        out[f"across_seed_p_{f}"] = tests[f]["t_p"]
        out[f"across_seed_sign_p_{f}"] = tests[f]["sign_p"]
        out[f"{f}_r_per_seed_median"] = _spread(list(medians[f]))
    # Robustness: the same detection with Spearman's rank correlation. Under the recorded
    # protocol the units' noise differs 10-fold, so a few noisy units have outlying reversal
    # points and Pearson's p is anti-conservative (see the classical groups' rates).
    rank_sh = np.stack(
        [detected(h.split_half_rank_r, h.split_half_rank_p, alpha) for h in per_seed]
    )
    rank_tr = np.stack([detected(h.tau_rp_rank_r, h.tau_rp_rank_p, alpha) for h in per_seed])
    for name, h in (("split_half", rank_sh), ("tau_rp", rank_tr), ("both", rank_sh & rank_tr)):
        d = detection_probability(h)
        out[f"rank_p_detect_{name}"] = d["p"]
        out[f"rank_p_detect_{name}_ci"] = d["ci"]
        out[f"rank_p_detect_{name}_count"] = [d["k"], d["n"]]
    per_seed_both = hits["both"].mean(axis=1)
    out["p_detect_both_per_seed"] = [float(v) for v in per_seed_both]
    return out, {"both": per_seed_both}


# ----------------------------------------------------------------------------- decode


def decode_summary(
    rp: np.ndarray,
    tau: np.ndarray,
    axis: np.ndarray,
    magnitudes: np.ndarray,
    probs: np.ndarray,
    seed: int = 0,
    restarts: int = 2,
) -> dict[str, Any]:
    """Reward-space decode of one recording's (RP, τ) pairs (as the paper's Fig. 5) and the
    fair references' W1 to the truth (:func:`agent.probes.decoding.fair_references`)."""
    from .decoding import decode_distribution, fair_references, score_decode
    from .pipeline import utility_to_reward

    ok = np.isfinite(rp) & np.isfinite(tau) & (tau > 0) & (tau < 1)
    if ok.sum() < 2:
        return {"wasserstein1": None, "references": {}, "cells_used": int(ok.sum())}
    e = utility_to_reward(rp[ok], axis, magnitudes)
    bounds = (float(magnitudes.min()), float(magnitudes.max()))
    dec = decode_distribution(e, tau[ok], bounds, restarts=restarts, seed=seed)
    refs = fair_references(magnitudes, probs, tau[ok], seed=seed, restarts=restarts)
    return {
        "wasserstein1": score_decode(dec["samples"], magnitudes, probs)["wasserstein1"],
        "identifiable": bool(dec["identifiable"]),
        "references": {
            k: score_decode(v, magnitudes, probs)["wasserstein1"] for k, v in refs.items()
        },
        "cells_used": int(ok.sum()),
    }


def _decode_over_seeds(rows: list[dict[str, Any]]) -> dict[str, Any]:
    w = [r["wasserstein1"] for r in rows]
    out: dict[str, Any] = {"space": "reward (µl)", "wasserstein1": _spread(w), "beats": {}}
    names = sorted({k for r in rows for k in r["references"]})
    for name in names:
        pairs = [(r["wasserstein1"], r["references"].get(name)) for r in rows]
        pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
        out["beats"][name] = {
            "reference_w1": _spread([b for _, b in pairs]),
            "fraction_of_seeds_beaten": float(np.mean([a < b for a, b in pairs]))
            if pairs
            else None,
            "compared": len(pairs),  # seeds, or seeds x cue states for an in-task group
        }
    return out


# ----------------------------------------------------------------------------- the study


def study_group(
    group: UnitGroup,
    protocol: RecordedProtocol,
    *,
    draws: int,
    n_units: int = RECORDED_UNITS,
    alpha: float = ALPHA,
    seed: int = 0,
    decode: bool = True,
) -> tuple[dict[str, Any], np.ndarray]:
    """Detection study of one group; returns its detection.json entry and the per-seed
    probability of detecting both findings (for the contrast with classical). An in-task
    group's conditions use the protocol at their own outcomes
    (:meth:`RecordedProtocol.at_outcomes`)."""
    base_protocol = protocol
    per_seed, descriptive, decodes = [], [], []
    analysed: list[dict[str, Any]] = []  # the registered analyses, per seed and condition
    for i, s in enumerate(group.seeds):
        rng = study_rng(seed, group.name, s)
        conditions = group.conditions(i)
        # the seed's draws shared out over its conditions (cue states) in turn
        shares = np.bincount(np.arange(draws) % len(conditions), minlength=len(conditions))
        parts, seed_descriptive = [], []
        for (axis, magnitudes, probs, mean), n_draws in zip(conditions, shares, strict=True):
            if group.cue_axes is not None:
                protocol = base_protocol.at_outcomes(probs)
            if n_draws:
                parts.append(_draws(mean, protocol, axis, int(n_draws), n_units, rng))
            # Descriptive: one recording, many splits (a smoother quantity, not a test).
            one = Recording.simulated(mean, protocol, axis, 1, n_units, rng)
            analysed.append(run_analyses(one, s))
            seed_descriptive.append(_descriptive(one.repeated(DESCRIPTIVE_SPLITS).split(rng)
                                                 .analyse(rng)))  # fmt: skip
            if decode:
                rp, tau = one.all_trials(rng)
                decodes.append(decode_summary(rp[0], tau[0], axis, magnitudes, probs, seed=s))
        per_seed.append(concat(parts))
        descriptive.append(
            seed_descriptive[0]
            if len(seed_descriptive) == 1
            else {k: _median([d[k] for d in seed_descriptive]) for k in seed_descriptive[0]}
        )
    out, per_seed_stats = _group_summary(per_seed, alpha)
    out = {
        "n_seeds": len(group.seeds),
        "n_draws": draws,
        "n_units": n_units,
        "seeds": group.seeds,
        "agent": group.agent,
        "response_model": group.response_model,
        **({"task": group.task} if group.task else {}),
        "response_model_note": group.note or response_models.note(group.response_model),
        **out,
        "median_over_splits_of_one_recording": {
            "note": f"descriptive only (a smoother quantity, not a test): per seed one "
            f"simulated recording, median over {DESCRIPTIVE_SPLITS} random splits; median "
            "(range) over seeds",
            **{k: _spread([d[k] for d in descriptive]) for k in descriptive[0]},
        },
        # the units' raw values and targets stay in unit_responses.json; detection.json
        # carries their calibration
        **{k: v for k, v in group.extra.items() if k != "state_units"},
    }
    out["analyses"] = {
        name: [a[name] for a in analysed] for name in (analysed[0] if analysed else {})
    }  # one entry per seed (and cue state): its descriptive recording
    if decode:
        out["decode"] = _decode_over_seeds(decodes)
    return out, per_seed_stats["both"]


def study_recorded(
    table: pd.DataFrame | None = None,
    *,
    draws: int,
    alpha: float = ALPHA,
    seed: int = 0,
    decode: bool = True,
) -> dict[str, dict[str, Any]]:
    """The recorded cells: a draw is one random split of the recorded trials; a second entry
    resamples each half with replacement after the split (trial bootstrap)."""
    from .trials import utility_axis

    if table is None:
        from ..data.tidy import PACKAGED_TABLE, load_cell_table

        table = load_cell_table(PACKAGED_TABLE)
    pop = by_cell(table)
    _, axis = utility_axis(pop, "empirical")
    resp, valid, mags, cells = trial_layout(pop)
    recording = Recording(resp[None], valid[None], axis)
    out = {}
    for name, boot in (("recorded cells", False), ("recorded cells (trial bootstrap)", True)):
        res = _recorded_draws(recording, draws, study_rng(seed, name), boot)
        summary, _ = _group_summary([res], alpha)
        entry: dict[str, Any] = {
            "n_seeds": 1,
            "n_draws": draws,
            "n_units": len(cells),
            "agent": "recorded",
            "response_model": "recorded",
            "response_model_note": response_models.RECORDED_NOTE,
            "draw": (
                "one random split of the recorded trials, each half resampled with "
                "replacement within cell x magnitude (a new recording of the same size)"
                if boot
                else "one random split of the recorded trials (the interval is over "
                "splits of one recording, not over recordings)"
            ),
            **summary,
            "across_seed_p": None,
            "vs_classical_p": None,
            "note": "one recording (one 'seed'): no across-seed test or permutation contrast",
        }
        if not boot:
            entry["median_over_splits_of_one_recording"] = {
                "note": f"descriptive only: median over the {draws} random splits of the recording",
                **{k: _spread([v]) for k, v in _descriptive(res).items()},
            }
        if decode and not boot:
            counts = valid.sum(axis=(0, 2)).astype(float)
            rp, tau = all_trial_pairs(resp, valid, axis, study_rng(seed, "decode"))
            entry["decode"] = _decode_over_seeds(
                [decode_summary(rp, tau, axis, mags, counts / counts.sum(), seed=seed)]
            )
        out[name] = entry
    return out


def detection_study(
    groups: Sequence[UnitGroup],
    *,
    draws: int,
    n_units: int = RECORDED_UNITS,
    alpha: float = ALPHA,
    seed: int = 0,
    recorded: bool = True,
    decode: bool = True,
    baseline_agent: str = "classical",
    protocol: RecordedProtocol | None = None,
) -> dict[str, Any]:
    """The whole study: every group, the recorded cells, the contrasts with classical."""
    if draws < 1:
        raise ConfigError(f"draws must be a positive integer, got {draws}")
    if not groups and not recorded:
        raise ConfigError("the detection study needs at least one group of units")
    protocol = recorded_protocol() if protocol is None else protocol
    # saved calibration units are checked before any analysis
    units = {g.name: group_state_units(g) for g in groups}
    results: dict[str, Any] = {}
    per_seed_both: dict[str, np.ndarray] = {}
    for g in groups:
        results[g.name], per_seed_both[g.name] = study_group(
            g, protocol, draws=draws, n_units=n_units, alpha=alpha, seed=seed, decode=decode
        )
    for g in groups:
        base = next(
            (b.name for b in groups
             if (b.agent, b.response_model, b.task) == (baseline_agent, g.response_model, g.task)),
            None,
        )  # fmt: skip
        if g.agent == baseline_agent or base is None:
            results[g.name]["vs_classical_p"] = None
            continue
        results[g.name]["vs_classical_p"] = permutation_p(
            per_seed_both[g.name], per_seed_both[base]
        )
        results[g.name]["vs_classical_note"] = (
            f"two-sided permutation test over seeds (exact when possible) of the difference "
            f"in mean per-seed P(both) against {base}"
        )
    _add_calibration(groups, units, results, protocol, draws=draws, n_units=n_units,
                     alpha=alpha, seed=seed)  # fmt: skip
    if recorded:
        results.update(study_recorded(draws=draws, alpha=alpha, seed=seed, decode=decode))
    from .analysis import jsonable

    return jsonable(
        {
            "alpha": alpha,
            "detection_rule": (
                f"a finding is detected in one recording when its Pearson r across units is "
                f"positive with two-sided p < {alpha}; 'both' needs split-half and tau-RP"
            ),
            "interval": (
                "95 %: the union of the Clopper-Pearson interval of k of n (seeds x draws) and "
                "a Wilson interval at n / deff, deff = 1 + (draws - 1) * ICC (seeds as "
                "clusters, one-way ANOVA ICC of the hits)"
            ),
            "across_seed_test": (
                "each seed one observation: Fisher z of its median r over draws, two-sided "
                "one-sample t-test against 0 per finding; across_seed_p = the larger of the "
                "two (both findings); sign tests beside"
            ),
            "protocol": protocol.summary(),
            "seed": seed,
            "groups": results,
        }
    )


# ----------------------------------------------------------------------------- calibration


#: how a group's scale was obtained when its saved file predates ``state_units``
LEGACY_SCALE = (
    "from a unit_responses.json written before calibration: each cue state's return mean is "
    "exact (the bins' frequency-weighted mean), its SD the SD of the binned returns (between "
    "bins, a slight underestimate), so c is exact and the offsets and unit errors approximate"
)


def group_state_units(group: UnitGroup) -> tuple[list[Any], str | None] | None:
    """Every seed's units and targets at its probed states (:class:`agent.probes.calibration.
    StateUnits`) and, for a saved file that predates them, how they were rebuilt from its
    ``units_vs_returns``; None when the group carries neither. DataError naming the group and
    the field for a malformed saved entry."""
    from .calibration import StateUnits

    where = f"group '{group.name}'"
    saved = group.extra.get("state_units")
    if saved is not None:
        if not isinstance(saved, list) or len(saved) != len(group.seeds):
            raise DataError(f"{where}: 'state_units' must hold one entry per seed")
        units = [StateUnits.from_json(u, f"{where}: 'state_units' of seed {s}")
                 for u, s in zip(saved, group.seeds, strict=True)]  # fmt: skip
        source = None
    else:
        fit = group.extra.get("units_vs_returns")
        if not isinstance(fit, dict) or group.cue_axes is None or group.cue_probs is None:
            return None
        per_seed = fit.get("per_seed")
        if not isinstance(per_seed, list) or len(per_seed) != len(group.seeds):
            raise DataError(f"{where}: 'units_vs_returns' must hold one entry per seed")
        units = [
            _legacy_state_units(seed, axes, probs, f"{where}: 'units_vs_returns'")
            for seed, axes, probs in zip(per_seed, group.cue_axes, group.cue_probs, strict=True)
        ]
        source = LEGACY_SCALE
    for i, (u, s) in enumerate(zip(units, group.seeds, strict=True)):
        states = len(group.conditions(i))
        if u.values.shape[0] != states:
            raise DataError(f"{where}: seed {s} has {states} states but calibration units at "
                            f"{u.values.shape[0]}")  # fmt: skip
    return units, source


def _legacy_state_units(seed: Any, axes: Sequence[np.ndarray], probs: Sequence[np.ndarray],
                        where: str) -> Any:  # fmt: skip
    """A seed's units rebuilt from a saved ``units_vs_returns`` entry (z-scores per cue
    state) with each state's mean and SD from its bins (:data:`LEGACY_SCALE`)."""
    from .calibration import StateUnits

    if not isinstance(seed, list) or len(seed) != len(axes) or not seed:
        raise DataError(f"{where}: 'per_seed' must hold one entry per cue state of every seed")
    try:
        taus = np.asarray(seed[0]["tau"], dtype=float)
        z = np.array([c["z"] for c in seed], dtype=float)
        t = np.array([c["target_z"] for c in seed], dtype=float)
    except (TypeError, ValueError, KeyError):
        raise DataError(
            f"{where}: every cue state needs numeric 'tau', 'z' and 'target_z'"
        ) from None
    means = np.array([float(a @ p) for a, p in zip(axes, probs, strict=True)])
    sds = np.array([math.sqrt(float(((a - m) ** 2) @ p))
                    for a, p, m in zip(axes, probs, means, strict=True)])  # fmt: skip
    if z.ndim != 2 or t.shape != z.shape:
        raise DataError(f"{where}: 'z' and 'target_z' must have one value per unit")
    return StateUnits.from_json(
        {"tau": taus.tolist(), "values": (means[:, None] + sds[:, None] * z).tolist(),
         "targets": (means[:, None] + sds[:, None] * t).tolist(),
         "return_means": means.tolist(), "return_sds": sds.tolist()},
        where,
    )  # fmt: skip


IDEAL_NOTE = (
    "the ceiling: the same seeds' units placed exactly on their targets (c = 1, offset 0) at "
    "the same states and outcomes, own-gradient responses (in a task: to each bin's mean "
    "return, where the agent's are averaged over the bin's returns), the same protocol, "
    "draws and detection rule (the calibration curve's point c = 1, offset 0); shared by the "
    "agent's response models"
)


def _add_calibration(
    groups: Sequence[UnitGroup],
    found: dict[str, tuple[list[Any], str | None] | None],
    results: dict[str, Any],
    protocol: RecordedProtocol,
    **study: Any,
) -> None:
    """Each group's ``calibration``, ``calibration_curve`` (:mod:`agent.probes.
    calibration_curve`) and ``ideal_ceiling`` (the curve's point c = 1, offset 0: P(both) of
    its ideal population), from its units ``found`` by :func:`group_state_units`; the curve is
    computed once per agent and task; a group without units of its own (a measured group of
    a saved file that predates calibration) borrows those of its agent's group at the same
    task and seeds."""
    from .calibration import group_calibration
    from .calibration_curve import KEYS, calibration_curve

    by_units = {(g.agent, g.task, tuple(g.seeds)): found[g.name] for g in groups if found[g.name]}
    curves: dict[tuple[str, str], dict[str, Any]] = {}
    for g in groups:
        units = found[g.name] or by_units.get((g.agent, g.task, tuple(g.seeds)))
        if units is None:
            continue
        cal = group_calibration(g.seeds, units[0])
        if units[1]:
            cal["scale_source"] = units[1]
        results[g.name]["calibration"] = cal
        key = (g.agent, g.task)
        if key not in curves:
            curves[key] = calibration_curve(g, units[0], cal, protocol, **study)
        curve = curves[key]
        results[g.name]["calibration_curve"] = curve
        results[g.name]["ideal_ceiling"] = {
            "note": IDEAL_NOTE,
            **{k: curve["ceiling"][k] for k in KEYS},
        }


# ----------------------------------------------------------------------------- from runs


def expand_runs(spec: str | Sequence[str], notes: list[str] | None = None) -> list[Any]:
    """Run dirs from ``RUN[,RUN…]`` (dirs or globs); a population run counts as one run per
    member, and every run once (:func:`agent.store.run_identity.unique_runs`: the repeats
    dropped are named in a line appended to ``notes``). Errors (ConfigError): nothing given, a
    glob matching nothing, a missing dir, a dir with neither members nor a checkpoint, a
    population with a member missing, two checkpoints of one run."""
    import glob

    from .population import member_dirs

    items = [s for s in (spec.split(",") if isinstance(spec, str) else spec) if s]
    if not items:
        raise ConfigError("study= needs at least one run dir or glob (RUN[,RUN...])")
    dirs: list[tuple[Path, str]] = []  # (run dir, the argument it came from)
    for item in items:
        if any(ch in item for ch in "*?["):
            matches = sorted(glob.glob(item))
            if not matches:
                raise ConfigError(f"'{item}' matches no run dir")
        elif not Path(item).exists():
            raise ConfigError(f"run dir '{item}' does not exist")
        else:
            matches = [item]
        for m in matches:
            if m.endswith(".json") and not Path(m).is_dir():  # a FIFO too: refused on read
                dirs.append((Path(m), item))  # saved unit responses of an earlier study
            else:
                dirs.extend((d, item) for d in member_dirs(m))
    return unique_runs(dirs, notes)


def groups_from_runs(
    runs: Sequence[Any],
    models: Sequence[str] | None = None,
    n_units: int = RECORDED_UNITS,
    cues: int = STUDY_DEFAULTS.cues,
    state: str | None = None,
) -> list[UnitGroup]:
    """Noise-free responses of every run's units, one group per (agent, response model, task),
    seeds in order: on the variable-magnitude lab task to its outcomes at the run's
    ``probe.state`` (or ``state``: "pre_outcome" or "cue_onset"); on any other task at
    ``cues`` of the run's own cue states to sampled returns (the in-task protocol,
    :func:`agent.probes.in_task.cue_conditions`). Saved ``unit_responses.json`` files are
    read back as they are."""
    from ..learn.evaluate import load_agent

    models = _checked_models(models)
    saved: list[tuple[UnitGroup, str]] = []
    loaded = []
    for run in runs:
        if not Path(run).is_dir():  # a saved file (expand_runs)
            saved += [(g, str(run)) for g in read_unit_groups(Path(run))]
            continue
        learner, cfg, _ = load_agent(run, "cpu")
        if state is not None:
            cfg.probe.state = state  # the probe's choice of lab state, not the run's
        loaded.append((run, learner, cfg))
    # groups of a saved file are complete: the same group from elsewhere would be counted
    # twice (or one copy lost under its name), and saved lab groups share the runs' task
    source = {g.name: where for g, where in saved}
    clash = next((g.name for g, where in saved if source[g.name] != where), None)
    if clash is not None:
        raise ConfigError(f"group '{clash}' comes from more than one saved file; give it once")
    lab = [_lab_source(run, cfg) for run, _, cfg in loaded if family_of(cfg.env).lab_task]
    check_same_lab_task(
        [LabTaskSource(f"{where} ('{g.name}')", g.axis, g.magnitudes, g.probs, None)
         for g, where in saved if g.cue_axes is None] + lab
    )  # fmt: skip
    fresh = groups_from_learners(loaded, models, n_units, cues)
    clash = next((g.name for g in fresh if g.name in source), None)
    if clash is not None:
        raise ConfigError(
            f"group '{clash}' is in {source[clash]} and comes from the runs given too; give "
            "the saved file or the runs, not both"
        )
    return [g for g, _ in saved] + fresh


def groups_from_learners(
    runs: Sequence[tuple[Any, Any, Any]],
    models: Sequence[str] | None = None,
    n_units: int = RECORDED_UNITS,
    cues: int = STUDY_DEFAULTS.cues,
) -> list[UnitGroup]:
    """:func:`groups_from_runs` for agents already loaded: (name, learner, cfg) each.

    Checked before any response is computed: one lab task over all lab-task runs, distinct
    seeds in every group; after: the same τ of every unit within a group."""
    models = _checked_models(models)
    check_same_lab_task(
        [_lab_source(run, cfg) for run, _, cfg in runs if family_of(cfg.env).lab_task]
    )
    by_group: dict[tuple[str, str], list[SeedSource]] = {}
    for run, learner, cfg in runs:
        family = family_of(cfg.env)
        task = "" if family.lab_task else family.display_id(cfg.env)
        source = SeedSource(str(run), int(cfg.seed), task=None if family.lab_task else {
            **{k: v for k, v in config_items(cfg.env, "env").items()
               if k.split(".")[1] not in RUNTIME_ENV_KEYS},
            "agent.gamma": cfg.agent.gamma,  # the returns G are discounted by it
        })  # fmt: skip
        by_group.setdefault((learner.name, task), []).append(source)
    for (agent, task), sources in by_group.items():
        check_group_seeds(agent + (f"@{task}" if task else ""), sources)
    collected: dict[str, dict[str, Any]] = {}
    for run, learner, cfg in runs:
        for m in models:
            if not response_models.response_model(m).supports(learner):
                raise ConfigError(
                    f"{run}: '{learner.name}' has no per-unit loss, so no {m} responses; use "
                    f"responses={','.join(n for n in response_models.names() if n != m)}"
                )
        family = family_of(cfg.env)
        if family.lab_task:
            rows = _lab_rows(run, learner, cfg, models, n_units)
        else:
            rows = _in_task_rows(run, learner, cfg, models, n_units, cues)
        for model, row in rows.items():
            key = f"{learner.name}/{model}" + (f"@{row['task']}" if row["task"] else "")
            g = collected.setdefault(
                key, {"agent": learner.name, "model": model, "seeds": [], "responses": [],
                      "decomp": [], **row["group"]},
            )  # fmt: skip
            g["seeds"].append(int(cfg.seed))
            g.setdefault("sources", []).append(SeedSource(str(run), int(cfg.seed), row["taus"]))
            g["responses"].append(row["mean"])
            for name in ("cue_axes", "cue_probs", "decomp", "cue_counts", "cue_units",
                         "state_units"):  # fmt: skip
                if name in row:
                    g.setdefault(name, []).append(row[name])
    for key, g in collected.items():
        check_group_seeds(key, g["sources"])
    groups = []
    for key, g in collected.items():
        extra: dict[str, Any] = {}
        if g["decomp"]:
            extra["decomposition"] = {
                "note": g["decomp"][0]["note"],
                **{
                    k: _spread([d[f"{k}_median"] for d in g["decomp"]])
                    for k in ("own_fraction", "other_fraction", "cross_fraction")
                },
                "first_order_r2": _spread([d["first_order_r2"] for d in g["decomp"]]),
                "summary": "median over units per seed"
                + (" and cue state" if g["task"] else "")
                + "; median (range) over seeds",
            }
        if g.get("cue_units"):
            extra["units_vs_returns"] = {
                "note": UNITS_VS_RETURNS_NOTE,
                **{
                    k: _spread([_median([c[k] for c in seed]) for seed in g["cue_units"]])
                    for k in ("order_r", "spread_ratio", "offset")
                },
                "per_seed": g["cue_units"],
            }
        if g.get("state_units"):
            extra["state_units"] = g["state_units"]  # read by the calibration endpoint
        if g.get("probed_state"):
            extra["probed_state"] = g["probed_state"]  # which lab state, and its target
        if g["task"]:
            used = [c[0] for c in g["cue_counts"]]
            extra["cue_states"] = {
                "per_seed_used": used,
                "per_seed_skipped": [c[1] for c in g["cue_counts"]],
                "note": IN_TASK_NOTE,
            }
        groups.append(
            UnitGroup(
                name=key,
                agent=g["agent"],
                response_model=g["model"],
                axis=g["axis"],
                magnitudes=g["magnitudes"],
                probs=g["probs"],
                seeds=g["seeds"],
                responses=g["responses"],
                note=_model_note(g["model"]),
                extra=extra,
                cue_axes=g.get("cue_axes"),
                cue_probs=g.get("cue_probs"),
                task=g["task"],
            )
        )
    return groups


def _checked_models(models: Sequence[str] | None) -> list[str]:
    """The response models asked for (default: all registered), each one registered."""
    models = list(response_models.names() if models is None else models)
    if not models or any(m not in response_models.names() for m in models):
        raise ConfigError(
            f"responses must be among {', '.join(response_models.names())}, got {','.join(models)}"
        )
    return models


def _model_note(name: str) -> str:
    model = response_models.response_model(name)
    return model.note + (SCALED if model.scales_huber else "")


#: what an in-task group's conditions are (detection.json)
IN_TASK_NOTE = (
    "in-task protocol: per seed the run's own cue states (top decile of its head's spread in "
    "3 evaluation episodes), 215 greedy rollouts from the cloned state at each, the returns G "
    "binned into up to 7 equal-count magnitudes (ties share a bin); each recorded cell's "
    "trials shared over the bins by their frequency; the seed's draws shared out over its "
    "cue states in turn; cue states with fewer than 3 bins are skipped"
)


UNITS_VS_RETURNS_NOTE = (
    "noise-free: each unit's value at the cue state against the same statistic of the "
    "rollouts' returns G at its tau (expectile units: the tau-expectile; quantile units: the "
    "tau-quantile; mean units: the mean), both standardised by the returns' mean and SD "
    "(z); order_r: Spearman r of unit values with those targets over units (undefined for "
    "classical units, whose targets are all the mean); spread_ratio: SD of the units' values "
    "/ SD of the targets; offset: median (value - target) in return SDs; median over cue "
    "states per seed, median (range) over seeds"
)


def units_against_returns(outcome: Any) -> dict[str, Any]:
    """Where the head's units sit at a cue state against the distribution they should have
    learned there: the rollouts' τ-expectiles, τ-quantiles or mean (by the head's kind)."""
    r = outcome.readout
    g = outcome.returns
    mean, sd = float(np.mean(g)), float(np.std(g))
    target = return_targets(outcome)
    z = (r.values - mean) / sd
    t = (target - mean) / sd
    order = (
        float(scipy.stats.spearmanr(r.values, target)[0])
        if np.ptp(target) > 0 and np.ptp(r.values) > 0
        else math.nan
    )
    return {
        "tau": r.taus, "z": z, "target_z": t, "order_r": order,
        "spread_ratio": float(np.std(z) / np.std(t)) if np.std(t) > 0 else math.nan,
        "offset": float(np.median(z - t)), "representation": r.representation,
    }  # fmt: skip


def return_targets(outcome: Any) -> np.ndarray:
    """[N] what each unit probed at a cue state should hold: the statistic at its τ of the
    rollouts' returns (:func:`agent.probes.calibration.unit_targets`)."""
    from .calibration import unit_targets

    r = outcome.readout
    return unit_targets(r.representation, r.taus, outcome.returns)


def _cue_state_units(outcomes: Sequence[Any]) -> dict[str, Any]:
    """One seed's units at its cue states against the rollouts' returns, for calibration."""
    from .calibration import StateUnits

    return StateUnits(
        taus=outcomes[0].readout.taus,
        values=np.stack([o.readout.values for o in outcomes]),
        targets=np.stack([return_targets(o) for o in outcomes]),
        return_means=np.array([float(np.mean(o.returns)) for o in outcomes]),
        return_sds=np.array([float(np.std(o.returns)) for o in outcomes]),
    ).to_json()


def _lab_state_units(readout: Any, task: Any) -> dict[str, Any]:
    """One seed's units at the lab task's probed state against the true statistics at their τ
    of the return there (``task.values``: u(r) at the pre-outcome state, γ^d·u(r) at cue
    onset), for calibration."""
    from .calibration import lab_state_units

    return lab_state_units(
        readout.values, readout.taus, readout.representation, task.values, task.probs
    ).to_json()


def _lab_rows(
    run: Any, learner: Any, cfg: Any, models: Sequence[str], n_units: int
) -> dict[str, dict[str, Any]]:
    """One seed's responses to the variable-magnitude task's outcomes, presented as the return
    at its probed state (``probe.state``), per response model."""
    from .agent_cells import read_units
    from .responses.gradient import resolve_scale

    task = _variable_magnitude_task(run, cfg)
    readout = read_units(learner, task.observation[None, :])[0]
    _enough_units(run, readout.values.size, n_units)
    group = {"axis": task.values, "magnitudes": task.magnitudes, "probs": task.probs, "task": "",
             "probed_state": task.probed_state()}  # fmt: skip
    rows: dict[str, dict[str, Any]] = {}
    for model in models:
        row: dict[str, Any] = {"group": group, "task": "", "taus": readout.taus,
                               "state_units": _lab_state_units(readout, task)}  # fmt: skip
        entry = response_models.response_model(model)
        scale = resolve_scale(readout, task.values, "auto") if entry.scales_huber else 1.0
        asked = response_models.Outcomes(learner, readout, task.observation, task.values,
                                   huber_scale=scale)  # fmt: skip
        if entry.decompose is not None:
            row["mean"], row["decomp"] = entry.decompose(asked)
        else:
            row["mean"], _ = entry.respond(asked)
        rows[model] = row
    return rows


def _variable_magnitude_task(run: Any, cfg: Any) -> Any:
    """The run's lab task (:func:`agent.probes.agent_cells.lab_task`); the study's lab
    protocol is the variable-magnitude task's."""
    from .agent_cells import lab_task

    if "Magnitude" not in str(cfg.env.id):
        raise ConfigError(
            f"{run}: the detection study needs a variable-magnitude lab-task run or a run on "
            f"a task that is not a lab task, not {cfg.env.id}"
        )
    return lab_task(cfg)


def _lab_source(run: Any, cfg: Any) -> LabTaskSource:
    """What makes a lab-task run comparable with another: its task's outcomes, and the config
    keys that set them (for the message when two differ)."""
    task = _variable_magnitude_task(run, cfg)
    config = {
        k: v for k, v in config_items(cfg.env, "env").items()
        if k == "env.id" or k.startswith("env.kwargs.")
    }  # fmt: skip
    # the probed state and γ set the outcomes' values there (γ^d·u(r))
    config.update({"probe.state": task.state, "agent.gamma": float(cfg.agent.gamma)})
    return LabTaskSource(str(run), task.values, task.magnitudes, task.probs, config)


def _in_task_rows(
    run: Any, learner: Any, cfg: Any, models: Sequence[str], n_units: int, cues: int
) -> dict[str, dict[str, Any]]:
    """One seed's responses at its own cue states to sampled returns, per response model."""
    from .in_task import cue_conditions

    found = cue_conditions(learner, cfg, models=models, cues=cues, seed=int(cfg.seed))
    task = family_of(cfg.env).display_id(cfg.env)
    empty = np.zeros(0)
    rows: dict[str, dict[str, Any]] = {}
    for model, outcomes in found["outcomes"].items():
        if not outcomes:
            raise ConfigError(
                f"{run}: none of its {found['cues_chosen']} cue states gave returns in 3 or "
                "more bins (a deterministic task under its greedy policy?)"
            )
        _enough_units(run, outcomes[0].by_bin.shape[0], n_units)
        row: dict[str, Any] = {
            "group": {"axis": empty, "magnitudes": empty, "probs": empty, "task": task},
            "task": task,
            "mean": [o.by_bin for o in outcomes],
            "cue_axes": [o.values for o in outcomes],
            "cue_probs": [o.probs for o in outcomes],
            "cue_counts": (len(outcomes), found["cues_skipped"]),
            "taus": outcomes[0].readout.taus,
            "state_units": _cue_state_units(outcomes),
        }
        if model == models[0]:  # the units against the returns: once per seed
            row["cue_units"] = [units_against_returns(o) for o in outcomes]
        decomps = [o.decomposition for o in outcomes if o.decomposition is not None]
        if decomps:
            row["decomp"] = {
                "note": decomps[0]["note"],
                **{
                    f"{k}_median": float(np.median([d[f"{k}_median"] for d in decomps]))
                    for k in ("own_fraction", "other_fraction", "cross_fraction")
                },
                "first_order_r2": float(np.median([d["first_order_r2"] for d in decomps])),
            }
        rows[model] = row
    return rows


def _enough_units(run: Any, n: int, n_units: int) -> None:
    if n < n_units:
        raise ConfigError(
            f"{run}: its head has {n} units, fewer than the {n_units} the recorded protocol "
            f"draws (train with agent.num_units>={n_units}, or ask for fewer with units={n})"
        )
