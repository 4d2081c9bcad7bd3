"""The supervised Monte-Carlo control (issue 36 item 2): the same network and head as a
trained agent, fitted from scratch to Monte-Carlo returns instead of TD targets.

1. **Episodes.** The trained agent plays ``episodes`` episodes of its own task (the training
   env: training rewards, clipped where training clipped them, episodic lives where training
   ended episodes there) with its greedy policy (``epsilon`` > 0 adds exploration). The
   episodes are split evenly over the envs stepped together, each env playing its own quota,
   so that short episodes are not over-represented.
2. **Returns.** Every visited state x_k with the action a_k taken there gets
   G_k = Σ_{j=0}^{H−1} γ^j r_{k+j}, to termination, or over ``horizon`` = H steps; states whose
   return is cut short (an episode truncated by a time limit less than H steps later) are
   left out and counted. γ is the agent's ``agent.gamma``.
3. **Regression.** A fresh network built exactly as the agent's (``Learner`` from the
   checkpoint's config: torso, head, τ, initialisation seeded by ``seed``) is trained by
   minibatch Adam (the agent's learning rate and gradient clipping unless ``lr`` is given) on
   the head's own per-unit loss (``Algorithm.unit_loss``: the expectile loss for ER-DQN, the
   quantile Huber loss for QR-DQN, the mean-squared loss for the classical population) of
   the units at a_k against the single sample G_k, for ``epochs`` passes over the states.
   There is no bootstrapping and no target network: each unit's minimiser is the statistic at
   its τ of the return distribution from the states the network cannot tell apart.

The result is a checkpoint (``model.safetensors`` and the source's config, so
``load_agent``, ``dopa-probe checkpoint=`` and :func:`agent.probes.agent_cells.read_units`
read it like the agent) with ``mc_control.json`` beside it saying how it was made.

What it builds in: the returns are those of the agent's policy, not an optimal one (the
control asks what the network can represent of *this* policy's returns); a head whose loss has
a threshold (QR-DQN's κ) has the same threshold here; heads without a fixed per-unit loss (C51,
IQN) have no such control.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import envs
from ..algos.base import taken_values
from ..core.config import to_container
from ..core.errors import ConfigError
from ..store.checkpoint import save_checkpoint
from .evaluate import load_agent
from .learner import Learner

MC_CONTROL_JSON = "mc_control.json"


@dataclass(frozen=True)
class MCControlSettings:
    """How the control is made (module docstring); validated by :meth:`check`."""

    episodes: int = 100  # episodes of the agent's policy
    epochs: int = 30  # passes over the visited states
    batch_size: int = 256
    lr: float | None = None  # None: the agent's agent.lr
    horizon: int | None = None  # None: returns to termination
    epsilon: float = 0.0  # the policy's exploration (0: greedy)
    # episodes' random stream and the fresh network's initialisation (None: the run's seed)
    seed: int | None = None

    def check(self) -> None:
        for key in ("episodes", "epochs", "batch_size"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{key} must be a positive integer, got {value!r}")
        if self.horizon is not None and (
            isinstance(self.horizon, bool) or not isinstance(self.horizon, int) or self.horizon < 1
        ):
            raise ConfigError(f"horizon must be a positive integer or none, got {self.horizon!r}")
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"lr must be positive, got {self.lr}")
        if not (math.isfinite(self.epsilon) and 0.0 <= self.epsilon <= 1.0):
            raise ConfigError(f"epsilon must be in [0, 1], got {self.epsilon}")
        if self.seed is not None and not 0 <= self.seed < 2**32:
            raise ConfigError(f"seed must be an integer in [0, 2**32), got {self.seed}")


@dataclass
class Returns:
    """The visited states with their actions and Monte-Carlo returns."""

    obs: np.ndarray  # [S, *obs_shape]
    actions: np.ndarray  # [S] int64
    returns: np.ndarray  # [S] float64
    episodes: int
    dropped: int  # states whose return a truncation cut short
    episode_returns: list[float]  # undiscounted, training rewards


def discounted_returns(
    rewards: np.ndarray, gamma: float, horizon: int | None, terminated: bool
) -> tuple[np.ndarray, int]:
    """G_k over at most ``horizon`` steps for each step k of one episode's ``rewards`` [L],
    and how many leading steps have a complete return (all of them if the episode
    ``terminated``; else those at least ``horizon`` steps before its end, none without one)."""
    length = rewards.size
    h = length if horizon is None else min(horizon, length)
    discounts = gamma ** np.arange(h)
    padded = np.concatenate([rewards.astype(np.float64), np.zeros(h)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, h)[:length]
    g = windows @ discounts
    if terminated:
        return g, length
    return g, max(0, length - horizon) if horizon is not None else 0


def collect_returns(
    learner: Learner,
    cfg: Any,
    settings: MCControlSettings,
    on_episode: Callable[[int], None] | None = None,
) -> Returns:
    """Play ``settings.episodes`` episodes of ``cfg``'s training env with ``learner``'s
    policy and compute every visited state's return (module docstring, steps 1–2)."""
    gamma = float(cfg.agent.gamma)
    num_envs = min(settings.episodes, int(cfg.env.num_envs))
    quota = np.full(num_envs, settings.episodes // num_envs)
    quota[: settings.episodes % num_envs] += 1
    env = envs.make_env(cfg.env, num_envs=num_envs, evaluation=False)
    seed = int(cfg.seed) if settings.seed is None else settings.seed
    generator = torch.Generator(device=learner.device)
    generator.manual_seed(seed)
    obs_out, act_out, ret_out, ep_returns = [], [], [], []
    dropped, done = 0, np.zeros(num_envs, dtype=np.int64)
    trace_obs: list[list[np.ndarray]] = [[] for _ in range(num_envs)]
    trace_act: list[list[int]] = [[] for _ in range(num_envs)]
    trace_rew: list[list[float]] = [[] for _ in range(num_envs)]
    try:
        obs = env.reset(seed=seed)
        while np.any(done < quota):
            x = torch.as_tensor(obs, device=learner.device)
            actions = learner.act(x, settings.epsilon, generator).cpu().numpy()
            step = env.step(actions)
            for i in np.flatnonzero(done < quota):
                trace_obs[i].append(obs[i].copy())
                trace_act[i].append(int(actions[i]))
                trace_rew[i].append(float(step.reward[i]))
                if not (step.terminated[i] or step.truncated[i]):
                    continue
                rewards = np.asarray(trace_rew[i])
                g, keep = discounted_returns(
                    rewards, gamma, settings.horizon, bool(step.terminated[i])
                )
                obs_out.extend(trace_obs[i][:keep])
                act_out.extend(trace_act[i][:keep])
                ret_out.append(g[:keep])
                dropped += rewards.size - keep
                ep_returns.append(float(rewards.sum()))
                trace_obs[i], trace_act[i], trace_rew[i] = [], [], []
                done[i] += 1
                if on_episode is not None:
                    on_episode(int(done.sum()))
            obs = step.obs
    finally:
        env.close()
    if not obs_out:
        raise ConfigError(
            f"no state of the {settings.episodes} episodes has a complete return (every "
            "episode was truncated): give a horizon= shorter than the episodes"
        )
    return Returns(
        obs=np.stack(obs_out),
        actions=np.asarray(act_out, dtype=np.int64),
        returns=np.concatenate(ret_out),
        episodes=settings.episodes,
        dropped=dropped,
        episode_returns=ep_returns,
    )


def fit_control(
    cfg: Any, data: Returns, settings: MCControlSettings, device: torch.device | str
) -> tuple[Learner, list[float]]:
    """A fresh learner of ``cfg``'s agent regressed on ``data`` (module docstring, step 3);
    returns it and the mean loss of each epoch."""
    family = envs.family_of(cfg.env)
    obs_shape = tuple(data.obs.shape[1:])
    env = envs.make_env(cfg.env, num_envs=1, evaluation=True)
    num_actions = env.num_actions
    env.close()
    seed = int(cfg.seed) if settings.seed is None else settings.seed
    learner = Learner(
        cfg.agent, obs_shape, num_actions, device, seed=seed, default_torso=family.torso
    )
    if not learner.algo.measurable:
        raise ConfigError(
            f"agent={cfg.agent.name} has no fixed per-unit loss (sampled τ or atoms): no "
            "Monte-Carlo control for it"
        )
    if settings.lr is not None:
        for group in learner.optimizer.param_groups:
            group["lr"] = settings.lr
    obs = torch.as_tensor(data.obs, device=learner.device)
    actions = torch.as_tensor(data.actions, device=learner.device)
    returns = torch.as_tensor(data.returns, dtype=torch.float32, device=learner.device)
    rng = torch.Generator().manual_seed(seed)
    n = returns.numel()
    losses = []
    learner.online.train()
    for _ in range(settings.epochs):
        order = torch.randperm(n, generator=rng).to(learner.device)
        total = torch.zeros((), device=learner.device)
        for start in range(0, n, settings.batch_size):
            idx = order[start : start + settings.batch_size]
            pred = taken_values(learner.online(obs[idx]), actions[idx])
            loss = learner.algo.unit_loss(pred, returns[idx, None], learner.taus).mean()
            learner.step_optimizer(loss, {})
            total += loss.detach() * idx.numel()
        losses.append(float(total) / n)
    learner.online.eval()
    learner.target.load_state_dict(learner.online.state_dict())
    return learner, losses


def mc_control(
    checkpoint: str | Path,
    out: str | Path,
    settings: MCControlSettings,
    device: str | torch.device = "cpu",
    on_episode: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Make the Monte-Carlo control of ``checkpoint`` in the run dir ``out`` (its checkpoint
    and ``mc_control.json``); returns what ``mc_control.json`` holds."""
    settings.check()
    start = time.perf_counter()
    source, cfg, folder = load_agent(checkpoint, device)
    if settings.seed is None:
        settings = replace(settings, seed=int(cfg.seed))
    data = collect_returns(source, cfg, settings, on_episode)
    learner, losses = fit_control(cfg, data, settings, device)
    out = Path(out)
    state = {
        "config": to_container(cfg),
        "algo": str(cfg.agent.name),
        "env_id": envs.family_of(cfg.env).display_id(cfg.env),
        "mc_control": {"source": str(folder), **asdict(settings)},
    }
    saved = save_checkpoint(out, len(losses), {"model": learner.online.state_dict()}, state)
    g = data.returns
    record = {
        "note": "supervised Monte-Carlo control: the agent's network and head fitted from "
        "scratch by its per-unit loss to the discounted returns of its own policy (no "
        "bootstrapping)",
        "source": str(folder),
        "checkpoint": str(saved),
        "algo": str(cfg.agent.name),
        "gamma": float(cfg.agent.gamma),
        "settings": asdict(settings),
        "states": int(g.size),
        "states_dropped": int(data.dropped),
        "return_mean": float(g.mean()),
        "return_sd": float(g.std()),
        "episode_return_mean": float(np.mean(data.episode_returns)),
        "epoch_losses": losses,
        "wall_s": time.perf_counter() - start,
    }
    with open(out / MC_CONTROL_JSON, "w") as f:
        json.dump(record, f, indent=1)
    return record
