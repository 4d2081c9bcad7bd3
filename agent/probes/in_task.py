"""The lab protocol inside any task: cue states, cloned env, sampled returns as outcomes.

docs/science.md §4 "In real tasks". On a lab task the probe presents every outcome at the
pre-outcome state. A control or Atari task has no such state, but its return from a state is
an outcome all the same: clone the env there, roll the agent's policy forward M times and
each discounted return G is one trial. Steps:

1. **Cue states.** The agent plays ``episodes`` evaluation episodes (its ``eps_eval``) in one
   cloneable env (agent/envs/cloning.py), keeping every state's snapshot and the spread (SD
   across units) of its head at the greedy action. The cue states are ``cues`` states from
   the top decile of that spread (evenly spaced through it by rank), where the head itself
   says the return ahead is most uncertain, or the states the user lists (episode:step).
2. **Outcomes.** From each cue state, ``rollouts`` rollouts: restore the snapshot with a fresh
   random stream each time, take the greedy action the units are read at, then follow the
   agent's policy (greedy, or ε = ``rollout_eps``) until the episode terminates or ``horizon``
   steps (rollouts cut there are counted); G = Σₜ γᵗ rₜ with the *training* rewards (clipped
   on Atari when so trained), the quantity the head learned. Rollouts run past the env's
   time limit (CartPole's 500 steps): the agents bootstrap through time-limit truncations,
   so the return their units predict has no such limit.
3. **Trials.** Each rollout is one trial: every unit responds to its G with the configured
   response model (:func:`agent.probes.agent_cells.unit_responses`: the unit's loss gradient;
   ``response="measured"``: its change after one gradient step through the network, measured
   at each magnitude's mean G) plus Gaussian noise at the recorded cells' signal-to-noise
   ratio by default. Outcomes are binned into ``bins`` equal-count magnitudes (7, as the
   paper's task), each labelled by its mean G, which is the utility axis.
4. **The paper's pipeline, unchanged** (:func:`agent.probes.analysis.analyse_population`):
   reversal points, asymmetries, split halves, cross-validated τ–RP; the decode from the
   estimated (RP, τ) is scored against the rollouts' empirical distribution of G, next to the
   same references as on the lab tasks (point mass at the mean, moment-matched Gaussian,
   uniform).

A classical agent (``baseline``) is probed at the same cue states (its own policy's rollouts
from the same snapshots) and reported beside. ``protocol="recorded"``: 40 units (evenly
spaced in τ), 215 trials per unit (the recorded cells' median total) in 7 magnitudes, the
recorded signal-to-noise ratio.

What this builds in: the asymmetries the pipeline estimates from gradient responses are the
configured τ plus noise; the reversal points (the learned θᵢ at the cue state) and their
relation to the task's own return distribution are the outcome of training. Cue states where
every rollout returns the same G (deterministic dynamics under a greedy policy, e.g.
CartPole) have no outcome distribution and are skipped and counted; ``rollout_eps`` > 0 adds
policy noise, which changes the distribution being predicted (said in the output).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..core.errors import ConfigError
from ..envs import family_of
from ..envs.cloning import CloneableEnv, make_cloneable_env
from .agent_cells import LabTask, exact_decode, read_units, split_example
from .analysis import analyse_population, jsonable
from .calibration import cue_calibration, unit_targets
from .decoding import decode_report
from .noise import noise_sd, parse_noise
from .responses import Outcomes, response_model
from .settings import PROBE_CUES, RECORDED_UNITS, StudySettings
from .trials import by_cell

RECORDED_TRIALS = 215  # their median trials per cell (agent/probes/noise.py)
PROTOCOLS = ("all", "recorded")
MIN_BINS = 3  # outcome bins a cue state needs for the detection study


@dataclass
class CueState:
    """A state of an evaluation episode: where, what the agent saw, the env's snapshot."""

    episode: int
    step: int
    observation: np.ndarray
    snapshot: Any
    spread: float  # SD across the head's units at the greedy action


