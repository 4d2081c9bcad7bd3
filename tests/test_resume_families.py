"""Every env family resumes through the command users run (issue 34, item 1 and What to build
1): one resume chain per family, generated from the family registry so that a new family
cannot skip it (a family without a ``conf/env`` file fails here; one whose optional package is
missing is skipped, naming it).

The chain, all ``scripts/train.py`` subprocesses in one run dir with ``deterministic=true``:
a short run that finishes (then extended to the full total), ``kill -9`` once a newer periodic
checkpoint is written, ``SIGTERM`` once a newer one still is (exit 3: pre-empted), and the
rerun that finishes. Its final weights are compared bit for bit with one uninterrupted run of
the full total (in-process, from the same overrides: the library's ``run`` and the command
line agree too). Families whose envs keep no state in checkpoints (Atari's C++ envs:
``get_state`` is None) restart their episodes on resume by design, so their runs cannot match
an uninterrupted one: for them the chain must restore (never restart), keep the update
schedule and end at the full total.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import ROOT
from dopa_rl.core.errors import EXIT_PREEMPTED
from dopa_rl.envs import registry
from dopa_rl.loop.run import updates_due
from dopa_rl.loop.train import run
from dopa_rl.store import checkpoint as ckpt
from helpers import make_cfg
from safetensors.torch import load_file

TOTAL = 600  # env steps of the whole run (2 envs: 300 iterations)
FIRST = 150  # the first, finished run: extended to TOTAL
EVERY = 50  # periodic checkpoints
# tiny and deterministic for every family; the evaluation only at the end
TINY = [
    "agent=qrdqn",
    "agent.num_units=8",
    "agent.batch_size=8",
    "agent.replay_size=1000",
    "agent.learning_starts=40",
    "agent.train_every=4",
    "env.num_envs=2",
    "env.eval_num_envs=1",
    "train.eval_episodes=1",
    f"train.eval_every_env_steps={TOTAL}",
    f"train.checkpoint_every_env_steps={EVERY}",
    "train.progress=false",
    "deterministic=true",
    "device=cpu",
]
# smaller than the defaults where a family's steps are slow (a shorter evaluation episode);
# a family without an entry runs on TINY alone
FASTER = {
    "atari": ["env.max_episode_frames=400", "env.noop_max=2"],
    "minatar": ["env.max_episode_frames=200"],
}
# the optional package each family needs, skipped with its name when absent
NEEDS = {"atari": "ale_py", "minatar": "minatar"}


def env_choice(family: str) -> str:
    """The ``env=`` config that starts from ``family``'s schema (the one named after the
    family if there is one, else the first by name)."""
    found = sorted(
        p.stem
        for p in (ROOT / "conf" / "env").glob("*.yaml")
        if re.search(rf"/schema/env/{family}@env\b", p.read_text())
    )
    assert found, f"env family {family} has no conf/env/<name>.yaml: add one (and it runs here)"
    return family if family in found else found[0]


def family_args(family: str) -> list[str]:
    return [f"env={env_choice(family)}", *TINY, *FASTER.get(family, [])]


def cli(run_dir: Path, args: list[str], total: int) -> list[str]:
    script = str(ROOT / "scripts" / "train.py")
    return [
        sys.executable,
        script,
        *args,
        f"train.total_env_steps={total}",
        f"hydra.run.dir={run_dir}",
    ]


def finish(run_dir: Path, args: list[str], total: int) -> str:
    """Run to the end (exit 0); the console."""
    proc = subprocess.run(
        cli(run_dir, args, total), cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def newest_step(latest: Path) -> int:
    try:
        return int(latest.read_text().strip())
    except (OSError, ValueError):  # not written yet
        return -1


def interrupt(run_dir: Path, args: list[str], latest: Path, signum: int) -> tuple[int, str]:
    """Start the full run and send ``signum`` as soon as ``latest`` names a checkpoint newer
    than the one it started from; returns the step it was cut after and the console."""
    start = newest_step(latest)
    proc = subprocess.Popen(
        cli(run_dir, args, TOTAL), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    deadline = time.time() + 240
    while newest_step(latest) <= start and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    if proc.poll() is not None:
        out, _ = proc.communicate()
        pytest.fail(f"the run ended before it could be interrupted: {out.decode()[-3000:]}")
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=240)
    console = out.decode(errors="replace")
    expected = -signal.SIGKILL if signum == signal.SIGKILL else EXIT_PREEMPTED
    assert proc.returncode == expected, console[-3000:]
    cut = newest_step(latest)
    assert start < cut < TOTAL, (start, cut)
    return cut, console


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(ckpt.resolve_checkpoint(run_dir) / "model.safetensors"))


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    different = [name for name in wa if not torch.equal(wa[name], wb[name])]
    assert not different, f"{b} differs from the uninterrupted {a} in {different}"


def keeps_state(family: str) -> bool:
    """Whether the family's envs save their state in checkpoints (an exact resume)."""
    cfg = make_cfg(*family_args(family))
    env = registry.get(family).make(cfg.env, 1, False, False)
    try:
        return env.get_state() is not None
    finally:
        env.close()


