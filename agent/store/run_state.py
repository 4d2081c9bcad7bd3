"""A training run's state in a checkpoint: its parts listed once (``PARTS``), each with how it
is saved, how its saved form is checked and how it is restored, side by side.

A checkpoint (format: :mod:`agent.store.checkpoint`) holds tensors by file stem and one
``state.json``. Each :class:`Part` writes its share of both, checks that share before anything
is changed (types, ranges, and the sizes that must fit this run: one ``CheckpointError`` line
naming the field, never a ``KeyError`` deep in a restore), and loads it into the live objects
(:class:`RunObjects`). Saving runs every part's ``save``; restoring runs every ``check``, then
every ``restore``, in the order listed. Adding a field to a run's state is one ``Part`` here
(``tests/test_checkpoint.py`` adds a toy one).

Which checkpoint to continue from and what a resumed config may change:
:mod:`agent.store.resume`. The field checkers: :mod:`agent.store.schema`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.errors import CheckpointError
from .checkpoint import load_checkpoint, save_checkpoint
from .resume import apply_optimizer_config, reconcile_config
from .schema import (
    COUNTER_KEYS,
    OPTIONAL_COUNTER_KEYS,
    Checker,
    check_optimizer_meta,
)

log = logging.getLogger("agent")

Tensors = dict[str, dict[str, torch.Tensor]]


@dataclass
class RunObjects:
    """The live objects that hold a run's state (duck-typed: a ``VecEnv``, a ``Learner`` or a
    population member, a ``Replay``). ``counters``: the loop's saved counters (filled on
    restore); ``with_replay``: whether this save holds the replay; ``restored_obs``: the
    observation the restored run acts on next."""

    cfg: Any
    env: Any
    learner: Any
    replay: Any
    counters: dict[str, Any]
    with_replay: bool = True
    restored_obs: np.ndarray | None = field(default=None, repr=False)


class Part:
    """One part of a run's state: ``save`` writes it into ``tensors`` and ``state``; ``check``
    raises CheckpointError unless the saved form fits ``objs``; ``restore`` loads it."""

    name = ""

    def save(self, objs: RunObjects, tensors: Tensors, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def check(self, c: Checker, state: dict[str, Any], tensors: Tensors, objs: RunObjects) -> None:
        raise NotImplementedError

    def restore(self, objs: RunObjects, tensors: Tensors, state: dict[str, Any]) -> None:
        raise NotImplementedError


class Identity(Part):
    """Which agent on which env, with what config (config changes: ``reconcile_config``)."""

    name = "identity"

    def save(self, objs: RunObjects, tensors: Tensors, state: dict[str, Any]) -> None:
        from ..core.config import to_container

        state["algo"] = objs.cfg.agent.name
        state["env_id"] = objs.env.env_id
        state["config"] = to_container(objs.cfg)

    def check(self, c: Checker, state: dict[str, Any], tensors: Tensors, objs: RunObjects) -> None:
        for key in ("algo", "env_id"):
            if not isinstance(state.get(key), str):
                c.fail(key, "a string", state.get(key))
        c.dict(state.get("config"), "config")
        c.int(state.get("step"), "step")

    def restore(self, objs: RunObjects, tensors: Tensors, state: dict[str, Any]) -> None:
        pass  # checked before anything else: see restore_run_state


class Counters(Part):
    """The loop's counters (``TrainState`` fields up to ``last_eval``)."""

    name = "counters"

    def save(self, objs: RunObjects, tensors: Tensors, state: dict[str, Any]) -> None:
        state["counters"] = dict(objs.counters)

    def check(self, c: Checker, state: dict[str, Any], tensors: Tensors, objs: RunObjects) -> None:
        counters = c.dict(state.get("counters"), "counters")
        required = [k for k in counters if k not in OPTIONAL_COUNTER_KEYS]
        if sorted(required) != sorted(COUNTER_KEYS):
            c.fail("counters", f"an object with keys {', '.join(COUNTER_KEYS)}", sorted(counters))
        env_steps = c.int(counters["env_steps"], "counters.env_steps")
        if env_steps != state["step"]:
            c.fail("counters.env_steps", f"the checkpoint step {state['step']}", env_steps)
        c.int(counters["episodes"], "counters.episodes")
        c.float(counters["wall_s"], "counters.wall_s", lo=0.0)
        if counters["solved_at_env_step"] is not None:
            c.int(counters["solved_at_env_step"], "counters.solved_at_env_step", hi=env_steps)
        c.float(counters["solved_wall_s"], "counters.solved_wall_s", none=True, lo=0.0)
        if counters["last_eval"] is not None:
            ev = c.dict(counters["last_eval"], "counters.last_eval")
            if sorted(ev) != ["env_step", "return_mean", "return_std"]:
                c.fail("counters.last_eval", "an object with env_step, return_mean, return_std", ev)
            c.int(ev["env_step"], "counters.last_eval.env_step", hi=env_steps)
            c.float(ev["return_mean"], "counters.last_eval.return_mean")
            c.float(ev["return_std"], "counters.last_eval.return_std", lo=0.0)
        refill = counters.get("refill_from")
        if refill is not None:  # [env step, updates] of a resume without replay
            if not isinstance(refill, list) or len(refill) != 2:
                c.fail("counters.refill_from", "[env step, updates]", refill)
            c.int(refill[0], "counters.refill_from[0]", hi=env_steps)
            c.int(refill[1], "counters.refill_from[1]")

    def restore(self, objs: RunObjects, tensors: Tensors, state: dict[str, Any]) -> None:
        objs.counters.update(state["counters"])