def episode_states(
    learner: Any,
    env: CloneableEnv,
    *,
    episodes: int = 3,
    epsilon: float = 0.0,
    max_steps: int = 2_000,
    seed: int = 0,
) -> list[CueState]:
    """Every state of ``episodes`` evaluation episodes with its snapshot and head spread."""
    generator = torch.Generator(device=learner.device)
    generator.manual_seed(seed)
    states: list[CueState] = []
    for e in range(episodes):
        obs = env.reset(seed=seed + e)
        for t in range(max_steps):
            units = read_units(learner, obs[None], action=None)[0].values
            spread = float(np.std(units, ddof=1)) if units.size > 1 else 0.0
            states.append(CueState(e, t, obs.copy(), env.clone(), spread))
            x = torch.as_tensor(obs[None], device=learner.device)
            action = int(learner.act(x, epsilon, generator)[0])
            obs, _, done = env.step(action)
            if done:
                break
    return states


def choose_cues(
    states: Sequence[CueState],
    n_cues: int,
    *,
    quantile: float = 0.9,
    given: Sequence[tuple[int, int]] | None = None,
) -> list[CueState]:
    """The listed (episode, step) states, else ``n_cues`` states from the top decile (above
    ``quantile``) of the head's spread, evenly spaced by rank through it."""
    if given:
        where = {(s.episode, s.step): s for s in states}
        missing = [f"{e}:{t}" for e, t in given if (e, t) not in where]
        if missing:
            lengths = np.bincount([s.episode for s in states])
            raise ConfigError(
                f"cue states {', '.join(missing)} are not in the evaluation episodes "
                f"(episode:step, episode lengths {lengths.tolist()})"
            )
        return [where[g] for g in given]
    spreads = np.array([s.spread for s in states])
    top = np.flatnonzero(spreads >= np.quantile(spreads, quantile))
    top = top[np.argsort(-spreads[top], kind="stable")]
    pick = np.unique(np.round(np.linspace(0, top.size - 1, min(n_cues, top.size))).astype(int))
    return [states[i] for i in top[pick]]


def _rollout_seed(seed: int, cue: int, rollout: int) -> int:
    return int(np.random.SeedSequence([seed, cue, rollout]).generate_state(1)[0])


@torch.no_grad()
def sample_returns(
    learner: Any,
    envs: Sequence[CloneableEnv],
    snapshot: Any,
    first_action: int,
    *,
    rollouts: int,
    gamma: float,
    epsilon: float = 0.0,
    horizon: int = 1_000,
    seed: int = 0,
    cue: int = 0,
) -> tuple[np.ndarray, float]:
    """Discounted returns [rollouts] from ``snapshot`` (``len(envs)`` rollouts at a time, one
    batched forward pass per step), and the fraction cut at ``horizon``."""
    generator = torch.Generator(device=learner.device)
    generator.manual_seed(_rollout_seed(seed, cue, 2**31))  # the policy's ε draws
    returns = np.zeros(rollouts)
    truncated = np.zeros(rollouts, dtype=bool)
    for start in range(0, rollouts, len(envs)):
        idx = list(range(start, min(rollouts, start + len(envs))))
        batch = envs[: len(idx)]
        obs = np.stack(
            [
                env.restore(snapshot, reseed=_rollout_seed(seed, cue, m), time_limit=False)
                for env, m in zip(batch, idx, strict=True)
            ]
        )
        alive = np.ones(len(idx), dtype=bool)
        discount = 1.0
        for t in range(horizon):
            live = np.flatnonzero(alive)
            if t == 0:
                actions = np.full(live.size, int(first_action))
            else:
                x = torch.as_tensor(obs[live], device=learner.device)
                actions = learner.act(x, epsilon, generator).cpu().numpy()
            for j, a in zip(live.tolist(), actions, strict=True):
                o, r, done = batch[j].step(int(a))
                returns[idx[j]] += discount * r
                obs[j] = o
                alive[j] = not done
            discount *= gamma
            if not alive.any():
                break
        truncated[idx] = alive
    return returns, float(truncated.mean())


