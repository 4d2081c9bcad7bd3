"""Pre-emption (SIGTERM → checkpoint → exit 3 → rerun resumes bit-exactly) and the NaN guard."""

import logging
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import ROOT
from dopa_rl.core.errors import EXIT_PREEMPTED, ConfigError, Preempted, TrainingDiverged
from dopa_rl.learn.learner import Learner
from dopa_rl.loop.train import run
from dopa_rl.store import checkpoint as ckpt
from helpers import TINY, make_cfg
from safetensors.torch import load_file

ARGS = [*TINY, "train.total_env_steps=4000", "deterministic=true", "agent.n_step=2"]


def train_cmd(run_dir):
    return [sys.executable, str(ROOT / "scripts" / "train.py"), *ARGS, f"hydra.run.dir={run_dir}"]


def weights(run_dir):
    return load_file(str(ckpt.resolve_checkpoint(run_dir) / "model.safetensors"))


def test_sigterm_checkpoints_and_rerun_matches_uninterrupted(tmp_path):
    proc = subprocess.Popen(train_cmd(tmp_path / "cut"), cwd=ROOT, stderr=subprocess.PIPE)
    latest = tmp_path / "cut" / "checkpoints" / "latest"
    deadline = time.time() + 120
    while not latest.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "training ended before it could be interrupted"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_PREEMPTED, err.decode()[-2000:]
    cut_at = int(latest.read_text())
    assert 0 < cut_at < 4000
    # rerun the same command: it resumes from `latest` with no flag
    subprocess.run(train_cmd(tmp_path / "cut"), cwd=ROOT, check=True, capture_output=True)
    run(make_cfg(*ARGS), tmp_path / "full")
    a, b = weights(tmp_path / "full"), weights(tmp_path / "cut")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_nan_guard_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    original = Learner.loss

    def poisoned(self, batch):
        loss, metrics = original(self, batch)
        if self.updates >= 60:  # after the first checkpoints (step 200: 25 updates)
            loss = loss * float("nan")
        return loss, metrics

    monkeypatch.setattr(Learner, "loss", poisoned)
    cfg = make_cfg(*TINY, "train.log_every_env_steps=100")
    with pytest.raises(TrainingDiverged, match="non-finite .* at env step"):
        run(cfg, tmp_path)
    tensors, state, _ = ckpt.load_checkpoint(tmp_path)
    assert all(torch.isfinite(t).all() for t in tensors["model"].values())
    assert state["counters"]["env_steps"] < 600


def test_divergence_watch_reports_the_first_bad_batch() -> None:
    """Good batches leave nothing (on the CPU they are not even summarised); of two bad ones,
    the first is the one reported."""
    from dopa_rl.loop.hooks import DivergenceWatch
    from dopa_rl.replay.buffer import Batch

    def batch(reward: float) -> Batch:
        return Batch(
            torch.ones(4, 2),
            torch.zeros(4, dtype=torch.int64),
            torch.full((4,), reward),
            torch.full((4,), 0.9),
            torch.ones(4, 2),
        )

    watch = DivergenceWatch()
    watch.observe([batch(1.0)], {"loss/nonfinite": torch.tensor(0.0)})
    assert watch.report() == {}
    watch.observe([batch(7.0)], {"loss/nonfinite": torch.tensor(1.0)})
    watch.observe([batch(-3.0)], {"loss/nonfinite": torch.tensor(1.0)})
    stats = watch.report()
    assert stats["reward_min"] == stats["reward_max"] == 7.0
    assert stats["discount_min"] == pytest.approx(0.9)


# ----------------------------------------------------------------------------------------------
# issue 12: resume that never loses work
# ----------------------------------------------------------------------------------------------

SHORT = [*TINY, "deterministic=true", "agent.n_step=2"]


def _state(run_dir):
    return ckpt.load_checkpoint(run_dir)[1]


