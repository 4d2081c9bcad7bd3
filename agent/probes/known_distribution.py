"""The known-distribution control (issue 36 item 2): units against the exact return
distribution of ``dopa/KnownChain-v0`` (agent/envs/known_tasks.py) at every state.

At each state t of the chain the return G_t has a known finite distribution, so each unit's
target is exact (expectile units: the τ-expectile of G_t; quantile units: the τ-quantile;
mean units: the mean) and calibration (:mod:`agent.probes.calibration`: spread ratio c,
offset and unit errors in the SD of the returns pooled over the states) needs no rollouts.
Three kinds of units are read there:

- **tabular TD** (:func:`train_chain_td`): a table of N units per state, trained from
  sampled episodes. ``expectile``: expectile TD with imputation (ER-TD, Rowland et al. 2019):
  each unit's error at state t is r_t + γ·z_j − εᵢ(t) against samples z imputed from the
  expectiles at t + 1 (:func:`agent.nn.imputation.impute_samples`), with the expectile
  loss's asymmetric step |τᵢ − 1{u < 0}|·u; ``quantile``: quantile TD, the N quantiles at
  t + 1 used as equally weighted samples, step |τᵢ − 1{u < 0}|·sign(u). No network, no
  function approximation: what TD itself reaches at these states.
- **deep agents** (:func:`checkpoint_units`): the units of a checkpoint trained on the chain
  by the ordinary loop, read at each state's one-hot observation.
- **the supervised Monte-Carlo control** (agent/learn/mc_control.py): the same network and
  head fitted to Monte-Carlo returns, read like any checkpoint.

What it builds in: the states are the chain's D states (no cue selection), the targets are
for the discount the units were trained with, and the return scale is the pooled SD of the D
states' exact distributions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..core.errors import ConfigError
from ..envs.known_tasks import KNOWN_CHAIN_ID, KnownChain
from ..nn.imputation import ImputationPlan, impute_samples
from ..nn.networks import midpoint_taus
from .calibration import (
    StateUnits,
    group_calibration,
    over_seeds,
    seed_calibration,
    unit_targets,
)

#: tabular TD rules and the unit representation each learns
TD_RULES = {"expectile": "expectile", "quantile": "quantile"}


def chain_units(
    task: KnownChain, gamma: float, representation: str, taus: np.ndarray, values: np.ndarray
) -> StateUnits:
    """Units ``values`` [D, N] at the chain's D states against their exact targets."""
    taus = np.asarray(taus, dtype=np.float64)
    targets, means, sds = [], [], []
    for state in range(task.steps):
        v, p = task.return_distribution(state, gamma)
        targets.append(unit_targets(representation, taus, v, p))
        mean = float(v @ p)
        means.append(mean)
        sds.append(float(np.sqrt(((v - mean) ** 2) @ p)))
    return StateUnits(
        taus=taus,
        values=np.asarray(values, dtype=np.float64),
        targets=np.stack(targets),
        return_means=np.asarray(means),
        return_sds=np.asarray(sds),
    )


