"""The Python API: open a trained agent, act with it, read its value units, evaluate it.

>>> from dopa_rl.api import load, evaluate        # doctest: +SKIP
>>> agent = load("runs/…/RUN_DIR")                # a run dir or one checkpoint folder
>>> agent = load("zoo:cartpole/qrdqn")            # or a trained agent of the zoo (dopa-zoo)
>>> agent.predict(obs)                            # one observation → an int action
>>> agent.predict(batch_of_obs)                   # [B, *obs_shape] → int64 actions [B]
>>> agent.units(obs)                              # the greedy action's unit values and their τ
>>> evaluate("runs/…/RUN_DIR", episodes=10)       # like dopa-evaluate: eval.json in ./
>>> agent.evaluate(episodes=10)                   # the same for a loaded agent

Everything here is what the command lines use (``agent.learn.evaluate``,
``agent.loop.unit_values``); no new behaviour. A population root (``train.population=S``) is
accepted by :func:`evaluate` (every member, one ``eval.json`` each); :func:`load` opens one run
and names the members when given a root.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .core.errors import ConfigError
from .store.population_root import complete_members, population_members

__all__ = ["Agent", "Units", "evaluate", "load"]


@dataclass(frozen=True)
class Units:
    """The head's units at some observations, for each observation's greedy action.

    ``values`` [N] for one observation or [B, N] for a batch, in reward units; ``taus`` [N]
    their asymmetries τ in [0, 1] (quantile levels, expectile levels, or 0.5 for the means of a
    classical population); ``representation``: ``quantile``, ``expectile`` or ``mean``."""

    values: np.ndarray
    taus: np.ndarray
    representation: str


class Agent:
    """A trained agent: its online network, config and where it was loaded from.

    ``predict`` acts greedily (ε = 0) unless ``epsilon`` is given; random draws for ε come from
    the agent's own generator (``seed``), so predictions are reproducible."""

    def __init__(
        self,
        learner: Any,
        config: Any,
        checkpoint: Path,
        observation_shape: tuple[int, ...],
        obs_dtype: np.dtype,
    ) -> None:
        self.learner = learner
        self.config = config
        self.checkpoint = checkpoint
        self.observation_shape = tuple(observation_shape)
        self.num_actions: int = int(learner.num_actions)
        self.obs_dtype = np.dtype(obs_dtype)
        self.generator = torch.Generator(device=learner.device)
        self.generator.manual_seed(0)

    @property
    def algo(self) -> str:
        return str(self.config.agent.name)

    @property
    def device(self) -> torch.device:
        return torch.device(self.learner.device)

    def __repr__(self) -> str:
        from .envs import family_of

        env = family_of(self.config.env).display_id(self.config.env)
        return (
            f"Agent(algo={self.algo!r}, env={env!r}, "
            f"observation_shape={self.observation_shape}, num_actions={self.num_actions}, "
            f"checkpoint='{self.checkpoint}')"
        )

    def seed(self, seed: int) -> None:
        """Reseed the generator of ε draws: an integer in [0, 2**31 - 1], like every seed of
        this library (``check_seed``; -1 is refused, not wrapped around)."""
        from .core.config import check_seed

        check_seed(int(seed) if isinstance(seed, np.integer) else seed)
        self.generator.manual_seed(int(seed))

    def _batch(self, obs: Any) -> tuple[torch.Tensor, bool]:
        """``obs`` as a [B, *shape] tensor on the agent's device, and whether it was one."""
        x = np.asarray(obs)
        if x.shape == self.observation_shape:
            single = True
            x = x[None]
        elif x.shape[1:] == self.observation_shape:
            single = False
        else:
            raise ConfigError(
                f"observation of shape {x.shape} fits neither one observation "
                f"{self.observation_shape} nor a batch [B, *{self.observation_shape}]"
            )
        with np.errstate(over="ignore"):  # 1e300 as float32 is inf: refused just below
            cast = x.astype(self.obs_dtype, copy=False)
        for values in (x, cast):  # the network's action for NaN or inf would be meaningless
            if values.dtype.kind in "fc" and not np.isfinite(values).all():
                bad = int(values.size - np.count_nonzero(np.isfinite(values)))
                kind = "" if values is x else f" as {self.obs_dtype}"
                raise ConfigError(
                    f"observation holds {bad} NaN or infinite value(s){kind} of {values.size}; "
                    "the agent acts only on finite observations"
                )
        return torch.as_tensor(cast, device=self.device), single

    def predict(self, obs: Any, epsilon: float = 0.0) -> Any:
        """The action for one observation (an ``int``) or for a batch (an int64 array [B])."""
        if not 0.0 <= epsilon <= 1.0:
            raise ConfigError(f"epsilon must be in [0, 1], got {epsilon}")
        x, single = self._batch(obs)
        actions = self.learner.act(x, epsilon, self.generator).cpu().numpy().astype(np.int64)
        return int(actions[0]) if single else actions

    def q_values(self, obs: Any) -> np.ndarray:
        """Q(x, ·): the mean return of each action, [A] or [B, A]."""
        x, single = self._batch(obs)
        with torch.no_grad():
            q = self.learner.q_values(self.learner.online, x, self.generator).cpu().numpy()
        return q[0] if single else q

    def units(self, obs: Any) -> Units:
        """The greedy action's unit values as the algorithm reads them out, with their τ."""
        from .loop.unit_values import greedy_units

        x, single = self._batch(obs)
        values, taus, representation = greedy_units(self.learner, x.cpu().numpy())
        return Units(values[0] if single else values, taus, representation)

    def evaluate(
        self, episodes: int = 10, out: str | Path | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        """:func:`evaluate` of this agent's checkpoint on its own device (``eval.json`` in
        ``out``, the current folder by default; the keyword arguments are its own)."""
        kwargs.setdefault("device", str(self.device))
        return evaluate(self.checkpoint, episodes=episodes, out=out, **kwargs)


def _one_run(path: str | Path) -> Path:
    """``path`` itself, unless it is a population root: then an error naming its members."""
    members = population_members(path)
    if members:
        shown = ", ".join(m.name for m in members[:4]) + (", …" if len(members) > 4 else "")
        raise ConfigError(
            f"'{path}' is a population of {len(members)} members ({shown}); "
            f"load one of them, e.g. load('{members[0]}')"
        )
    return Path(path)


def load(run_or_checkpoint: str | Path, device: str = "cpu") -> Agent:
    """Open a run dir (its newest checkpoint), one checkpoint folder, or a zoo agent by name
    (``zoo:cartpole/qrdqn``; ``dopa-zoo`` lists them).

    ``device``: ``cpu`` (default), ``cuda``, ``cuda:N`` or ``auto``."""
    from .core.config import check_device
    from .core.device import resolve_device
    from .envs import make_env
    from .learn.evaluate import load_agent

    check_device(device)
    learner, cfg, folder = load_agent(_one_run(run_or_checkpoint), resolve_device(device))
    env = make_env(cfg.env, num_envs=1, evaluation=True)
    shape, obs_dtype = tuple(env.observation_shape), env.observation_dtype
    env.close()
    return Agent(learner, cfg, folder, shape, obs_dtype)


def evaluate(
    run: str | Path,
    episodes: int = 10,
    out: str | Path | None = None,
    *,
    epsilon: float | None = None,
    seed: int | None = None,
    video: bool = False,
    device: str = "auto",
    max_episode_steps: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Evaluate like ``dopa-evaluate``: ``eval.json`` (and ``video.mp4``) in ``out``, the current
    folder by default. Returns the result (``eval_json``: where it was written). The keyword
    arguments are ``dopa-evaluate``'s keys (``seed=None``: the run's evaluation seed).

    A population root evaluates every member into ``out/<member folder>/eval.json`` and
    returns ``{"members": [result, …], "return_median": …}``; ``out=RUN`` puts each member's
    ``eval.json`` in its own folder, where ``dopa-aggregate score=posthoc`` reads it."""
    from .learn.evaluate import evaluate as evaluate_checkpoint

    target = Path(out) if out is not None else Path(os.getcwd())
    kwargs: dict[str, Any] = {
        "episodes": episodes,
        "epsilon": epsilon,
        "seed": seed,
        "video": video,
        "device": device,
        "max_episode_steps": max_episode_steps,
        "progress": progress,
    }
    members = complete_members(run)  # a member gone is refused, not left out of the median
    if not members:
        return evaluate_checkpoint(run, out=target, **kwargs)
    results = []
    for member in members:
        # with out=RUN each member's eval.json lands in its own folder
        where = member if target.resolve() == Path(run).resolve() else target / member.name
        results.append(evaluate_checkpoint(member, out=where, **kwargs))
    means = [r["return_mean"] for r in results]
    return {
        "population": str(run),
        "members": results,
        "return_median": float(np.median(means)),
        "return_min": float(np.min(means)),
        "return_max": float(np.max(means)),
    }
