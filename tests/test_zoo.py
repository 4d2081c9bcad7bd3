"""The zoo (issue 38 item 1): every shipped agent re-evaluates within its recorded interval, and
``zoo:NAME`` opens one wherever a checkpoint is taken, writing nothing into the package."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT
from dopa_rl import api
from dopa_rl.cli import zoo as zoo_cli
from dopa_rl.core.errors import CheckpointError
from dopa_rl.learn.evaluate import evaluate as evaluate_checkpoint
from dopa_rl.store.zoo import INDEX, ZOO_DIR, find, load_index

ENTRIES = load_index()


def _make_zoo_specs() -> list[str]:
    spec = importlib.util.spec_from_file_location("make_zoo", ROOT / "scripts" / "make_zoo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_zoo"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return [s.name for s in module.specs()]


def _package_files() -> dict[str, float]:
    """Every file of the zoo's folder with its modification time: the package must not change."""
    return {str(p): p.stat().st_mtime for p in ZOO_DIR.rglob("*")}


def _cli(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), *args],
        capture_output=True, text=True, timeout=600, cwd=cwd,
    )  # fmt: skip


def test_the_index_holds_every_agent_make_zoo_builds_and_stays_small() -> None:
    names = [e.name for e in ENTRIES]
    assert names == _make_zoo_specs()
    for e in ENTRIES:
        assert e.command.startswith("dopa-train ") and f"agent={e.algo}" in e.command
        assert e.frames > 0 and e.made["git_commit"] and e.made["machine"]
        s = e.score
        assert len(s.returns) == s.episodes and s.interval[0] <= s.mean <= s.interval[1]
    total = sum(p.stat().st_size for p in ZOO_DIR.rglob("*") if p.is_file())
    assert total < 10 << 20, f"the zoo is {total / 2**20:.1f} MiB"
    # each agent's checkpoint holds the network only (no optimiser, target, replay)
    for e in ENTRIES:
        (folder,) = [p for p in (e.run_dir / "checkpoints").iterdir() if p.is_dir()]
        assert sorted(p.name for p in folder.iterdir()) == ["model.safetensors", "state.json"]


def test_package_data_ships_the_zoo_and_dopa_zoo_is_a_console_script() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["dopa-zoo"] == "dopa_rl.cli.zoo:entry"
    patterns = project["tool"]["setuptools"]["package-data"]["dopa_rl"]
    agent_dir = ROOT / "agent"
    shipped = {p for pattern in patterns for p in agent_dir.glob(pattern)}
    missing = [p for p in ZOO_DIR.rglob("*") if p.is_file() and p not in shipped]
    assert not missing, f"not in the package data: {missing[:3]}"


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
def test_every_zoo_agent_reevaluates_within_its_interval(entry, tmp_path: Path) -> None:
    """The recorded protocol (episodes, seed, episode cap, ε = eps_eval) again. On the machine
    that recorded it this reproduces the returns exactly (fixed seeds, CPU); elsewhere rounding
    may flip a near-tied greedy action, so the mean must fall within the recorded 95% interval."""
    s = entry.score
    result = api.evaluate(
        f"zoo:{entry.name}", episodes=s.episodes, seed=s.seed, out=tmp_path, device="cpu",
        max_episode_steps=s.max_episode_steps,
    )  # fmt: skip
    assert result["seed"] == s.seed and result["epsilon"] == s.epsilon
    assert s.interval[0] <= result["return_mean"] <= s.interval[1], (
        f"{entry.name}: {result['return_mean']} outside {s.interval} (recorded {s.mean})"
    )


def test_api_load_of_a_zoo_agent_acts_and_evaluates_into_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _package_files()
    monkeypatch.chdir(tmp_path)
    agent = api.load("zoo:cartpole/qrdqn")
    assert agent.algo == "qrdqn" and agent.num_actions == 2
    assert agent.predict([0.0, 0.0, 0.05, 0.0]) in (0, 1)
    result = agent.evaluate(episodes=2)
    assert result["eval_json"] == str(tmp_path / "eval.json") and result["episodes"] == 2
    # the library's own default (the run dir) is the current folder for a zoo agent too
    (tmp_path / "eval.json").unlink()
    evaluate_checkpoint("zoo:cartpole/qrdqn", episodes=1)
    assert (tmp_path / "eval.json").is_file()
    assert _package_files() == before