def train_chain_td(
    task: KnownChain,
    taus: Sequence[float] | np.ndarray,
    *,
    rule: str = "expectile",
    gamma: float = 0.9,
    alpha: float = 0.5,
    n_iters: int = 1500,
    batch: int = 16,
    average_last: float = 0.5,
    sync_every: int = 10,
    imputation: bool = True,
    seed: int = 0,
) -> np.ndarray:
    """Tabular distributional TD on the chain (module docstring) → values [D, N].

    Each iteration samples ``batch`` episodes (a reward at every step) and moves every
    state's units by the batch mean of their steps, at rate α/(1 + k/k0), k0 = 5 % of
    ``n_iters`` (large early to travel, small late to settle); the result is the mean of the
    last ``average_last`` of the iterates (Polyak–Ruppert). The quantile rule's α is relative
    to the span of the return at state 0 (sign(δ) has no scale). The bootstrap samples come
    from a target table refreshed every ``sync_every`` iterations (a DQN's target network), so
    the imputation runs once per refresh. ``imputation=False`` (expectile rule only) uses the
    expectiles themselves as samples, the naive rule whose upstream distributions collapse
    toward the mean (Rowland et al. 2019): the negative control."""
    if rule not in TD_RULES:
        raise ValueError(f"rule must be one of {sorted(TD_RULES)}, got {rule!r}")
    tau = torch.as_tensor(np.asarray(taus, dtype=np.float64))
    if tau.dim() != 1 or torch.any(tau <= 0) or torch.any(tau >= 1):
        raise ValueError("taus must be a list of levels strictly between 0 and 1")
    if n_iters < 1 or batch < 1 or sync_every < 1 or not 0 < average_last <= 1:
        raise ValueError("need n_iters >= 1, batch >= 1, sync_every >= 1 and 0 < average_last <= 1")
    d, n = task.steps, tau.numel()
    rng = np.random.default_rng(seed)
    # every episode's rewards up front: [n_iters, batch, D]
    rewards = np.empty((n_iters, batch, d))
    for t in range(d):
        v, p = task.reward_distribution(t)
        rewards[:, :, t] = v[rng.choice(v.size, size=(n_iters, batch), p=p)]
    rewards_t = torch.as_tensor(rewards)
    if rule == "quantile":
        span = task.return_distribution(0, gamma)[0]
        alpha = alpha * float(span.max() - span.min())
    plan = ImputationPlan.build(tau, n) if rule == "expectile" and imputation else None
    values = torch.zeros(d, n, dtype=torch.float64)
    average = torch.zeros_like(values)
    n_avg = max(1, round(n_iters * average_last))
    k0 = max(1.0, 0.05 * n_iters)
    up, down = tau, 1.0 - tau
    for k in range(n_iters):
        if k % sync_every == 0:  # the target table, as a DQN's target network
            nxt = values[1:] if plan is None else impute_samples(values[1:], tau, plan=plan)
            samples = torch.cat([nxt, torch.zeros(1, n, dtype=values.dtype)])  # terminal: G = 0
        target = rewards_t[k][:, :, None] + gamma * samples[None]  # [B, D, M]
        u = target[:, :, None, :] - values[None, :, :, None]  # [B, D, N, M]
        f = torch.sign(u) if rule == "quantile" else u
        slope = torch.where(u > 0, up[:, None], down[:, None]) * f
        values = values + alpha / (1.0 + k / k0) * slope.mean(dim=(0, 3))
        if k >= n_iters - n_avg:
            average += values
    return (average / n_avg).numpy()


def tabular_units(
    task: KnownChain, *, rule: str, gamma: float, num_units: int, seed: int, **train: Any
) -> StateUnits:
    """One seed of tabular TD with ``num_units`` units at midpoint τ, against the targets."""
    taus = midpoint_taus(num_units, torch.float64).numpy()
    values = train_chain_td(task, taus, rule=rule, gamma=gamma, seed=seed, **train)
    return chain_units(task, gamma, TD_RULES[rule], taus, values)


def chain_of(env_id: str, env_kwargs: Mapping[str, Any]) -> KnownChain:
    """The chain a run trained on (its ``env.id`` and ``env.kwargs``); ConfigError if it
    trained elsewhere."""
    if env_id.rpartition(":")[2] != KNOWN_CHAIN_ID:
        raise ConfigError(
            f"the known-distribution control needs a run on {KNOWN_CHAIN_ID} "
            f"(env=known_chain), got env.id={env_id}"
        )
    try:
        return KnownChain(**dict(env_kwargs))
    except (TypeError, ValueError) as err:
        raise ConfigError(f"env.kwargs of the run do not make a {KNOWN_CHAIN_ID}: {err}") from None


@dataclass(frozen=True)
class ChainRead:
    """A checkpoint's units at the chain's states: which agent, how trained, which seed."""

    agent: str
    step: int | None  # env steps of a TD agent's checkpoint; None for a Monte-Carlo control
    agent_config: dict[str, Any]  # its agent.* keys (a control: its source's)
    seed: int
    task: KnownChain
    gamma: float
    units: StateUnits
    source: str  # where the units were read (a checkpoint)

    def group(self, differing: Sequence[str] = ()) -> str:
        """``<agent>, <N> env steps`` or ``<agent> MC control``, then the ``differing`` agent
        keys with their values (what tells this run's settings from others of its agent)."""
        kind = (
            f"{self.agent} MC control"
            if self.step is None
            else f"{self.agent}, {self.step} env steps"
        )
        return ", ".join([kind, *(f"{k}={self.agent_config[k]}" for k in differing)])


