"""Field checkers for a trainer checkpoint's ``state.json``, used before any of it is loaded.

``load_checkpoint`` verifies hashes, which proves the files are the ones the writer vouched
for; it does not prove the writer was sane (a buggy tool or an adversary can re-sign anything).
Each part of a run's state (:mod:`agent.store.run_state`) checks its share with a
:class:`Checker`: types, ranges and the lengths that must match this run's env, replay and
optimizer, so a crafted state ends in one ``CheckpointError`` line instead of a
``KeyError``/``IndexError``/``TypeError`` deep inside the restore. The env snapshot itself is
checked by the env of its family (``VecEnv.check_state``) before anything changes.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, NoReturn

import torch

from ..core.errors import CheckpointError

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


class Checker:
    """Field checks of one checkpoint's state.json: each failure is one CheckpointError line
    naming the field, what it must be and (briefly) what it is."""

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


def check_optimizer_meta(c: Checker, meta: dict[str, Any], optimizer: Any) -> None:
    """Param groups must have this optimizer's shape (``optimizer``: torch.optim.Adam or
    agent.learn.optim.FusedAdam, one layout): same groups, same keys, same value types, the same
    parameter ids, finite numbers."""
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
