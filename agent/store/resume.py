"""Resuming a run: which checkpoint to continue from, what may change on resume, and the
checks a run dir must pass before any training time is spent (loading a checkpoint's parts:
:mod:`agent.store.run_state`).

``resume=`` takes three forms:

* ``auto`` (default): the run dir's own newest checkpoint, else a fresh start.
* ``never``: a fresh start; refuses a run dir that already holds a checkpoint.
* ``PATH`` (a run dir, its ``checkpoints/`` or one checkpoint folder): continue from PATH,
  unless the run dir holds its own checkpoint. That is what a requeued
  ``resume=A hydra.run.dir=B`` job needs: its second start must continue from B's newer
  checkpoints, not go back to A.

On resume the new config may change what does not alter the learned state's meaning
(``SAFE_CHANGES``: learning rate, run length, intervals, logging, devices); anything else
(network, agent, env, num_envs, replay, seed…) is refused with one line naming the key.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError
from .checkpoint import has_checkpoint, resolve_checkpoint
from .zoo import PREFIX, is_zoo_name

log = logging.getLogger("agent")

AUTO, NEVER = "auto", "never"

# Keys (or prefixes ending in ".") a resumed run may change; each changes how long, how often
# or where the run goes on, never the meaning of the saved weights, optimiser moments or replay.
SAFE_CHANGES = (
    "train.",
    "probe.",
    "checkpoint.",
    "logger.",  # what is reported beside TensorBoard (CSV, W&B, probe-state histograms)
    "agent.lr",
    "agent.adam_eps",
    "agent.max_grad_norm",
    "agent.eps_eval",
    "agent.update_mode",
    "env.eval_num_envs",
    "device",
    "deterministic",
    "torch_threads",
    "resume",
)


def _step_of(folder: Path) -> int:
    name = folder.name
    return int(name) if name.isascii() and name.isdigit() else int(name.split("-")[1])


def resolve_source(resume: str | None, run_dir: str | Path) -> tuple[Path | None, str]:
    """The checkpoint folder to continue from (None: a fresh start) and why, in words."""
    run_dir = Path(run_dir)
    mode = AUTO if resume in (None, "", AUTO) else resume
    own = resolve_checkpoint(run_dir) if has_checkpoint(run_dir) else None
    if mode == NEVER:
        if own is not None:
            raise ConfigError(
                f"resume=never but run dir '{run_dir}' already holds a checkpoint (step "
                f"{_step_of(own)}); choose another hydra.run.dir, or resume=auto to continue it"
            )
        return None, "resume=never: fresh start"
    if mode == AUTO:
        if own is None:
            return None, "no checkpoint in the run dir: fresh start"
        return own, "this run dir's own newest checkpoint"
    if is_zoo_name(mode):
        raise ConfigError(
            f"resume={mode}: a zoo agent holds its network only (no optimiser, target or "
            f"replay), so it cannot be resumed; `dopa-zoo {mode.removeprefix(PREFIX)}` shows "
            "the command that trained it"
        )
    given = resolve_checkpoint(mode)
    if own is None:
        return given, f"resume={mode}"
    if given.resolve().is_relative_to(run_dir.resolve()) and given.resolve() != own.resolve():
        raise ConfigError(
            f"resume={mode} names an older checkpoint of this same run dir (step "
            f"{_step_of(given)}, newest {_step_of(own)}); continuing it here would discard the "
            "newer ones: resume it into a new hydra.run.dir"
        )
    if _step_of(own) < _step_of(given):
        raise ConfigError(
            f"run dir '{run_dir}' holds its own checkpoint at step {_step_of(own)}, older than "
            f"resume={mode} (step {_step_of(given)}); use a new hydra.run.dir"
        )
    return own, f"this run dir's own checkpoint (newer than or equal to resume={mode})"


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict) and tree:
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: tree}


def _safe(key: str) -> bool:
    return any(key.startswith(s) if s.endswith(".") else key == s for s in SAFE_CHANGES)


def reconcile_config(saved: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Compare a checkpoint's config with the config of the resuming run. Returns the safe
    changes as ``key (old -> new)`` strings; raises ConfigError naming every unsafe one.

    A key missing from the saved config (added to the schema since) is not a change."""
    old_flat, new_flat = _flatten(saved), _flatten(new)
    changes: list[str] = []
    unsafe: list[str] = []
    for key, value in new_flat.items():
        if key not in old_flat or old_flat[key] == value:
            continue
        old, shown = repr(old_flat[key])[:40], repr(value)[:40]  # one short line, always
        (changes if _safe(key) else unsafe).append(f"{key} ({old} -> {shown})")
    if unsafe:
        raise ConfigError(
            f"cannot resume with a changed {', '.join(unsafe)}: it changes what the "
            "checkpoint's weights or replay mean, so no resume (resume=PATH included) can "
            "carry it over; keep the old value, or train afresh in a new hydra.run.dir"
        )
    return [c for c in changes if not c.startswith("resume ")]


def apply_optimizer_config(optimizer: Any, agent_cfg: Any) -> None:
    """The restored optimizer carries the saved lr and eps; the resuming config's win (a lower
    lr after a NaN stop must take effect, not only show in config.json)."""
    for group in optimizer.param_groups:
        group["lr"] = agent_cfg.lr
        group["eps"] = agent_cfg.adam_eps


def check_run_dir_writable(run_dir: str | Path) -> None:
    """Fail in one line, before anything is built, when checkpoints could not be written: the
    run dir or ``checkpoints/`` is not a writable folder (or sits under a regular file)."""
    run_dir = Path(run_dir)
    for folder in (run_dir, run_dir / "checkpoints"):
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"'{folder}' is a file, not a folder; choose another hydra.run.dir")
    root = run_dir / "checkpoints"
    probe = root / f".write-test-{os.getpid()}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"ok")
    except OSError as err:
        raise ConfigError(f"cannot write checkpoints in '{root}': {err.strerror}") from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)


def check_disk_space(run_dir: str | Path, needed_bytes: int) -> None:
    """Fail in one line before training when the run dir's disk has less than ``needed_bytes``
    free (a checkpoint is written in full before the previous one is pruned)."""
    root = Path(run_dir) / "checkpoints"
    free = shutil.disk_usage(root).free
    if free < needed_bytes:
        raise ConfigError(
            f"'{root}' has {free >> 20} MiB free; checkpoints of this run need about "
            f"{needed_bytes >> 20} MiB (a new one is written before the old one is pruned)"
        )


def checkpoint_bytes(learner: Any, replay: Any, with_replay: bool) -> int:
    """Bytes of one checkpoint of this run (tensors only; state.json is small): online and
    target networks and Adam's two moments (created at the first update, so counted from the
    parameters), plus the replay buffer when it is saved."""
    params = sum(p.numel() * p.element_size() for p in learner.online.parameters())
    total = 4 * params
    if with_replay:
        total += sum(t.numel() * t.element_size() for t in replay.state_tensors().values())
    return total
