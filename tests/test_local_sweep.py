"""A local submitit sweep (issue 14 item 9) keeps its .submitit/ logs under the sweep dir, not in
the folder the user ran it from."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow


def test_local_launcher_writes_submitit_under_the_sweep_dir(tmp_path: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    cmd = [sys.executable, str(ROOT / "scripts" / "train.py"), "-m", "hydra/launcher=local"]
    cmd += ["seed=1", "train.total_env_steps=200", "agent.learning_starts=50"]
    cmd += ["train.eval_every_env_steps=100", "train.eval_episodes=1", "train.progress=false"]
    cmd += ["agent.batch_size=16", "hydra.sweep.dir=sweep"]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep"]
    assert (tmp_path / "sweep" / ".submitit").is_dir()
    (evals,) = (tmp_path / "sweep").glob("*/evals.csv")
    assert evals.read_text().count("\n") == 3  # header and the evaluations at 100 and 200
    assert not list((tmp_path / "sweep" / ".submitit").glob("%j*"))  # no literal %j folder
    # the launcher's process ends with each job's result line and the log folder
    assert "0_qrdqn_cartpole_s1: qrdqn on CartPole-v1" in done.stdout, done.stdout
    assert "job logs (submitit):" in done.stdout
