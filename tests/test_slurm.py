"""The cluster path against a real SLURM (the one-node cluster of `scripts/slurm_local.sh`):
sweeps through `hydra/launcher=slurm`, pre-emption by signal, requeue and resume, the time-limit
warning, and aggregation of a sweep. Skipped, with the reason, where no cluster answers; CI's
`.ci/run` starts one. Run alone: `sudo scripts/slurm_local.sh start` then
`.venv/bin/python -m pytest -m slurm`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import ROOT
from dopa_rl.core.errors import EXIT_PREEMPTED
from dopa_rl.store import checkpoint as ckpt
from helpers import TINY, make_cfg
from safetensors.torch import load_file

pytestmark = pytest.mark.slurm
pytest.importorskip("submitit")
pytest.importorskip("hydra_plugins.hydra_submitit_launcher")

LOCAL_DIR = Path(os.environ.get("SLURM_LOCAL_DIR", "/tmp/dopa-rl-slurm"))
START_HINT = "start one with `sudo scripts/slurm_local.sh start` (CI's .ci/run does)"
TRAIN = [sys.executable, str(ROOT / "scripts" / "train.py"), "-m", "hydra/launcher=slurm"]
# one CPU and 1 GB per task, so both tasks of a sweep fit the 2-CPU CI node at once
SLURM = [
    "hydra.launcher.gpus_per_node=0",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1",
]
FAST = [*TINY, "torch_threads=1"]  # one thread: a busy 2-core machine slows extra ones badly
# test_preemption.py's run: long enough (4000 steps) to be signalled between checkpoints
ARGS = [*FAST, "train.total_env_steps=4000", "deterministic=true", "agent.n_step=2"]
WARNING = re.compile(r"signal (\d+) at env step (\d+): checkpoint written, exiting with (\d+)")


@pytest.fixture(scope="module")
def slurm_env() -> dict[str, str]:
    """The environment for SLURM commands and launches: the local cluster's config, its sacct
    shim, and this checkout first on PYTHONPATH (jobs inherit it, so they import this `agent`)."""
    env = dict(os.environ)
    if "SLURM_CONF" not in env and (LOCAL_DIR / "slurm.conf").is_file():
        env["SLURM_CONF"] = str(LOCAL_DIR / "slurm.conf")
        env["PATH"] = f"{LOCAL_DIR / 'bin'}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    if shutil.which("sinfo", path=env["PATH"]) is None:
        pytest.skip(f"SLURM is not installed here; {START_HINT}")
    try:
        proc = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired:
        pytest.skip(f"sinfo did not answer in 30 s; {START_HINT}")
    states = proc.stdout.split()
    if proc.returncode != 0 or not any(s.startswith(("idle", "mixed", "alloc")) for s in states):
        why = (proc.stderr.strip().splitlines() or [f"node states {states}"])[-1]
        pytest.skip(f"no SLURM cluster with a usable node ({why}); {START_HINT}")
    return env


def slurm(env: dict[str, str], *cmd: str) -> str:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, timeout=30)
    return proc.stdout


def launch(env: dict[str, str], sweep: Path, *overrides: str) -> subprocess.Popen:
    """`train.py -m hydra/launcher=slurm …` in the background; its output goes to sweep.log."""
    sweep.parent.mkdir(parents=True, exist_ok=True)
    with open(sweep.parent / f"{sweep.name}.log", "w") as out:
        return subprocess.Popen(
            [*TRAIN, *SLURM, *overrides, f"hydra.sweep.dir={sweep}"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def launcher_log(sweep: Path) -> str:
    return (sweep.parent / f"{sweep.name}.log").read_text()


def cleanup(env: dict[str, str], proc: subprocess.Popen, sweep: Path) -> None:
    """Unless the launcher has collected every result: stop it and cancel the sweep's jobs, so
    that a failed or cut test leaves nothing queued or running for the next one."""
    if proc.poll() == 0:
        return
    proc.kill()
    proc.wait(timeout=60)
    folder = sweep / ".submitit"
    jobs = [p.name for p in folder.glob("*") if p.name.isdigit()] if folder.is_dir() else []
    if jobs:
        subprocess.run(["scancel", *jobs], env=env, capture_output=True, timeout=30)


def finish(proc: subprocess.Popen, sweep: Path, timeout: float = 300) -> None:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 0, launcher_log(sweep)[-3000:]


def wait_for(what: str, check, timeout: float = 180, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def job_id(sweep: Path) -> str:
    """The SLURM id of a one-task sweep: submitit names the job's log folder after it."""
    folder = sweep / ".submitit"
    found = wait_for(
        "the job's submission",
        lambda: [p.name for p in folder.glob("*") if p.name.isdigit()] if folder.is_dir() else [],
    )
    assert len(found) == 1, found
    return found[0]


def run_seconds(elapsed: str) -> int:
    """SLURM's [days-]hours:minutes:seconds (e.g. RunTime=00:01:23) in seconds."""
    days, _, clock = elapsed.rpartition("-")
    hours, minutes, seconds = (int(x) for x in clock.split(":"))
    return ((int(days or 0) * 24 + hours) * 60 + minutes) * 60 + seconds


