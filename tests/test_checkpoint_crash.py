"""Crash safety: a writer saving checkpoints in a loop is `kill -9`ed at random points; after
every kill `checkpoints/latest` names a complete checkpoint that loads and verifies. Corrupting
the newest checkpoint is caught (naming the file) while the one before it still loads.

Importing torch costs seconds on CI, so the writers are forked from one long-lived server
process that has imported `dopa_rl.store.checkpoint` once: every kill is a real SIGKILL of a real
process, and the whole test stays fast."""

from __future__ import annotations

import inspect
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from conftest import ROOT
from dopa_rl.core.errors import CheckpointError
from dopa_rl.store import checkpoint as ckpt

KILLS = 15
SEED = 20261128


def tensors_for(step: int) -> dict[str, dict[str, torch.Tensor]]:
    """Tensors that are a pure function of the step (about 3 MB), so a loaded checkpoint can be
    checked against the step it claims to be. The writers run this same source."""
    g = torch.Generator().manual_seed(step)
    return {
        "model": {"w": torch.randn(384, 512, generator=g), "b": torch.full((512,), float(step))},
        "target": {"w": torch.randn(384, 512, generator=g)},
        "optimizer": {"m": torch.randn(2, 384, 512, generator=g)},
    }


# The server reads "RUN_DIR" lines; for each it forks a writer, prints the writer's pid, waits
# for it to die and prints its wait status. The writer continues from `latest` (like a resumed
# run), saves each step `repeats` times (the trainer rewrites a step too: periodic save, then the
# final save at the same step) and never stops by itself.
SERVER = textwrap.dedent(
    """
    import os, sys
    import torch
    torch.set_num_threads(1)
    from dopa_rl.store.checkpoint import (
        has_checkpoint, read_state, resolve_checkpoint, save_checkpoint)
    {tensors}
    def write_forever(run_dir):
        step = read_state(resolve_checkpoint(run_dir))["step"] + 1 if has_checkpoint(run_dir) else 1
        while True:
            for _ in range({repeats}):
                state = {{"counters": {{"env_steps": step}}}}
                save_checkpoint(run_dir, step, tensors_for(step), state, keep={keep})
            step += 1
    for line in sys.stdin:
        pid = os.fork()
        if pid == 0:
            try:
                write_forever(line.strip())
            finally:
                os._exit(1)
        print(pid, flush=True)
        _, status = os.waitpid(pid, 0)
        print(status, flush=True)
    """
)


def _start_server(repeats: int, keep: int = 3) -> subprocess.Popen:
    code = SERVER.format(
        root=str(ROOT), tensors=inspect.getsource(tensors_for), repeats=repeats, keep=keep
    )
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    )


def _assert_latest_is_complete(run_dir: Path) -> int:
    tensors, state, folder = ckpt.load_checkpoint(run_dir)  # verifies version and every hash
    step = state["step"]  # the folder may be a `.old-<step>-<pid>` one a kill left aside
    assert folder.name in (str(step),) or folder.name.startswith(f".old-{step}-")
    assert state["counters"]["env_steps"] == step
    expected = tensors_for(step)
    assert tensors.keys() == expected.keys()
    for stem, named in expected.items():
        for key, value in named.items():
            assert torch.equal(tensors[stem][key], value), f"{folder}/{stem}:{key}"
    return step


