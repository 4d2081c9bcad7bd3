"""scripts/bench/throughput.py runs on the CPU with --small and prints one JSON line per figure."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest


def test_small_cpu_run_prints_every_figure(root) -> None:
    pytest.importorskip("ale_py")
    cmd = [sys.executable, "scripts/bench/throughput.py", "--small", "--seconds", "2"]
    cmd += ["--device", "cpu"]
    done = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    by_figure: dict[str, list[dict]] = {}
    for r in records:
        by_figure.setdefault(r["figure"], []).append(r)
    assert set(by_figure) == {"setup", "env", "learner", "end_to_end", "cleanrl", "speedup"}
    assert by_figure["setup"][0]["device"] == "cpu"
    assert [r["mode"] for r in by_figure["learner"]] == ["eager"]  # no CUDA, no compile
    assert by_figure["end_to_end"][0]["samples_per_agent_step"] == 8
    rates = [r[k] for r in records for k in ("frames_per_s", "updates_per_s", "ratio") if k in r]
    assert rates and all(math.isfinite(x) and x > 0 for x in rates)