def read_chain(
    learner: Any,
    *,
    task: KnownChain,
    gamma: float,
    agent: str,
    step: int | None,
    agent_config: dict[str, Any],
    seed: int,
    source: str,
) -> ChainRead:
    """``learner``'s units at the chain's states (each state's one-hot observation, the one
    action) against the exact targets for ``gamma``; the rest says what the units are."""
    from .agent_cells import read_units

    obs = np.stack([task.observation(t) for t in range(task.steps)])
    readouts = read_units(learner, obs, action=0)
    values = np.stack([r.values for r in readouts])
    units = chain_units(task, gamma, readouts[0].representation, readouts[0].taus, values)
    return ChainRead(agent, step, agent_config, seed, task, gamma, units, source)


def differing_agent_keys(reads: Sequence[ChainRead]) -> dict[str, list[str]]:
    """Per agent, the agent.* keys whose values differ between its runs."""
    keys: dict[str, list[str]] = {}
    for agent in {r.agent for r in reads}:
        configs = [r.agent_config for r in reads if r.agent == agent]
        keys[agent] = sorted(
            k for k in configs[0] if any(c.get(k) != configs[0][k] for c in configs[1:])
        )
    return keys


def per_state(units: StateUnits) -> list[dict[str, Any]]:
    """c and offset at each state of one seed (calibration's definitions)."""
    cal, scale = seed_calibration(units)
    return [
        {"state": t, "spread_ratio": _num(c), "offset": _num(o), "return_sd": float(sd),
         "scale": scale}
        for t, (c, o, sd) in enumerate(zip(cal.spread_ratio, cal.offset, units.return_sds,
                                           strict=True))
    ]  # fmt: skip


def group_report(seeds: Sequence[int], units: Sequence[StateUnits]) -> dict[str, Any]:
    """One group's calibration over seeds (:func:`calibration.group_calibration`) and, at
    every state, c and offset as the median over seeds with their interval."""
    rows = [per_state(u) for u in units]
    states = [
        {"state": t,
         "spread_ratio": over_seeds([_nan(r[t]["spread_ratio"]) for r in rows]),
         "offset": over_seeds([_nan(r[t]["offset"]) for r in rows])}
        for t in range(len(rows[0]))
    ]  # fmt: skip
    return {"seeds": [int(s) for s in seeds], "states": states,
            "calibration": group_calibration(seeds, units)}  # fmt: skip


#: the tabular TD groups of a report and their rules
TABULAR_GROUPS = {"tabular ER-TD (imputation)": "expectile", "tabular QR-TD": "quantile"}


def study(
    reads: Sequence[ChainRead],
    *,
    tabular_seeds: int = 3,
    num_units: int = 25,
    gamma: float | None = None,
) -> dict[str, Any]:
    """The known-distribution control's report: tabular TD (``tabular_seeds`` seeds of
    each rule, ``num_units`` units) and the units of ``reads`` (grouped by agent, TD at its
    env step or Monte-Carlo control), all on one chain and γ. Without reads the chain is the
    default one at ``gamma``; with them it is theirs (they must agree; ``gamma`` then must
    be None or theirs)."""
    if reads:
        task, run_gamma = reads[0].task, reads[0].gamma
        for r in reads:
            if task_record(r.task, r.gamma) != task_record(task, run_gamma):
                raise ConfigError(
                    f"'{r.source}' trained on another chain or discount than "
                    f"'{reads[0].source}': one report compares units on one task"
                )
        if gamma is not None and gamma != run_gamma:
            raise ConfigError(f"gamma={gamma}, but the runs trained with γ = {run_gamma}")
        gamma = run_gamma
    else:
        task = KnownChain()
    if gamma is None:
        raise ConfigError("gamma= is needed when no run is given")
    groups: dict[str, dict[str, Any]] = {}
    for name, rule in TABULAR_GROUPS.items():
        seeds = list(range(1, tabular_seeds + 1))
        units = [
            tabular_units(task, rule=rule, gamma=gamma, num_units=num_units, seed=s) for s in seeds
        ]
        groups[name] = group_report(seeds, units)
    differing = differing_agent_keys(reads)
    by_group: dict[str, list[ChainRead]] = {}
    for r in sorted(reads, key=lambda r: (r.agent, r.step is None, r.step or 0)):
        by_group.setdefault(r.group(differing[r.agent]), []).append(r)
    for name, members in by_group.items():
        groups[name] = group_report([r.seed for r in members], [r.units for r in members])
        groups[name]["checkpoints"] = [r.source for r in members]
    return {"note": __doc__.split("\n\n")[0] if __doc__ else "", "task": task_record(task, gamma),
            "tabular": {"units": num_units, "seeds": tabular_seeds}, "groups": groups}  # fmt: skip