# Every step is written once: the case `save_checkpoint` makes atomic today.
@pytest.mark.parametrize(
    ("repeats", "keep"),
    [
        pytest.param(1, 3, id="new-steps"),
        # rewriting a step, as the trainer's final save does after a periodic one
        pytest.param(2, 3, id="rewrite-same-step"),
        # the lab tasks' keep_checkpoints=1: a rewrite moves the only checkpoint aside
        pytest.param(2, 1, id="rewrite-same-step-keep-1"),
    ],
)
def test_kill_9_at_random_points_leaves_latest_complete(
    tmp_path: Path, repeats: int, keep: int
) -> None:
    rng = random.Random(SEED + repeats + keep)
    server = _start_server(repeats, keep)
    steps = []
    pid = None  # a writer not yet reaped by the server
    try:
        for _ in range(KILLS):
            server.stdin.write(f"{tmp_path}\n")
            pid = int(server.stdout.readline())
            # the first kill waits for a first complete checkpoint; the rest land anywhere
            if not steps:
                deadline = time.time() + 60
                while not ckpt.has_checkpoint(tmp_path) and time.time() < deadline:
                    time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.4))
            os.kill(pid, signal.SIGKILL)
            status = int(server.stdout.readline())
            pid = None
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status
            steps.append(_assert_latest_is_complete(tmp_path))
    finally:
        if pid is not None:  # a failure between fork and kill: do not leave a writer running
            os.kill(pid, signal.SIGKILL)
        server.stdin.close()
        server.wait(timeout=30)
    assert steps == sorted(steps) and steps[-1] > steps[0], steps  # progress across the kills
    assert len(ckpt.list_checkpoints(tmp_path)) <= keep + 1  # pruning still works after crashes


def _crash_in_rmtree(path, *args, **kwargs):
    """Die half-way through deleting a folder: its state.json is gone, the rest is not."""
    Path(path, "state.json").unlink(missing_ok=True)
    raise KeyboardInterrupt("killed")  # not an Exception: like a kill, nothing catches it


def _crash_in_rename(src, dst):
    raise KeyboardInterrupt("killed")


@pytest.mark.parametrize(
    "target, crash",
    [("shutil.rmtree", _crash_in_rmtree), ("os.rename", _crash_in_rename)],
    ids=["during-delete", "before-rename"],
)
def test_crash_while_rewriting_the_latest_step_keeps_latest_loadable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str, crash
) -> None:
    """The windows the random kills only sometimes hit, made deterministic: an exception that
    nothing catches leaves the same files on disk as a kill at that point."""
    for step in (1, 2):
        ckpt.save_checkpoint(tmp_path, step, tensors_for(step), {"counters": {"env_steps": step}})
    module, name = target.split(".")
    monkeypatch.setattr(getattr(ckpt, module), name, crash)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(tmp_path, 2, tensors_for(2), {"counters": {"env_steps": 2}})
    monkeypatch.undo()
    _assert_latest_is_complete(tmp_path)


def test_leftovers_of_a_killed_writer_are_cleaned_up(tmp_path: Path, monkeypatch) -> None:
    """Each kill mid-save leaves a `.tmp-<step>-<pid>` folder (as large as the checkpoint,
    replay included); the next save should remove it, or pre-empted runs fill the disk."""
    ckpt.save_checkpoint(tmp_path, 1, tensors_for(1), {"counters": {"env_steps": 1}})

    def crash(tensors, path):
        Path(path).write_bytes(b"partial")
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(ckpt, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(tmp_path, 2, tensors_for(2), {"counters": {"env_steps": 2}})
    monkeypatch.undo()
    ckpt.save_checkpoint(tmp_path, 3, tensors_for(3), {"counters": {"env_steps": 3}})
    assert _assert_latest_is_complete(tmp_path) == 3
    leftovers = [p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def _corrupt(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncate":
        data = data[: len(data) // 3]
    else:
        data[len(data) * 2 // 3] ^= 0x10  # one flipped bit
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["truncate", "bitflip"])
@pytest.mark.parametrize("name", ["model.safetensors", "optimizer.safetensors", "state.json"])
def test_corrupt_latest_names_the_file_and_previous_still_loads(
    tmp_path: Path, name: str, how: str
) -> None:
    for step in (1, 2):
        ckpt.save_checkpoint(tmp_path, step, tensors_for(step), {"counters": {"env_steps": step}})
    newest = tmp_path / "checkpoints" / "2"
    _corrupt(newest / name, how)
    with pytest.raises(CheckpointError) as err:
        ckpt.load_checkpoint(tmp_path)
    message = str(err.value)
    assert name in message and "\n" not in message
    assert _assert_latest_is_complete(tmp_path / "checkpoints" / "1") == 1
