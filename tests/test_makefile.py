"""The Makefile's installs (issue 38 item 3): `make run` installs the package without extras
(the demo needs none), `make test` and `make lint` with the development extras, each behind its
own stamp, so `make run` after `make test` installs nothing. Checked with `make -n` (what make
would run) against a venv path that does not exist yet, then with the stamps in place."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def _plan(target: str, venv: Path) -> list[str]:
    proc = subprocess.run(
        ["make", "-n", "-C", str(ROOT), target, f"VENV={venv}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return [line for line in proc.stdout.splitlines() if not line.startswith("make")]


def _installs(plan: list[str]) -> list[str]:
    return [line for line in plan if "pip install" in line]


def test_run_installs_the_package_alone_and_test_adds_the_extras(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    run = _plan("run", venv)
    assert _installs(run)[-1].endswith('-e "."'), run  # no extras for the demo
    assert run[-1] == f"{venv}/bin/python scripts/demo.py"
    for target in ("test", "lint"):
        plan = _plan(target, venv)
        assert '-e ".[dev,' in _installs(plan)[-1]
        # the full install holds the core one: it leaves the core stamp too
        assert f"touch {venv}/.installed-stamp {venv}/.installed-core" in plan, plan

    # after `make run`: `make test` installs the extras; `make run` again installs nothing
    venv.mkdir()
    (venv / ".installed-core").touch()
    assert "[dev," in _installs(_plan("test", venv))[-1]
    assert _installs(_plan("run", venv)) == []

    # after `make test` (its recipe leaves both stamps): neither installs again
    (venv / ".installed-stamp").touch()
    assert _installs(_plan("run", venv)) == []
    assert _installs(_plan("test", venv)) == []