def bin_outcomes(returns: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Equal-count bins of the sampled returns: (bin of each rollout [M], mean G of each bin
    [K], frequency of each bin [K]). Equal returns share a bin, placed by the midpoint of
    their ranks, so a return with most of the mass never swallows a rare one beside it:
    two or more distinct returns always give two or more bins (``n_bins`` ≥ 3)."""
    g = np.asarray(returns, dtype=float)
    uniq, inverse, counts = np.unique(g, return_inverse=True, return_counts=True)
    midpoint = np.cumsum(counts) - counts / 2.0  # mid-rank of each distinct return
    raw = np.minimum((midpoint * n_bins / g.size).astype(int), n_bins - 1)[inverse]
    labels, index = np.unique(raw, return_inverse=True)
    values = np.array([g[index == k].mean() for k in range(labels.size)])
    probs = np.bincount(index, minlength=labels.size) / g.size
    return index, values, probs


def _units(n: int, protocol: str) -> np.ndarray:
    """Indices of the units probed: all, or 40 evenly spaced (``protocol="recorded"``)."""
    if protocol == "recorded" and n > RECORDED_UNITS:
        return np.unique(np.round(np.linspace(0, n - 1, RECORDED_UNITS)).astype(int))
    return np.arange(n)


@dataclass
class CueOutcomes:
    """One cue state's sampled outcomes and the units' noise-free responses to them."""

    action: int  # the greedy action the units are read at
    readout: Any  # UnitReadout of the units probed
    units: np.ndarray  # their indices in the head
    returns: np.ndarray  # [M] sampled G
    index: np.ndarray  # [M] bin of each G
    values: np.ndarray  # [K] mean G of each bin (the utility axis)
    probs: np.ndarray  # [K] frequency of each bin
    scale: float  # quantile-Huber error divisor (1: the loss itself)
    trial_mean: np.ndarray  # [N, M] response to each sampled G
    by_bin: np.ndarray  # [N, K] mean response per bin
    saturated: float  # fraction of (unit, outcome) pairs clipped by the Huber threshold
    decomposition: dict[str, Any] | None = None  # response=measured: own / shared parts


def cue_outcomes(
    learner: Any,
    observation: np.ndarray,
    returns: np.ndarray,
    *,
    bins: int = 7,
    response: str = "gradient",
    huber_scale: float | str | None = "auto",
    protocol: str = "all",
    decompose: bool = False,
) -> CueOutcomes:
    """Bin the sampled returns and compute every unit's noise-free response to them (step 3
    of the module docstring), shared by the probe and the detection study. With
    ``response="measured"`` a bin's response is measured once at the bin's mean G (a fresh
    gradient step per bin), and with ``decompose`` also split into the unit's own and the
    shared-torso parts (:func:`agent.probes.measured.response_decomposition`)."""
    from .responses.gradient import resolve_scale

    model = response_model(response)
    x = torch.as_tensor(observation[None], device=learner.device)
    action = int(learner.q_values(learner.online, x).argmax())
    readout = read_units(learner, observation[None], action=action)[0]
    keep = _units(readout.values.size, protocol)
    readout = dataclasses.replace(readout, values=readout.values[keep], taus=readout.taus[keep])
    g = np.asarray(returns, dtype=float)
    if protocol == "recorded":
        g = g[:RECORDED_TRIALS]
    index, values, probs = bin_outcomes(g, bins)
    scale = resolve_scale(readout, g, huber_scale)

    def asked(at: np.ndarray) -> Outcomes:
        return Outcomes(learner, readout, observation, at, action, scale, keep)

    decomposition = None
    if model.per_trial:  # each trial's own G
        trial_mean, saturated = model.respond(asked(g))  # [N, M]
        by_bin = np.stack([trial_mean[:, index == k].mean(axis=1) for k in range(values.size)], 1)
    else:  # once per bin, at the bin's mean G
        if decompose and model.decompose is not None:
            by_bin, decomposition = model.decompose(asked(values))  # [N, K]
        else:
            by_bin, _ = model.respond(asked(values))
        trial_mean, saturated = by_bin[:, index], 0.0
    return CueOutcomes(action, readout, keep, g, index, values, probs, scale, trial_mean,
                       by_bin, saturated, decomposition)  # fmt: skip


def probe_cue(
    learner: Any,
    cue: CueState,
    returns: np.ndarray,
    *,
    bins: int = 7,
    noise: float | str = "recorded",
    huber_scale: float | str | None = "auto",
    splits: int = 100,
    seed: int = 0,
    response: str = "gradient",
    protocol: str = "all",
    decode_restarts: int = 3,
) -> dict[str, Any]:
    """The paper's pipeline on one cue state: each rollout's G a trial for every unit."""
    obs = cue.observation
    out = cue_outcomes(learner, obs, returns, bins=bins, response=response,
                       huber_scale=huber_scale, protocol=protocol)  # fmt: skip
    action, readout, keep, g = out.action, out.readout, out.units, out.returns
    index, values, trial_mean, by_bin = out.index, out.values, out.trial_mean, out.by_bin
    scale, saturated = out.scale, out.saturated
    reward_sd = float(np.std(g))
    sd = noise_sd(by_bin, noise, reward_sd)
    rng = np.random.default_rng(seed)
    responses = trial_mean + sd[:, None] * rng.standard_normal(trial_mean.shape)
    import pandas as pd

    n, m = responses.shape
    table = pd.DataFrame(
        {
            "cell": np.repeat(np.arange(n), m),
            "magnitude": np.tile(values[index], n),
            "response": responses.ravel(),
            "trial": np.tile(np.arange(m), n),
        }
    )
    result = analyse_population(table, axis=values, n_splits=splits, seed=seed, reward_sd=reward_sd)
    uniform = np.full(g.size, 1.0 / g.size)
    rps = np.array([np.nan if v is None else v for v in result["reversal_points"]], float)
    taus = np.array([np.nan if v is None else v for v in result["asymmetries"]], float)
    usable = np.isfinite(rps) & np.isfinite(taus) & (taus > 0) & (taus < 1)
    if usable.sum():
        decoded = decode_report(
            rps[usable], taus[usable], g, uniform, seed=seed, restarts=decode_restarts
        )
    else:
        decoded = {"samples": [], "wasserstein1": None, "identifiable": False, "references": {},
                   "reason": "no unit has a finite asymmetry strictly between 0 and 1"}  # fmt: skip
    decoded.update(
        cells_used=int(usable.sum()),
        note="pipeline (RP, tau) pairs decoded; scored against the rollouts' empirical "
        "distribution of G (every rollout weighted 1/M), references likewise",
    )
    exact = exact_decode(readout, LabTask("", obs, g, g, uniform, None), seed, decode_restarts)
    exact["note"] = "reference only: decoded from the head's exact unit values and configured tau"
    result.update(
        jsonable(
            {
                "source": f"agent:{learner.name}",
                "axis_unit": "discounted return G",
                "cue": {
                    "episode": cue.episode,
                    "step": cue.step,
                    "head_spread": cue.spread,
                    "action": action,
                },  # fmt: skip
                "true_distribution": {"values": g, "probs": uniform},
                "unit_values": readout.values,
                "unit_taus": readout.taus,
                # the statistic of G at each unit's tau (what calibration compares it with)
                "unit_targets": unit_targets(readout.representation, readout.taus, g),
                "unit_index": keep,
                # units predicting beyond every sampled return reverse at the axis' edge
                "units_above_all_returns": float(np.mean(readout.values > g.max())),
                "units_below_all_returns": float(np.mean(readout.values < g.min())),
                "mean_responses": by_cell(table).mean_responses(),
                "split_example": split_example(table, values, seed),
                "response_model": {
                    "response": response,
                    "rule": readout.rule,
                    "kappa": readout.kappa,
                    "scale": scale,
                    "saturated_fraction": saturated,
                    "noise": noise,
                    "noise_sd_median": float(np.median(sd)),
                    "trials_per_magnitude": np.bincount(index).tolist(),
                    "note": readout.note,
                },  # fmt: skip
            }
        )
    )
    result["decoded"] = jsonable(decoded)
    result["decoded_exact_units"] = jsonable(exact)
    return result


def summarise(cues: Sequence[dict[str, Any]], alpha: float = 0.01) -> dict[str, Any]:
    """Medians (and ranges) over cue states of the headline numbers; the fraction of cue
    states where both findings hold (split-half and cross-validated τ–RP, median p < α)."""

    def values(get: Callable[[dict[str, Any]], Any]) -> np.ndarray:
        out = []
        for c in cues:
            try:
                v = get(c)
            except (KeyError, TypeError):
                v = None
            out.append(np.nan if v is None else float(v))
        return np.array(out)

    rows = {
        "reversal_spread_rel_sd": values(lambda c: c["reversal_spread"]["std_rel_reward_sd"]),
        "split_half_r": values(lambda c: c["split_half"]["r"]),
        "split_half_p": values(lambda c: c["split_half"]["p"]),
        "tau_rp_r": values(lambda c: c["asymmetry_vs_reversal"]["r"]),
        "tau_rp_p": values(lambda c: c["asymmetry_vs_reversal"]["p"]),
        "decode_w1": values(lambda c: c["decoded"]["wasserstein1"]),
        "gaussian_w1": values(lambda c: c["decoded"]["references"]["gaussian"]["wasserstein1"]),
        "point_mass_w1": values(
            lambda c: c["decoded"]["references"]["point_mass_mean"]["wasserstein1"]
        ),
        "exact_decode_w1": values(lambda c: c["decoded_exact_units"]["wasserstein1"]),
        "return_sd": values(lambda c: c["reversal_spread"]["reward_sd"]),
        "units_above_all_returns": values(lambda c: c["units_above_all_returns"]),
        "units_below_all_returns": values(lambda c: c["units_below_all_returns"]),
    }
    out: dict[str, Any] = {"n_cues": len(cues)}
    for name, v in rows.items():
        ok = v[np.isfinite(v)]
        out[name] = {
            "median": float(np.median(ok)) if ok.size else math.nan,
            "range": [float(ok.min()), float(ok.max())] if ok.size else [math.nan, math.nan],
        }
    both = (rows["split_half_p"] < alpha) & (rows["tau_rp_p"] < alpha)
    out[f"fraction_cues_both_p_below_{alpha}"] = float(both.mean()) if len(cues) else math.nan
    out["decode_beats_gaussian_fraction"] = (
        float(np.mean(rows["decode_w1"] < rows["gaussian_w1"])) if len(cues) else math.nan
    )
    return jsonable(out)


def _probe_agent(
    learner: Any,
    cues: Sequence[CueState],
    envs: Sequence[CloneableEnv],
    settings: dict[str, Any],
    *,
    seed: int,
) -> dict[str, Any]:
    """Rollouts and the pipeline at every cue state for one agent (its own γ: the return
    its units predict)."""
    results, skipped = [], []
    gamma = float(learner.cfg.gamma)
    for c, cue in enumerate(cues):
        x = torch.as_tensor(cue.observation[None], device=learner.device)
        action = int(learner.q_values(learner.online, x).argmax())
        g, cut = sample_returns(
            learner, envs, cue.snapshot, action, rollouts=settings["rollouts"], gamma=gamma,
            epsilon=settings["rollout_eps"], horizon=settings["horizon"], seed=seed, cue=c,
        )  # fmt: skip
        if np.unique(g).size < 2:
            skipped.append({"episode": cue.episode, "step": cue.step, "return": float(g[0])})
            continue
        res = probe_cue(
            learner, cue, g, bins=settings["bins"], noise=settings["noise"],
            huber_scale=settings["scale"], splits=settings["splits"], seed=seed,
            response=settings["response"], protocol=settings["protocol"],
        )  # fmt: skip
        res["truncated_fraction"] = cut
        res["gamma"] = gamma
        results.append(res)
    return {
        "source": f"in_task:{learner.name}",
        "summary": summarise(results),
        "calibration": cue_calibration(results),
        "cues": results,
        "skipped_deterministic_cues": skipped,
    }


#: bytes per (unit, rollout) of one cue state's analysis: the responses [N, M] (noise-free and
#: noisy, float64), the tidy table's four columns and the split halves' copies of it
BYTES_PER_UNIT_TRIAL = 128
#: a state kept from the evaluation episodes beside its observation: the env's snapshot
#: (gymnasium's deep copy, ALE's cloneState: kilobytes)
SNAPSHOT_BYTES = 16 << 10


def check_memory(
    learner: Any,
    cfg: Any,
    obs_shape: Sequence[int],
    *,
    episodes: int,
    max_steps: int,
    rollouts: int,
    parallel: int,
) -> None:
    """Refuse (ConfigError, one line) a probe whose estimated memory exceeds what this process
    may take, before any episode is played: the evaluation episodes' states with snapshots,
    ``parallel`` rollout envs (and no more than the resources' envs per CPU), and the largest
    cue state's analysis (units x rollouts). The rollouts' time is bounded by the CLI's
    maxima (``agent.cli.probe.MAX_COUNTS``)."""
    from ..core.limits import gib, memory_room
    from ..core.threads import allowed_cpus
    from ..learn.resources import ENV_BYTES, ENVS_PER_CPU

    family = str(cfg.env.family)
    cpus = allowed_cpus()
    per_cpu = ENVS_PER_CPU.get(family, ENVS_PER_CPU["control"])
    if parallel > per_cpu * cpus:
        raise ConfigError(
            f"parallel={parallel} rollout envs, more than {per_cpu} per CPU on the {cpus} "
            "CPU(s) this process may use; make it smaller"
        )
    obs_bytes = 4 * math.prod(obs_shape)
    parts = {
        "episode states": episodes * max_steps * (2 * obs_bytes + SNAPSHOT_BYTES),
        "rollout envs": parallel * ENV_BYTES.get(family, ENV_BYTES["control"]),
        "one cue's analysis": BYTES_PER_UNIT_TRIAL * int(learner.cfg.num_units) * rollouts,
    }
    needed = sum(parts.values())
    room, source = memory_room()
    if room is not None and needed > room:
        shown = ", ".join(f"{k} {gib(v)}" for k, v in parts.items())
        raise ConfigError(
            f"this probe needs about {gib(needed)} of memory ({shown}), more than the "
            f"{gib(room)} this process may take ({source}); make episodes, parallel or "
            "rollouts smaller"
        )


def _cues_and_pool(
    learner: Any,
    cfg: Any,
    cues: int,
    cue_list: Sequence[tuple[int, int]] | None,
    episodes: int,
    max_steps: int,
    parallel: int,
    seed: int,
    rollouts: int,
) -> tuple[list[CueState], list[CueState], list[CloneableEnv]]:
    """Step 1 of the module docstring: the evaluation episodes' states, the cue states chosen
    among them, and ``parallel`` cloneable envs for the rollouts (the first one played); the
    memory all this and ``rollouts`` per cue take is checked first (:func:`check_memory`)."""
    env = make_cloneable_env(cfg.env, seed=seed)
    try:
        check_memory(learner, cfg, env.observation_shape, episodes=episodes,
                     max_steps=max_steps, rollouts=rollouts, parallel=parallel)  # fmt: skip
    except ConfigError:
        env.close()
        raise
    states = episode_states(learner, env, episodes=episodes, epsilon=float(cfg.agent.eps_eval),
                            max_steps=max_steps, seed=seed)  # fmt: skip
    chosen = choose_cues(states, cues, given=cue_list)
    pool = [env] + [make_cloneable_env(cfg.env, seed=seed + 1 + k) for k in range(parallel - 1)]
    return states, chosen, pool


def default_horizon(gamma: float) -> int:
    """Rollout steps after which γᵗ < 10⁻³ (5,000 at most)."""
    return 5_000 if gamma >= 1 else min(5_000, math.ceil(math.log(1e-3) / math.log(gamma)))


def cue_conditions(
    learner: Any,
    cfg: Any,
    *,
    models: Sequence[str] = ("gradient",),
    cues: int = StudySettings.cues,
    episodes: int = 3,
    rollouts: int = RECORDED_TRIALS,
    bins: int = 7,
    parallel: int = 16,
    max_steps: int = 2_000,
    seed: int = 0,
) -> dict[str, Any]:
    """Noise-free unit responses at a run's own cue states, for the detection study
    (agent/probes/detection.py): steps 1-3 of the module docstring, greedy rollouts. Returns
    ``{"outcomes": {model: [CueOutcomes per cue]}, "cues_chosen", "cues_skipped"}``; a cue
    state whose returns fill fewer than ``MIN_BINS`` bins (too few distinct returns for a
    reversal point between magnitudes) is skipped and counted. Returns with ties fill fewer
    than ``bins`` equal-count bins (:func:`bin_outcomes`); the study then shares the
    recorded trials over the bins there are."""
    gamma = float(cfg.agent.gamma)
    _, chosen, pool = _cues_and_pool(
        learner, cfg, cues, None, episodes, max_steps, parallel, seed, rollouts
    )
    outcomes: dict[str, list[CueOutcomes]] = {m: [] for m in models}
    skipped = 0
    try:
        for c, cue in enumerate(chosen):
            x = torch.as_tensor(cue.observation[None], device=learner.device)
            action = int(learner.q_values(learner.online, x).argmax())
            g, _ = sample_returns(learner, pool, cue.snapshot, action, rollouts=rollouts,
                                  gamma=gamma, horizon=default_horizon(gamma), seed=seed,
                                  cue=c)  # fmt: skip
            if bin_outcomes(g, bins)[1].size < MIN_BINS:
                skipped += 1
                continue
            for m in models:
                outcomes[m].append(cue_outcomes(learner, cue.observation, g, bins=bins,
                                                response=m, decompose=True))  # fmt: skip
    finally:
        for e in pool:
            e.close()
    return {"outcomes": outcomes, "cues_chosen": len(chosen), "cues_skipped": skipped}


def probe_in_task(
    learner: Any,
    cfg: Any,
    *,
    baseline: Any | None = None,
    cues: int = PROBE_CUES,
    cue_list: Sequence[tuple[int, int]] | None = None,
    episodes: int = 3,
    rollouts: int = RECORDED_TRIALS,
    rollout_eps: float = 0.0,
    horizon: int | None = None,
    bins: int = 7,
    noise: float | str | None = None,
    scale: float | str | None = "auto",
    splits: int | None = None,
    response: str = "gradient",
    protocol: str = "all",
    parallel: int = 16,
    max_steps: int = 2_000,
    seed: int = 0,
) -> dict[str, Any]:
    """probe.json of the in-task protocol (module docstring) for ``learner`` and, at the same
    cue states, ``baseline`` (a classical learner on the same env). ``horizon`` defaults to
    the steps after which γᵗ < 10⁻³ (capped at 5,000)."""
    if protocol not in PROTOCOLS:
        raise ConfigError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    response_model(response)  # a ConfigError naming the models otherwise
    if protocol == "recorded":
        bins, rollouts = 7, max(rollouts, RECORDED_TRIALS)
    if rollouts < 2 * bins or bins < 3:
        raise ConfigError(f"rollouts ({rollouts}) must be at least twice bins ({bins}), bins >= 3")
    if not 0.0 <= rollout_eps <= 1.0:
        raise ConfigError(f"rollout_eps must be in [0, 1], got {rollout_eps}")
    gamma = float(cfg.agent.gamma)
    if horizon is None:
        horizon = default_horizon(gamma)
    settings = {
        "rollouts": int(rollouts), "rollout_eps": float(rollout_eps), "horizon": int(horizon),
        "bins": int(bins), "scale": scale, "response": response, "protocol": protocol,
        "noise": parse_noise(cfg.probe.response_noise if noise is None else noise, "noise"),
        "splits": int(cfg.probe.splits if splits is None else splits),
        "episodes": int(episodes), "cues": int(cues), "gamma": gamma,
    }  # fmt: skip
    states, chosen, pool = _cues_and_pool(
        learner, cfg, cues, cue_list, episodes, max_steps, parallel, seed, rollouts
    )
    result = _probe_agent(learner, chosen, pool, settings, seed=seed)
    result.update(
        jsonable(
            {
                "protocol": "in-task",
                "env_id": family_of(cfg.env).display_id(cfg.env),
                "settings": settings,
                "cue_selection": (
                    "user-given (episode:step)"
                    if cue_list
                    else f"top decile of the head's unit SD over {len(states)} states of "
                    f"{episodes} evaluation episodes, {len(chosen)} evenly spaced by rank"
                ),  # fmt: skip
                "rollout_policy": (
                    "greedy"
                    if rollout_eps == 0
                    else f"epsilon-greedy, epsilon = {rollout_eps} (policy noise: the return "
                    "distribution sampled is this policy's, not the greedy one's)"
                ),  # fmt: skip
                "note": (
                    "asymmetries estimated from gradient responses are the configured tau plus "
                    "noise; reversal points and their relation to the rollouts' return "
                    "distribution are the outcome of training"
                ),
            }
        )
    )
    if baseline is not None:
        result["baseline"] = _probe_agent(baseline, chosen, pool, settings, seed=seed)
    for e in pool:
        e.close()
    return result