def chain(run_dir: Path, args: list[str], latest: Path) -> None:
    """Finish at FIRST, extend to TOTAL, kill -9, SIGTERM, rerun to the end."""
    finish(run_dir, args, FIRST)
    cut, _ = interrupt(run_dir, args, latest, signal.SIGKILL)
    cut_again, console = interrupt(run_dir, args, latest, signal.SIGTERM)
    assert cut_again > cut
    assert "exiting with 3 to be resumed" in console
    console = finish(run_dir, args, TOTAL)
    assert f"at step {cut_again}" in console  # resumed from the pre-emption checkpoint


@pytest.mark.parametrize("family", registry.names())
def test_every_family_resumes_through_the_command_line(family: str, tmp_path: Path) -> None:
    if family in NEEDS:
        pytest.importorskip(NEEDS[family], reason=f"env family {family} needs {NEEDS[family]}")
    args = family_args(family)
    resumed = tmp_path / "resumed"
    chain(resumed, args, resumed / "checkpoints" / "latest")
    summary = json.loads((resumed / "summary.json").read_text())
    assert summary["env_steps"] == TOTAL
    if keeps_state(family):
        whole = tmp_path / "whole"
        assert (
            run(make_cfg(*args, f"train.total_env_steps={TOTAL}"), whole)["updates"]
            == (summary["updates"])
        )
        assert_same_weights(whole, resumed)
    else:  # episodes restart on resume: the updates follow the schedule, nothing repeated
        cfg = make_cfg(*args)
        assert summary["updates"] > updates_due(cfg.agent, FIRST)


def test_a_minatar_population_resumes_through_the_command_line(tmp_path: Path) -> None:
    """train.population=2 on MinAtar: the same chain, each member bit-identical to the
    uninterrupted population's."""
    pytest.importorskip("minatar", reason="env family minatar needs minatar")
    args = [*family_args("minatar"), "train.population=2"]
    resumed, whole = tmp_path / "resumed", tmp_path / "whole"
    # member 1 saves after member 0: its newer checkpoint means both have one
    chain(resumed, args, resumed / "member_1_s2" / "checkpoints" / "latest")
    run(make_cfg(*args, f"train.total_env_steps={TOTAL}"), whole)
    for member in ("member_0_s1", "member_1_s2"):
        assert_same_weights(whole / member, resumed / member)


def test_a_population_missing_one_members_checkpoints_is_refused_not_restarted(tmp_path):
    """Issue 34 item 8: a finished population whose member 1 lost its checkpoints, extended:
    one error line and exit 2, member 0 keeps every checkpoint and file (it used to restart
    every member from zero and prune member 0's trained checkpoints)."""
    args = [*family_args("control"), "train.population=2"]
    finish(tmp_path, args, FIRST)
    shutil.rmtree(tmp_path / "member_1_s2" / "checkpoints")
    before = {p: p.read_bytes() for p in (tmp_path / "member_0_s1").rglob("*") if p.is_file()}
    proc = subprocess.run(
        cli(tmp_path, args, TOTAL), cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "member_0_s1 150" in errors[0] and "member_1_s2 none" in errors[0], errors[0]
    after = {p: p.read_bytes() for p in (tmp_path / "member_0_s1").rglob("*") if p.is_file()}
    assert after == before  # nothing pruned, rewritten or deleted
    assert not (tmp_path / "member_1_s2" / "checkpoints").exists()