def job_record(env: dict[str, str], job: str) -> dict[str, str]:
    line = slurm(env, "scontrol", "show", "job", "-o", job).strip()
    return dict(tok.split("=", 1) for tok in line.split() if "=" in tok)


def run_dir(sweep: Path) -> Path:
    return wait_for("the task's run dir", lambda: next(sweep.glob("0_*"), None))


def train_log(run: Path) -> str:
    path = run / "train.log"
    return path.read_text() if path.is_file() else ""


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(ckpt.resolve_checkpoint(run) / "model.safetensors"))


def resumes(run: Path) -> list[tuple[str, int]]:
    """(run dir, env step) of each `resuming from <run>/checkpoints/<step>` line in the run's
    train.log, in order."""
    found = re.findall(r"resuming from (\S+) at step (\d+)", train_log(run))
    return [(str(Path(folder).parent.parent), int(step)) for folder, step in found]


def preempt_and_requeue(env: dict[str, str], sweep: Path, after_step: int) -> tuple[Path, int]:
    """Signal the running task as a pre-empting scheduler would, once its run dir holds a
    checkpoint past `after_step`; check it checkpointed, said it exits 3, and was requeued; start it
    again soon (SLURM holds a requeued job back for 2 minutes). Returns the run dir and the
    step of the checkpoint it wrote."""
    job = job_id(sweep)
    run = run_dir(sweep)
    latest = run / "checkpoints" / "latest"
    wait_for(
        f"a checkpoint past step {after_step}",
        lambda: latest.is_file() and int(latest.read_text() or 0) > after_step,
    )
    assert not (run / "summary.json").exists(), "training ended before it could be interrupted"
    slurm(env, "scancel", "--signal=USR1", "--full", job)
    warning = wait_for("the trainer's checkpoint line", lambda: WARNING.search(train_log(run)))
    signum, cut_at, code = (int(g) for g in warning.groups())
    assert (signum, code) == (10, EXIT_PREEMPTED)  # SIGUSR1
    assert int(latest.read_text()) == cut_at
    record = wait_for(
        "the requeued job",
        lambda: (r := job_record(env, job))["Restarts"] == "1" and r["JobState"] == "PENDING" and r,
    )
    assert record["Reason"] == "BeginTime", record  # held back, as a requeued job is
    # SLURM's requeue delay (2 minutes) keeps slurmd from seeing a new launch of this job id
    # within the second it revoked the old one's credential, which it refuses ("Job credential
    # revoked"). The old instance is gone (PENDING, no longer COMPLETING): two seconds suffice.
    # (StartTime=now+2 would wait for the scheduler's next periodic pass instead, up to a minute.)
    time.sleep(2)
    slurm(env, "scontrol", "update", f"JobId={job}", "StartTime=now")
    return run, cut_at


@pytest.fixture(scope="module")
def sweep(slurm_env, tmp_path_factory) -> Path:
    """A finished 2-task sweep (seeds 1 and 2) through the SLURM launcher."""
    sweep = tmp_path_factory.mktemp("slurm") / "sweep"
    proc = launch(slurm_env, sweep, "seed=1,2", *FAST)
    try:
        finish(proc, sweep)
    finally:
        cleanup(slurm_env, proc, sweep)
    return sweep


def test_sweep_runs_each_task_as_a_slurm_array_task_in_its_own_run_dir(sweep: Path) -> None:
    summaries = sorted(sweep.glob("*/summary.json"))
    assert [p.parent.name for p in summaries] == ["0_qrdqn_cartpole_s1", "1_qrdqn_cartpole_s2"]
    for seed, path in enumerate(summaries, start=1):
        assert json.loads(path.read_text())["env_steps"] == 600
        assert json.loads((path.parent / "config.json").read_text())["seed"] == seed
        assert (path.parent / "checkpoints" / "latest").is_file()
    # one array job; submitit's logs of each task kept under the sweep folder
    logs = sweep / ".submitit"
    (script,) = logs.glob("*/*_submission.sh")
    array = script.parent.name
    text = script.read_text()
    for flag in ("--array=0-1%2", "--cpus-per-task=1", "--signal=USR1@120"):
        assert f"#SBATCH {flag}\n" in text, flag
    for task in (0, 1):
        folder = logs / f"{array}_{task}"
        assert any(folder.glob("*_result.pkl"))
        out = (folder / f"{array}_{task}_0_log.out").read_text()
        assert f"JobEnvironment(job_id={array}_{task}," in out  # ran as that SLURM task
    # quiet without accounting: submitit's status polls were answered (no per-poll warning)
    assert "Bypassing sacct error" not in launcher_log(sweep)


