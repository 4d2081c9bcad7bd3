"""Pre-emption (SIGTERM → checkpoint → exit 3 → rerun resumes bit-exactly) and the NaN guard."""

import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import ROOT
from helpers import TINY, make_cfg
from safetensors.torch import load_file

from agent import checkpoint as ckpt
from agent.errors import EXIT_PREEMPTED, TrainingDiverged
from agent.learner import Learner
from agent.train import run

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
