"""Command-line behaviour a new user meets (issue 14 items 5 and 6): --help on every entry
point, evaluate's outputs in the current folder with summary.json's env_id, video=true on a
lab task, lunarlander without Box2D in one line."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT
from dopa_rl.cli.help import field_docs
from dopa_rl.core.config import TrainConfig
from dopa_rl.loop.train import run
from helpers import TINY, make_cfg


def cli(script: str, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "scripts" / script), *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_field_docs_come_from_the_config_comments() -> None:
    docs = field_docs(TrainConfig)
    assert "progress bar" in docs["progress"]
    assert "reward_threshold" in docs["solve_threshold"]


def test_train_help_lists_keys_with_meanings_and_hides_internal_groups() -> None:
    proc = cli("train.py", "agent=iqn", "--help")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    # the agent's own keys, at the composed values (the default env's tuned file sets this one)
    assert re.search(r"agent\.iqn_num_taus=\d+", out) and "samples for the loss" in out
    assert "agent.lr=" in out and "Adam learning rate" in out
    assert "torch_threads=0" in out and "-sc install=bash" in out
    assert "schema" not in out and "base_agent" not in out and "tuned=" not in out
    assert "env=  one of: acrobot" in out


def test_evaluate_aggregate_probe_answer_help() -> None:
    ev = cli("evaluate.py", "--help")
    assert ev.returncode == 0 and "checkpoint=" in ev.stdout and "episodes=10" in ev.stdout
    agg = cli("aggregate.py", "--help")
    assert agg.returncode == 0 and "score=posthoc" in agg.stdout
    from dopa_rl.cli.probe import main

    assert main(["--help"]) == 0


@pytest.fixture(scope="module")
def lab_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("lab")
    overrides = [*TINY, "probe.enabled=false", "agent.learning_starts=50"]
    run(make_cfg("agent=qrdqn", "env=variable_magnitude", *overrides), run_dir)
    return run_dir


def test_evaluate_writes_to_the_current_folder_with_the_summary_env_id(
    lab_run: Path, tmp_path: Path
) -> None:
    proc = cli("evaluate.py", f"checkpoint={lab_run}", "episodes=2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "eval.json").read_text())
    summary = json.loads((lab_run / "summary.json").read_text())
    assert result["env_id"] == summary["env_id"]
    assert not (lab_run / "eval.json").exists()  # the run dir is left as training wrote it


def test_video_on_a_lab_task_keeps_eval_json(lab_run: Path, tmp_path: Path) -> None:
    proc = cli("evaluate.py", f"checkpoint={lab_run}", "episodes=2", "video=true", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if "video unsupported" in ln]
    assert len(lines) == 1 and lines[0].startswith("warning:")
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["video"] is None and len(result["returns"]) == 2


def test_lunarlander_without_box2d_is_one_line(tmp_path: Path) -> None:
    try:
        import Box2D  # noqa: F401

        pytest.skip("Box2D is installed: env=lunarlander works")
    except ImportError:
        pass
    proc = cli("train.py", "env=lunarlander", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 2
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "dopa-rl[box2d]" in errors[0]
    assert "Traceback" not in proc.stderr


def test_train_help_says_how_sweeps_run() -> None:
    """Issue 38: -m runs its jobs one after another here; in parallel only with a launcher, and
    every launcher named is one conf/hydra/launcher/ configures."""
    from dopa_rl.cli.help import train_help

    text = train_help("dopa-train", [])
    sweeps = text.split("sweeps (-m", 1)[1].split("\n\n", 1)[0]
    assert "one after another" in sweeps
    named = set(re.findall(r"hydra/launcher=(\w+)", sweeps))
    configured = {p.stem for p in (ROOT / "conf" / "hydra" / "launcher").glob("*.yaml")}
    assert named and named <= configured, (named, configured)


def test_performance_profile_calls_its_threshold_a_score_threshold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 38: τ is the probes' asymmetry; the profile's axis is a score threshold."""
    import matplotlib.figure
    from dopa_rl.results.aggregate import performance_profiles

    labels: list[str] = []

    def keep_labels(fig: matplotlib.figure.Figure, *args: object, **kwargs: object) -> None:
        for ax in fig.axes:
            labels.extend([ax.get_xlabel(), ax.get_ylabel()])

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", keep_labels)
    result = {
        "atari_hns": {},
        "raw_returns": {"CartPole-v1": {"qrdqn": {"returns": [100.0, 200.0, 300.0]}}},
    }
    performance_profiles(result, tmp_path / "profiles.png")
    assert labels and all("τ" not in label for label in labels), labels
    assert any("threshold" in label for label in labels)