def test_sigterm_at_the_first_step_then_rerun_matches_uninterrupted(tmp_path, monkeypatch):
    """Item 1: a checkpoint written after the very first env step (SIGTERM in the first second)
    must resume, and the resumed run must end bit-identical to an uninterrupted one."""
    from dopa_rl.envs.control import GymVecEnv

    original = GymVecEnv.step
    calls = []

    def step_then_signal(self, actions):
        result = original(self, actions)
        if not calls:  # the training envs' first step: the signal arrives now
            os.kill(os.getpid(), signal.SIGTERM)
        calls.append(1)
        return result

    monkeypatch.setattr(GymVecEnv, "step", step_then_signal)
    with pytest.raises(Preempted):
        run(make_cfg(*SHORT), tmp_path / "cut", handle_signals=True)
    monkeypatch.undo()
    assert _state(tmp_path / "cut")["step"] == 4  # one step of 4 envs
    run(make_cfg(*SHORT), tmp_path / "cut")
    run(make_cfg(*SHORT), tmp_path / "full")
    a, b = weights(tmp_path / "full"), weights(tmp_path / "cut")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_first_step_checkpoint_resumes_from_the_command_line(tmp_path):
    """Item 1's repro and item 7: `total_env_steps=4` then a longer rerun in the same run dir
    resumes (no TypeError) and says so on the console."""
    common = [sys.executable, str(ROOT / "scripts" / "train.py"), "train.progress=false"]
    first = subprocess.run(
        [*common, "train.total_env_steps=4", f"hydra.run.dir={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert first.returncode == 0, first.stderr[-2000:]
    second = subprocess.run(
        [*common, "train.total_env_steps=12", f"hydra.run.dir={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert second.returncode == 0, second.stderr[-2000:]
    console = second.stdout + second.stderr
    assert f"resuming from {tmp_path / 'checkpoints' / '4'} at step 4" in console
    assert _state(tmp_path)["step"] == 12


def test_requeued_resume_other_continues_from_its_own_run_dir(tmp_path, caplog):
    """Item 2: `resume=A hydra.run.dir=B`, pre-empted and requeued with the same command, must
    continue from B's own newer checkpoint, keep it, and leave `latest` valid."""
    run(make_cfg(*SHORT, "train.total_env_steps=200"), tmp_path / "A")
    resume_a = f"resume={tmp_path / 'A'}"
    run(make_cfg(*SHORT, resume_a, "train.total_env_steps=400"), tmp_path / "B")  # "pre-empted"
    assert _state(tmp_path / "B")["step"] == 400
    with caplog.at_level(logging.INFO, logger="agent"):
        run(make_cfg(*SHORT, resume_a), tmp_path / "B")  # the requeue: same resume=A
    assert f"resuming from {tmp_path / 'B' / 'checkpoints' / '400'} at step 400" in caplog.text
    tensors, state, folder = ckpt.load_checkpoint(tmp_path / "B")  # `latest` is valid
    assert folder.name == "600" and state["step"] == 600
    # and the same result as resuming A into a fresh dir without interruption
    run(make_cfg(*SHORT, resume_a), tmp_path / "C")
    a, b = weights(tmp_path / "C"), weights(tmp_path / "B")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_never_refuses_a_run_dir_with_a_checkpoint(tmp_path):
    run(make_cfg(*SHORT, "train.total_env_steps=200", "resume=never"), tmp_path)
    with pytest.raises(ConfigError, match="resume=never"):
        run(make_cfg(*SHORT, "resume=never"), tmp_path)
    assert _state(tmp_path)["step"] == 200  # nothing written


def test_changed_lr_is_applied_on_resume(tmp_path):
    """Item 3: the restored optimizer takes the new lr (it used to keep the saved one)."""
    run(make_cfg(*SHORT, "train.total_env_steps=200"), tmp_path)
    run(make_cfg(*SHORT, "train.total_env_steps=300", "agent.lr=1e-4"), tmp_path)
    state = _state(tmp_path)
    assert [g["lr"] for g in state["learner"]["optimizer"]["param_groups"]] == [1e-4]
    assert state["config"]["agent"]["lr"] == 1e-4


@pytest.mark.parametrize(
    "override", ["env.num_envs=2", "agent.hidden=[64]", "agent.num_units=11", "seed=5"]
)
def test_unsafe_config_change_on_resume_is_refused(tmp_path, override):
    run(make_cfg(*SHORT, "train.total_env_steps=200"), tmp_path)
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=re.escape(key)) as err:
        run(make_cfg(*SHORT, override), tmp_path)
    assert "\n" not in str(err.value)
    assert _state(tmp_path)["step"] == 200


def test_second_writer_is_refused_and_stale_lock_record_is_taken_over(tmp_path):
    """Item 6: a run dir held by a live trainer refuses a second one in one line (exit 2); the
    record a dead holder left does not block the next run."""
    from dopa_rl.store.runlock import LOCK_FILE, run_dir_lock

    tmp_path.mkdir(exist_ok=True)
    with run_dir_lock(tmp_path):  # this process is "the first trainer"
        proc = subprocess.run(
            [*train_cmd(tmp_path), "train.total_env_steps=8"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
    assert "in use by pid" in lines[0] and "Traceback" not in proc.stderr
    assert not ckpt.has_checkpoint(tmp_path)
    (tmp_path / LOCK_FILE).write_text("pid 999999 on elsewhere\n")  # a dead holder's record
    run(make_cfg(*SHORT, "train.total_env_steps=8"), tmp_path)
    assert _state(tmp_path)["step"] == 8


def test_resume_without_replay_waits_for_learning_starts_again(tmp_path, caplog):
    """A checkpoint without replay (checkpoint.replay=false) refills from empty: no update
    until learning_starts new transitions, then the same ratio (issue 26 item 8)."""
    from dopa_rl.loop.run import updates_due

    cfg = make_cfg(*SHORT, "train.total_env_steps=200", "checkpoint.replay=false")
    run(cfg, tmp_path)
    first = _state(tmp_path)
    done_before = first["learner"]["updates"]
    assert done_before == updates_due(cfg.agent, 200) > 0
    with caplog.at_level(logging.INFO, logger="agent"):
        run(make_cfg(*SHORT, "train.total_env_steps=400", "checkpoint.replay=false"), tmp_path)
    assert "resume without replay: updates wait" in caplog.text
    state = _state(tmp_path)
    assert state["counters"]["refill_from"] == [200, done_before]
    # 200 new steps with learning_starts=100: the schedule of a fresh run's first 200 steps
    assert state["learner"]["updates"] == done_before + updates_due(cfg.agent, 200)
    assert state["learner"]["updates"] < updates_due(cfg.agent, 400)
