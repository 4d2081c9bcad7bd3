"""scripts/bench/loop_overlap.py (run by gpu_check.sh) runs on the CPU and prints its figures."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def test_small_cpu_run_prints_every_figure(root, tmp_path) -> None:
    pytest.importorskip("ale_py")
    cmd = [sys.executable, "scripts/bench/loop_overlap.py", "--seconds", "2", "--rounds", "2"]
    cmd += ["--run-dir", str(tmp_path)]
    for o in ("agent.learning_starts=40", "agent.torso=mlp", "agent.hidden=[8]"):
        cmd += ["--override", o]
    done = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    records = [json.loads(x) for x in done.stdout.splitlines() if x.startswith("{")]
    figures = [r["figure"] for r in records]
    assert figures == ["loop", "loop", "overlap_gain", "parts"]
    sync, overlap = records[0], records[1]
    assert (sync["mode"], overlap["mode"]) == ("sync", "overlap")
    for r in (sync, overlap):
        assert r["frames_per_s"] > 0 and len(r["rounds_frames_per_s"]) == 2
    assert set(records[3]["ms_per_iteration"]) == {
        "env_step",
        "act",
        "replay_add",
        "sample",
        "update",
    }