def test_an_unknown_zoo_name_is_one_line_naming_the_close_ones(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"did you mean zoo:cartpole/qrdqn\b"):
        api.load("zoo:cartpol/qrdqn")
    with pytest.raises(CheckpointError, match=r"the zoo holds zoo:variable_magnitude/erdqn, "):
        find("zoo:nothing-like-it")
    proc = _cli("evaluate.py", "checkpoint=zoo:minatar/breakout/erdq", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    # (a loaded machine may add the thread note of agent/core/threads.py before it)
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("error:")]
    assert line.startswith(
        "error: unknown zoo agent 'zoo:minatar/breakout/erdq'; did you mean "
        "zoo:minatar/breakout/erdqn"
    ) and line.endswith("(list them: dopa-zoo)")
    assert list(tmp_path.iterdir()) == []


def test_dopa_evaluate_and_probe_take_a_zoo_name_and_write_in_the_current_folder(
    tmp_path: Path,
) -> None:
    before = _package_files()
    proc = _cli("evaluate.py", "checkpoint=zoo:cartpole/erdqn", "episodes=1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((tmp_path / "eval.json").read_text())["algo"] == "erdqn"
    # the in-task protocol on a MinAtar zoo agent, tiny sizes; out= defaults to ./zoo_..._probe
    proc = _cli(
        "probe.py", "checkpoint=zoo:minatar/breakout/erdqn", "cues=2", "episodes=1",
        "rollouts=30", "horizon=40", "splits=5", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "zoo_minatar_breakout_erdqn_probe" / "probe.json").read_text())
    assert result["protocol"] == "in-task" and result["env_id"] == "breakout"
    assert _package_files() == before


def test_dopa_zoo_lists_every_agent_and_its_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert zoo_cli.main([]) == 0
    out = capsys.readouterr().out
    for e in ENTRIES:
        assert f"zoo:{e.name}" in out and e.command in out
        assert f"[{e.score.interval[0]:.2f}, {e.score.interval[1]:.2f}]" in out
    assert zoo_cli.main(["cartpole/qrdqn"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["name"] == "cartpole/qrdqn" and record["score"]["returns"]
    with pytest.raises(SystemExit) as stop:
        zoo_cli.main(["cartpole/qrdq"])
    assert stop.value.code == 2
    assert capsys.readouterr().err.startswith("error: unknown zoo agent 'zoo:cartpole/qrdq'")
    assert INDEX.is_file()


def test_dopa_enjoy_names_a_zoo_agents_video_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("moviepy")
    from dopa_rl.cli import enjoy

    before = _package_files()
    monkeypatch.chdir(tmp_path)
    assert enjoy.main(["zoo:cartpole/qrdqn", "window=false"]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["enjoy_zoo_cartpole_qrdqn_ep0.mp4"]
    assert _package_files() == before


def test_resuming_from_a_zoo_agent_is_one_line(tmp_path: Path) -> None:
    proc = _cli(
        "train.py", "agent=qrdqn", "env=cartpole", "resume=zoo:cartpole/qrdqn",
        f"hydra.run.dir={tmp_path / 'run'}", "train.progress=false", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("error:")]
    assert "a zoo agent holds its network only" in line and "dopa-zoo cartpole/qrdqn" in line


def test_a_broken_install_of_the_zoo_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dopa_rl.store import zoo

    copy = tmp_path / "zoo"
    shutil.copytree(ZOO_DIR / "cartpole", copy / "cartpole")
    shutil.copy(INDEX, copy / "zoo.json")
    monkeypatch.setattr(zoo, "ZOO_DIR", copy)
    monkeypatch.setattr(zoo, "INDEX", copy / "zoo.json")
    (model,) = (copy / "cartpole" / "qrdqn").rglob("model.safetensors")
    model.write_bytes(model.read_bytes()[:100])  # a truncated shipped file
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        api.load("zoo:cartpole/qrdqn")
    (copy / "zoo.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"the zoo's index '.*zoo.json' is corrupt"):
        api.load("zoo:cartpole/qrdqn")
    (copy / "zoo.json").unlink()
    with pytest.raises(CheckpointError, match=r"zoo.json' is missing \(a broken install\)"):
        api.load("zoo:cartpole/qrdqn")