def test_aggregate_summarises_the_sweep(sweep: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "aggregate.py"),
            f"runs={sweep}",
            f"out={sweep / 'aggregate.json'}",
            "reps=200",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((sweep / "aggregate.json").read_text())
    entry = result["raw_returns"]["CartPole-v1"]["qrdqn"]
    assert entry["runs"] == 2 and entry["seeds"] == [1, 2]
    returns = [
        json.loads((sweep / name / "summary.json").read_text())["eval_return_mean"]
        for name in ("0_qrdqn_cartpole_s1", "1_qrdqn_cartpole_s2")
    ]
    assert entry["returns"] == returns
    assert result["skipped"] == []


def test_preempted_job_checkpoints_requeues_and_resumes_bit_exactly(slurm_env, tmp_path) -> None:
    sweep = tmp_path / "sweep"
    proc = launch(slurm_env, sweep, "seed=1", *ARGS)
    try:
        run, cut_at = preempt_and_requeue(slurm_env, sweep, after_step=0)
        finish(proc, sweep)
    finally:
        cleanup(slurm_env, proc, sweep)
    assert 0 < cut_at < 4000
    # the requeued task ran in the same run dir and resumed there at the checkpointed step
    assert resumes(run) == [(str(run), cut_at)]
    assert json.loads((run / "summary.json").read_text())["env_steps"] == 4000
    run_full = tmp_path / "full"
    from dopa_rl.loop.train import run as train

    train(make_cfg(*ARGS), run_full)
    a, b = weights(run_full), weights(run)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_preempted_job_started_with_resume_continues_from_its_own_checkpoint(
    slurm_env, tmp_path
) -> None:
    """A job launched with `resume=OTHER_RUN` starts from OTHER_RUN; once pre-empted and
    requeued it must continue from its own newer checkpoint, not from OTHER_RUN again."""
    from dopa_rl.loop.train import run as train

    other = tmp_path / "other"
    train(make_cfg(*ARGS, "train.total_env_steps=1000"), other)
    sweep = tmp_path / "sweep"
    proc = launch(slurm_env, sweep, "seed=1", *ARGS, f"resume={other}")
    try:
        run, cut_at = preempt_and_requeue(slurm_env, sweep, after_step=1000)
        finish(proc, sweep)
    finally:
        cleanup(slurm_env, proc, sweep)
    assert 1000 < cut_at < 4000
    assert resumes(run) == [(str(other), 1000), (str(run), cut_at)]
    assert json.loads((run / "summary.json").read_text())["env_steps"] == 4000
    run_full = tmp_path / "full"
    train(make_cfg(*ARGS, f"resume={other}"), run_full)
    a, b = weights(run_full), weights(run)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_time_limit_warning_checkpoints_and_requeues(slurm_env, tmp_path) -> None:
    """A job near its time limit: SLURM sends the launcher's USR1 signal_delay_s before the
    limit; the trainer checkpoints at its current step, requeues the job and exits 3.

    SLURM may send the warning up to a minute early, so a job submitted with a 1-minute limit
    could get it while Python is still importing (submitit's handler then requeues it, with no
    new checkpoint). The job is therefore submitted with 5 minutes and cut to 1-2 minutes
    ahead once its training loop runs."""
    sweep = tmp_path / "sweep"
    proc = launch(
        slurm_env,
        sweep,
        "seed=1",
        *FAST,
        # far more steps than a minute allows, and no stop at solving (this CartPole run solves
        # in under a minute): the warning always finds the loop running
        "train.total_env_steps=10000000",
        "train.stop_when_solved=false",
        "train.checkpoint_every_env_steps=1000",
        "hydra.launcher.timeout_min=5",
        "hydra.launcher.signal_delay_s=30",
    )
    try:
        job = job_id(sweep)
        text = (sweep / ".submitit" / job / f"{job}_submission.sh").read_text()
        assert "#SBATCH --signal=USR1@30\n" in text
        run = run_dir(sweep)
        wait_for("the training loop", (run / "checkpoints" / "latest").is_file)
        # The limit is counted from the job's start, and on a busy machine the loop may start
        # more than a minute in: cut the limit to the whole minutes already run plus 2, so the
        # end lies 60-120 s ahead and the warning (30 s before it, or up to slurmctld's 30 s
        # check period earlier) always finds the loop running.
        minutes = run_seconds(job_record(slurm_env, job)["RunTime"]) // 60 + 2
        slurm(slurm_env, "scontrol", "update", f"JobId={job}", f"TimeLimit={minutes}")
        assert job_record(slurm_env, job)["TimeLimit"] == f"00:{minutes:02d}:00"
        warning = wait_for("the time-limit warning", lambda: WARNING.search(train_log(run)), 240)
        signum, cut_at, code = (int(g) for g in warning.groups())
        assert (signum, code) == (10, EXIT_PREEMPTED), "not the USR1 warning"
        assert int((run / "checkpoints" / "latest").read_text()) == cut_at
        wait_for(
            "the requeued job",
            lambda: (
                (r := job_record(slurm_env, job))["Restarts"] == "1" and r["JobState"] == "PENDING"
            ),
        )
        assert not (run / "summary.json").exists()
    finally:
        cleanup(slurm_env, proc, sweep)