def task_record(task: KnownChain, gamma: float) -> dict[str, Any]:
    """The chain, its discount and each state's exact return distribution."""
    dists = [task.return_distribution(t, gamma) for t in range(task.steps)]
    return {
        "env_id": KNOWN_CHAIN_ID,
        "steps": task.steps,
        "step_rewards": {"values": task.step_values.tolist(), "probs": task.step_probs.tolist()},
        "final_rewards": {"values": task.final_values.tolist(),
                          "probs": task.final_probs.tolist()},
        "gamma": gamma,
        "states": [{"state": t, "td_steps_to_end": task.steps - 1 - t, "atoms": int(v.size),
                    "mean": float(v @ p), "sd": float(np.sqrt(((v - v @ p) ** 2) @ p))}
                   for t, (v, p) in enumerate(dists)],
    }  # fmt: skip


def markdown(content: dict[str, Any]) -> str:
    """The report as a markdown table: per group and state, c and offset (median over seeds,
    the interval in brackets)."""
    task = content["task"]
    lines = [
        f"# Known-distribution control ({task['env_id']}, {task['steps']} states, "
        f"γ = {task['gamma']})",
        "",
        "Spread ratio c (SD of the units / SD of their exact targets) and offset (mean of the "
        "units − mean of the targets, in SDs of the returns pooled over the states) at each "
        "state, t TD steps from the end of the episode; median over seeds [interval: "
        "range over seeds with < 4 seeds, else a bootstrap 95 % interval].",
        "",
        "| group | seeds | state (steps to end) | return SD | c | offset |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, group in content["groups"].items():
        for st, exact in zip(group["states"], task["states"], strict=True):
            lines.append(
                f"| {name} | {len(group['seeds'])} | {st['state']} ({exact['td_steps_to_end']}) "
                f"| {exact['sd']:.3f} | {_interval(st['spread_ratio'])} "
                f"| {_interval(st['offset'])} |"
            )
    return "\n".join(lines) + "\n"


def figure(content: dict[str, Any]) -> Any:
    """c and offset against the states' depth (TD steps to the end of the episode), one line
    per group: the median over seeds with the interval as error bars (a matplotlib Figure)."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    task = content["task"]
    depth = [s["td_steps_to_end"] for s in task["states"]]
    fig = Figure(figsize=(11, 4.6))
    axes = fig.subplots(1, 2)
    colours = colormaps["tab20"]
    for k, (name, group) in enumerate(content["groups"].items()):
        for ax, key in zip(axes, ("spread_ratio", "offset"), strict=True):
            stats = [st[key] for st in group["states"]]
            if all(st["median"] is None for st in stats):
                continue
            med = np.array([_nan(st["median"]) for st in stats])
            lo = np.array([_nan(st["interval"][0]) for st in stats])
            hi = np.array([_nan(st["interval"][1]) for st in stats])
            ax.errorbar(np.array(depth) + 0.03 * (k - 5), med, yerr=[med - lo, hi - med],
                        marker="o", ms=3, capsize=2, color=colours(k % 20),
                        label=f"{name} ({len(group['seeds'])} seeds)")  # fmt: skip
    axes[0].axhline(1.0, color="k", lw=0.8, ls="--")
    axes[1].axhline(0.0, color="k", lw=0.8, ls="--")
    axes[0].set_ylabel("spread ratio c = SD(units) / SD(exact targets)")
    axes[1].set_ylabel("offset (mean units − mean targets) / pooled return SD")
    for ax in axes:
        ax.set_xlabel("state's depth: TD steps to the end of the episode (0 = bandit state)")
        ax.set_xticks(depth)
    axes[1].legend(fontsize=6, loc="best")
    fig.suptitle(
        f"Known-distribution control: {task['env_id']}, {task['steps']} states, "
        f"γ = {task['gamma']}; units against their exact targets at each state "
        "(median over seeds; bars: range over seeds, a bootstrap 95 % interval from 4 seeds)",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


def _interval(stat: dict[str, Any]) -> str:
    if stat["median"] is None:
        return "undefined"
    lo, hi = stat["interval"]
    return f"{stat['median']:.3f} [{lo:.3f}, {hi:.3f}]"


def _nan(x: float | None) -> float:
    return math.nan if x is None else x


def _num(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None