class LearnerState(Part):
    """Online and target networks, Adam's moments and hyperparameters, the update counter and
    the learner's generator (ε-greedy, IQN τ). The resuming config's lr and eps win."""

    name = "learner"
    STEMS = ("model", "target", "optimizer", "rng")

    def save(self, objs: RunObjects, tensors: Tensors, state: dict[str, Any]) -> None:
        for stem, values in objs.learner.state_tensors().items():
            tensors.setdefault(stem, {}).update(values)
        state["learner"] = objs.learner.state_meta()

    def check(self, c: Checker, state: dict[str, Any], tensors: Tensors, objs: RunObjects) -> None:
        missing = [s for s in self.STEMS if s not in tensors]
        if missing:
            raise CheckpointError(f"{c.where}: lists no {', '.join(missing)} tensors")
        if "learner_generator" not in tensors["rng"]:
            raise CheckpointError(f"{c.where}: rng tensors are incomplete")
        learner = c.dict(state.get("learner"), "learner")
        c.int(learner.get("updates"), "learner.updates")
        meta = c.dict(learner.get("optimizer"), "learner.optimizer")
        check_optimizer_meta(c, meta, objs.learner.optimizer)

    def restore(self, objs: RunObjects, tensors: Tensors, state: dict[str, Any]) -> None:
        objs.learner.load_state(tensors, state["learner"])
        apply_optimizer_config(objs.learner.optimizer, objs.cfg.agent)


class Replay(Part):
    """The replay buffer, when this checkpoint holds it (``checkpoint.replay``, ``replay_when``);
    a checkpoint without one resumes with an empty replay that refills."""

    name = "replay"

    def save(self, objs: RunObjects, tensors: Tensors, state: dict[str, Any]) -> None:
        if objs.with_replay:
            tensors["replay"] = objs.replay.state_tensors()
            state["replay"] = objs.replay.state_meta()

    def check(self, c: Checker, state: dict[str, Any], tensors: Tensors, objs: RunObjects) -> None:
        if "replay" not in tensors and "replay" not in state:
            return
        if "replay" not in tensors or "replay" not in state:
            raise CheckpointError(f"{c.where}: replay tensors and replay state must come together")
        meta = c.dict(state["replay"], "replay")
        rows = c.int(meta.get("rows"), "replay.rows")
        if rows != objs.replay.rows:
            c.fail("replay.rows", f"{objs.replay.rows} (this config's replay)", rows)
        c.int(meta.get("pos"), "replay.pos", hi=rows - 1)
        c.int(meta.get("size"), "replay.size", hi=rows)
        for key in ("total", "side_count", "frame_stack"):  # frame replay (Atari) only
            if key in meta:
                c.int(meta[key], f"replay.{key}")

    def restore(self, objs: RunObjects, tensors: Tensors, state: dict[str, Any]) -> None:
        if "replay" in tensors:
            objs.replay.load_state(tensors["replay"], state["replay"])
        else:  # checkpoint.replay=false, or replay_when=final and a periodic checkpoint
            log.warning(
                "checkpoint at step %d holds no replay: it refills from empty", state["step"]
            )


