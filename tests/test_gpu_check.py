"""scripts/bench/gpu_check.sh: valid shell, and without CUDA one clear line and a clean exit."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

SCRIPT = "scripts/bench/gpu_check.sh"


def test_script_parses_and_passes_shellcheck(root) -> None:
    subprocess.run(["bash", "-n", SCRIPT], cwd=root, check=True)
    if shutil.which("shellcheck"):
        done = subprocess.run(["shellcheck", SCRIPT], cwd=root, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA exit")
def test_without_cuda_it_says_so_and_measures_nothing(root, tmp_path) -> None:
    env = {**os.environ, "OUT": str(tmp_path / "out"), "PYTHON": sys.executable}
    env["SITE"] = str(tmp_path / "site")
    done = subprocess.run(
        ["bash", SCRIPT, str(tmp_path / "no-wheels")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1 and "CUDA is not available" in lines[0], done.stdout
    figures = (tmp_path / "out" / "figures.jsonl").read_text().splitlines()
    assert [json.loads(x) for x in figures] == [{"figure": "cuda", "available": False}]
    assert not (tmp_path / "site").exists()  # nothing installed
