"""A population's root folder is something a user can open (issue 25): one progress bar with
the members in it, member-prefixed log lines, a root summary.json across the members, and
evaluate, probe, aggregate and TensorBoard's --logdir all taking the root."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

LAB = [
    "experiment=dabney2020",
    "train.total_env_steps=2400",
    "train.eval_every_env_steps=1200",
    "train.log_every_env_steps=1200",
    "train.checkpoint_every_env_steps=2400",
    "probe.enabled=false",
    "train.population=2",
    "torch_threads=1",
]


def cli(module: str, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", f"dopa_rl.cli.{module}", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    root = tmp_path_factory.mktemp("population") / "pop"
    proc = cli("train", *LAB, f"hydra.run.dir={root}")
    assert proc.returncode == 0, proc.stderr
    return root, proc


def test_one_progress_bar_with_member_ids_and_prefixed_log_lines(trained) -> None:
    root, proc = trained
    renders = [r for r in re.split(r"[\r\n]", proc.stderr) if "step/s" in r or "steps/s" in r]
    assert renders, proc.stderr
    # every drawing of a bar is the population's one bar (named once it is drawn), and it
    # names the members
    assert all(r.lstrip().startswith("population of 2") for r in renders[1:]), renders[:3]
    assert all("/2400" in r for r in renders)  # one bar over the run's env steps
    assert any("m0/s1" in r and "m1/s2" in r for r in renders), renders[-1]
    logs = [line for line in proc.stdout.splitlines() if "env_step=" in line]
    assert logs and all(re.search(r"member_[01]_s[12]: env_step=", line) for line in logs)
    assert f"tensorboard --logdir {root}" in proc.stdout


def test_root_summary_names_the_members_and_tensorboard_finds_them(trained) -> None:
    root, _ = trained
    summary = json.loads((root / "summary.json").read_text())
    assert summary["population"] == 2 and summary["member_dirs"] == ["member_0_s1", "member_1_s2"]
    returns = summary["eval_returns"]
    assert summary["eval_return_min"] <= summary["eval_return_median"] <= summary["eval_return_max"]
    assert sorted(returns) == [summary["eval_return_min"], summary["eval_return_max"]]
    assert not (root / "checkpoints").exists()  # no empty folder that looks like a run's
    from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer

    runs = EventMultiplexer().AddRunsFromDirectory(str(root)).Runs()
    assert {"member_0_s1/tb", "member_1_s2/tb"} <= set(runs)


def test_evaluate_takes_the_root(trained, tmp_path: Path) -> None:
    root, _ = trained
    proc = cli("evaluate", f"checkpoint={root}", "episodes=2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
    assert [x["member"] for x in lines] == ["member_0_s1", "member_1_s2"]
    assert "2 members: median return" in proc.stdout
    for member in ("member_0_s1", "member_1_s2"):  # out/<member>/eval.json, like one run's
        assert json.loads((tmp_path / member / "eval.json").read_text())["episodes"] == 2
    from dopa_rl.api import load

    with pytest.raises(Exception, match="population of 2 members.*member_0_s1"):
        load(root)


def test_probe_takes_the_root(trained, tmp_path: Path) -> None:
    from dopa_rl.cli.probe import parse_args

    root, _ = trained
    # checkpoint= on a population's folder is the population mode
    assert parse_args([f"checkpoint={root}", "trials=10"])["population"] == str(root)
    proc = cli("probe", f"population={root}", "trials=10", "splits=10", f"out={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    assert "2 members: median" in proc.stdout
    saved = json.loads((tmp_path / "population_probe.json").read_text())
    assert len(saved["members"]) == 2
    assert "population=RUN" in cli("probe", "--help").stdout


def test_aggregate_counts_each_member_once(trained, tmp_path: Path) -> None:
    root, _ = trained
    proc = cli("aggregate", f"runs={root}", f"out={tmp_path / 'a.json'}", "reps=50")
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "a.json").read_text())
    assert result["used_runs"] == 2 and result["run_dirs"] == 2
    by_algo = next(iter(result["raw_returns"].values()))
    assert by_algo["erdqn"]["seeds"] == [1, 2]