class TorchRng(Part):
    """The global torch CPU generator (what env-side torch draws and dropout would use)."""

    name = "torch_rng"

    def save(self, objs: RunObjects, tensors: Tensors, state: dict[str, Any]) -> None:
        tensors.setdefault("rng", {})["torch_cpu"] = torch.get_rng_state()

    def check(self, c: Checker, state: dict[str, Any], tensors: Tensors, objs: RunObjects) -> None:
        if "torch_cpu" not in tensors.get("rng", {}):
            raise CheckpointError(f"{c.where}: rng tensors are incomplete")

    def restore(self, objs: RunObjects, tensors: Tensors, state: dict[str, Any]) -> None:
        torch.set_rng_state(tensors["rng"]["torch_cpu"].cpu())


class EnvState(Part):
    """The training envs' snapshot (families whose state lives in Python: ``get_state``); the
    others (Atari: C++) restart their episodes on resume, the replay ending its episodes there
    (no n-step window across the restart). What a snapshot holds is its family's: the env
    checks it (``check_state``) and restores it; the one key shared by all is ``obs``."""

    name = "env_state"

    def save(self, objs: RunObjects, tensors: Tensors, state: dict[str, Any]) -> None:
        env_state = objs.env.get_state()
        if env_state is not None:
            state["env_state"] = env_state

    def check(self, c: Checker, state: dict[str, Any], tensors: Tensors, objs: RunObjects) -> None:
        if "env_state" not in state:
            return
        try:
            objs.env.check_state(state["env_state"])
        except ValueError as err:
            raise CheckpointError(f"{c.where}: {err}") from None

    def restore(self, objs: RunObjects, tensors: Tensors, state: dict[str, Any]) -> None:
        env, env_state = objs.env, state.get("env_state")
        if env_state is not None:
            env.set_state(env_state)
            objs.restored_obs = np.asarray(env_state["obs"], dtype=env.observation_dtype)
            return
        objs.replay.end_episodes()
        objs.restored_obs = env.reset(seed=objs.cfg.seed + state["step"])


#: A run's state, in the order it is checked and restored.
PARTS: tuple[Part, ...] = (Identity(), Counters(), LearnerState(), Replay(), TorchRng(), EnvState())


def save_run_state(run_dir: str | Path, step: int, objs: RunObjects, *, keep: int) -> None:
    """Write a checkpoint of every part at ``step`` (atomic; ``keep`` newest are kept)."""
    tensors: Tensors = {}
    state: dict[str, Any] = {}
    for part in PARTS:
        part.save(objs, tensors, state)
    save_checkpoint(run_dir, step, tensors, state, keep=keep)


def restore_run_state(source: str | Path, objs: RunObjects, device: torch.device) -> np.ndarray:
    """Load the checkpoint ``source`` into ``objs``; returns the observation to act on.

    Every check (agent/env identity, config changes, each part's schema) runs before any
    object is touched, and any failure is one CheckpointError or ConfigError line."""
    from ..core.config import to_container

    tensors, state, folder = load_checkpoint(source, device=device)
    cfg, env = objs.cfg, objs.env
    if state.get("algo") != cfg.agent.name or state.get("env_id") != env.env_id:
        raise CheckpointError(
            f"checkpoint '{folder}' is for agent={state.get('algo')} env={state.get('env_id')}, "
            f"but the config asks for agent={cfg.agent.name} env={env.env_id}"
        )
    if not isinstance(state.get("config"), dict):
        raise CheckpointError(f"checkpoint '{folder}/state.json' holds no config object")
    # config changes first: "you changed env.num_envs" says more than the replay's row count
    changes = reconcile_config(state["config"], to_container(cfg))
    checker = Checker(Path(folder))
    for part in PARTS:
        part.check(checker, state, tensors, objs)
    try:
        for part in PARTS:
            part.restore(objs, tensors, state)
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError, OverflowError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"checkpoint '{folder}' does not fit this config: {first[:200]}"
        ) from None
    log.info("resuming from %s at step %d", folder, state["step"])
    if changes:
        log.info("config changed on resume: %s", "; ".join(changes))
    assert objs.restored_obs is not None
    return objs.restored_obs
