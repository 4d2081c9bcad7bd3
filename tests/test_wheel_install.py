"""Acceptance (issue 14): a user who only pip-installed the wheel, in an empty folder, can
train, evaluate, aggregate and probe (the shipped recorded cells, by name) with the console
scripts. The wheel is built here and installed into a fresh venv that reuses this
environment's packages (a .pth to its site-packages, ``--no-deps``), so no download happens."""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def sh(cmd: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    built = sh(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation"]
        + ["-w", str(tmp / "dist"), "-q"],
        cwd=tmp,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp / "dist").glob("dopa_rl-*.whl")
    venv = tmp / "venv"
    made = sh([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], cwd=tmp)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    purelib = sh([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], tmp)
    # reuse this environment's torch, gymnasium, hydra…: its site-packages, after the venv's own
    parents = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (Path(purelib.stdout.strip()) / "parent_env.pth").write_text("\n".join(parents) + "\n")
    installed = sh(
        [str(python), "-m", "pip", "install", "--no-deps", "--ignore-installed", "-q", str(wheel)],
        cwd=tmp,
    )
    assert installed.returncode == 0, installed.stderr
    return venv


def test_console_scripts_from_an_empty_folder(venv: Path, tmp_path: Path) -> None:
    bin_dir = venv / "bin"
    work = tmp_path / "empty"
    work.mkdir()
    where = sh([str(bin_dir / "python"), "-c", "import dopa_rl; print(dopa_rl.__file__)"], work)
    assert str(venv) in where.stdout, "the wheel's dopa_rl, not the checkout's"
    # the folder agent/ installs as dopa_rl only: no top-level `agent` for a user's to clash with
    leaked = sh([str(bin_dir / "python"), "-c", "import agent"], work)
    assert leaked.returncode != 0 and "No module named 'agent'" in leaked.stderr

    helped = sh([str(bin_dir / "dopa-train"), "--help"], work, timeout=300)
    assert helped.returncode == 0 and "agent.lr=" in helped.stdout, helped.stderr
    assert "schema" not in helped.stdout

    sweep = work / "sweep"
    for seed in (1, 2, 3):
        trained = sh(
            [str(bin_dir / "dopa-train"), "agent=qrdqn", "env=cartpole", f"seed={seed}"]
            + ["train.total_env_steps=300", "agent.learning_starts=100"]
            + ["train.eval_every_env_steps=150", "train.eval_episodes=2", "train.progress=false"]
            + ["agent.batch_size=16", f"hydra.run.dir={sweep}/s{seed}"],
            work,
        )
        assert trained.returncode == 0, trained.stderr[-2000:]
    summary = json.loads((sweep / "s1" / "summary.json").read_text())
    assert summary["env_steps"] == 300 and (sweep / "s1" / "evals.csv").is_file()

    evaluated = sh(
        [str(bin_dir / "dopa-evaluate"), f"checkpoint={sweep / 's1'}", "episodes=2"], work
    )
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    result = json.loads((work / "eval.json").read_text())  # the current folder
    assert result["env_id"] == summary["env_id"] == "CartPole-v1"

    aggregated = sh([str(bin_dir / "dopa-aggregate"), f"runs={sweep}", "reps=100"], work)
    assert aggregated.returncode == 0, aggregated.stderr[-2000:]
    assert (work / "aggregate_curves.csv").is_file() and (work / "aggregate_curves.png").is_file()
    assert "warning" not in aggregated.stderr  # 3 seeds

    probe_help = sh([str(bin_dir / "dopa-probe"), "--help"], work)
    assert probe_help.returncode == 0 and "data=dabney2020" in probe_help.stdout
    assert "population=RUN" in probe_help.stdout
    for script, word in (("dopa-demo", "dopa-demo"), ("dopa-enjoy", "dopa-enjoy")):
        helped = sh([str(bin_dir / script), "--help"], work)
        assert helped.returncode == 0 and word in helped.stdout, helped.stderr[-2000:]
    probed = sh([str(bin_dir / "dopa-probe"), "data=dabney2020", "splits=10"], work)
    assert probed.returncode == 0, probed.stderr[-2000:]
    # the shipped recordings by name; the output in the current folder, not in the package
    assert json.loads((work / "dabney2020_probe" / "probe.json").read_text())["cells"]


def test_the_zoo_ships_in_the_wheel(venv: Path, tmp_path: Path) -> None:
    """Issue 38 item 1: on an install with no training, a zoo agent evaluates from the API and
    the command line; dopa-zoo lists the agents; nothing is written into the package."""
    bin_dir = venv / "bin"
    listed = sh([str(bin_dir / "dopa-zoo")], tmp_path)
    assert listed.returncode == 0 and "zoo:minatar/breakout/erdqn" in listed.stdout, listed.stderr
    code = (
        "import dopa_rl, dopa_rl.api as api; "
        "print(api.load('zoo:cartpole/qrdqn').evaluate(episodes=1)['return_mean']); "
        "print(dopa_rl.__file__)"
    )
    loaded = sh([str(bin_dir / "python"), "-c", code], tmp_path)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    package = Path(loaded.stdout.splitlines()[-1]).parent
    assert str(venv) in str(package) and (package / "zoo" / "zoo.json").is_file()
    assert json.loads((tmp_path / "eval.json").read_text())["algo"] == "qrdqn"
    evaluated = sh(
        [str(bin_dir / "dopa-evaluate"), "checkpoint=zoo:variable_magnitude/erdqn", "episodes=2",
         "out=lab"], tmp_path,
    )  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert not [p for p in (package / "zoo").rglob("eval.json")]
