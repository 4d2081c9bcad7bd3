"""Schema of a trainer checkpoint's ``state.json``, checked before any of it is used.

``load_checkpoint`` verifies hashes, which proves the files are the ones the writer vouched
for; it does not prove the writer was sane (a buggy tool or an adversary can re-sign anything).
``validate_train_state`` checks types, ranges and the lengths that must match this run's env,
replay and optimizer, so a crafted state ends in one ``CheckpointError`` line instead of a
``KeyError``/``IndexError``/``TypeError`` deep inside the restore. The env snapshot itself is
checked by the env (``GymVecEnv.set_state`` validates before it changes anything).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, NoReturn

import torch

from agent.core.errors import CheckpointError

COUNTER_KEYS = (
    "env_steps",
    "episodes",
    "wall_s",
    "solved_at_env_step",
    "solved_wall_s",
    "last_eval",
)
# counters that checkpoints written before they existed lack
OPTIONAL_COUNTER_KEYS = ("refill_from",)
REQUIRED_STEMS = ("model", "target", "optimizer", "rng")


class _Checker:
    def __init__(self, folder: Path) -> None:
        self.where = f"checkpoint '{folder}/state.json'"

    def fail(self, path: str, expected: str, value: Any) -> NoReturn:
        shown = repr(value)
        shown = shown if len(shown) <= 40 else f"a {type(value).__name__}"  # never dump content
        raise CheckpointError(f"{self.where}: {path} must be {expected}, got {shown}")

    def dict(self, value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(path, "an object", value)
        return value

    def int(self, value: Any, path: str, lo: int = 0, hi: int | None = None) -> int:
        if type(value) is not int or value < lo or (hi is not None and value > hi):
            rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
            self.fail(path, f"an integer {rng}", value)
        return value

    def float(self, value: Any, path: str, *, none: bool = False, lo: float | None = None) -> None:
        if value is None and none:
            return
        ok = type(value) in (int, float) and math.isfinite(value)
        if not ok or (lo is not None and value < lo):
            self.fail(path, "a finite number" + (f" >= {lo}" if lo is not None else ""), value)


# Adam flags that describe the device and kernel, not the optimiser's state: never saved, taken
# from the optimizer that loads a checkpoint (agent.learn.learner.optimizer_state)
OPTIMIZER_DEVICE_KEYS = ("capturable", "fused", "foreach", "differentiable")


def validate_train_state(
    state: dict[str, Any],
    tensors: dict[str, dict[str, torch.Tensor]],
    folder: Path,
    *,
    num_envs: int,
    replay_rows: int,
    optimizer: torch.optim.Optimizer,
) -> None:
    """Raise CheckpointError (one line, naming the field) unless ``state`` is a trainer state
    that fits a run with ``num_envs`` envs, a replay of ``replay_rows`` rows and ``optimizer``."""
    c = _Checker(folder)
    for key in ("algo", "env_id"):
        if not isinstance(state.get(key), str):
            c.fail(key, "a string", state.get(key))
    c.dict(state.get("config"), "config")
    step = c.int(state.get("step"), "step")
    missing = [s for s in REQUIRED_STEMS if s not in tensors]
    if missing:
        raise CheckpointError(f"{c.where}: lists no {', '.join(missing)} tensors")
    if "torch_cpu" not in tensors["rng"] or "learner_generator" not in tensors["rng"]:
        raise CheckpointError(f"{c.where}: rng tensors are incomplete")

    counters = c.dict(state.get("counters"), "counters")
    required = [k for k in counters if k not in OPTIONAL_COUNTER_KEYS]
    if sorted(required) != sorted(COUNTER_KEYS):
        c.fail("counters", f"an object with keys {', '.join(COUNTER_KEYS)}", sorted(counters))
    env_steps = c.int(counters["env_steps"], "counters.env_steps")
    if env_steps != step:
        c.fail("counters.env_steps", f"the checkpoint step {step}", env_steps)
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

    learner = c.dict(state.get("learner"), "learner")
    c.int(learner.get("updates"), "learner.updates")
    _check_optimizer(c, c.dict(learner.get("optimizer"), "learner.optimizer"), optimizer)

    if "replay" in tensors or "replay" in state:
        if "replay" not in tensors or "replay" not in state:
            raise CheckpointError(f"{c.where}: replay tensors and replay state must come together")
        meta = c.dict(state["replay"], "replay")
        rows = c.int(meta.get("rows"), "replay.rows")
        if rows != replay_rows:
            c.fail("replay.rows", f"{replay_rows} (this config's replay)", rows)
        c.int(meta.get("pos"), "replay.pos", hi=rows - 1)
        c.int(meta.get("size"), "replay.size", hi=rows)
        for key in ("total", "side_count", "frame_stack"):  # frame replay (Atari) only
            if key in meta:
                c.int(meta[key], f"replay.{key}")

    if "env_state" in state:
        env_state = c.dict(state["env_state"], "env_state")
        for key in ("envs", "obs", "returns", "lengths"):
            value = env_state.get(key)
            if not isinstance(value, list) or len(value) != num_envs:
                c.fail(f"env_state.{key}", f"a list of {num_envs} entries (env.num_envs)", value)


def _check_optimizer(c: _Checker, meta: dict[str, Any], optimizer: torch.optim.Optimizer) -> None:
    """Param groups must have this optimizer's shape: same groups, same keys, same value types,
    the same parameter ids, finite numbers."""
    live = optimizer.state_dict()["param_groups"]
    groups = meta.get("param_groups")
    if not isinstance(groups, list) or len(groups) != len(live):
        c.fail("learner.optimizer.param_groups", f"a list of {len(live)} groups", groups)
    for i, (saved_group, live_group) in enumerate(zip(groups, live, strict=True)):
        path = f"learner.optimizer.param_groups[{i}]"
        c.dict(saved_group, path)
        # device flags are not saved (older checkpoints have them): the loading optimizer's win
        saved = {k: v for k, v in saved_group.items() if k not in OPTIMIZER_DEVICE_KEYS}
        ref = {k: v for k, v in live_group.items() if k not in OPTIMIZER_DEVICE_KEYS}
        if torch.is_tensor(ref.get("lr")):  # the CUDA-graph update holds lr in a tensor
            ref["lr"] = float(ref["lr"])
        if sorted(saved) != sorted(ref):
            c.fail(path, f"an object with keys {', '.join(sorted(ref))}", sorted(saved))
        for key, ref_value in ref.items():
            value = saved[key]
            if key == "params":
                if value != ref_value:
                    c.fail(f"{path}.params", f"{ref_value}", value)
            elif isinstance(ref_value, bool) or ref_value is None:
                if type(value) is not type(ref_value):
                    c.fail(f"{path}.{key}", type(ref_value).__name__, value)
            elif isinstance(ref_value, int | float):
                c.float(value, f"{path}.{key}", lo=0.0)
            elif isinstance(ref_value, list | tuple):
                if not isinstance(value, list) or len(value) != len(ref_value):
                    c.fail(f"{path}.{key}", f"a list of {len(ref_value)} numbers", value)
                for j, v in enumerate(value):
                    c.float(v, f"{path}.{key}[{j}]", lo=0.0)
    scalars = c.dict(meta.get("scalars", {}), "learner.optimizer.scalars")
    n_params = sum(len(g["params"]) for g in live)
    for idx, values in scalars.items():
        if not idx.isascii() or not idx.isdigit() or int(idx) >= n_params:
            c.fail("learner.optimizer.scalars key", f"a parameter index < {n_params}", idx)
        for key, v in c.dict(values, f"learner.optimizer.scalars.{idx}").items():
            c.float(v, f"learner.optimizer.scalars.{idx}.{key}")
