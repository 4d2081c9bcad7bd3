"""A user's own environment (issue 38): ``env.id=module:Id`` imports the module that registers
the id, as ``gymnasium.make`` does, and ``env.imports=[pkg, ...]`` imports packages that
register several. The run records both, so resuming, evaluating and probing it import them
again; a module that does not import, or an id still unknown after importing, is one
``error:`` line. The env is tests/user_envs/toy_env.py (``ToyChain-v0``), importable in the
subprocesses through PYTHONPATH, as a user's package would be."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT
from dopa_rl.core.errors import ConfigError
from dopa_rl.envs.control import GymVecEnv, check_env_id

USER_ENVS = ROOT / "tests" / "user_envs"
TINY_TOY = [
    "agent=erdqn", "env=cartpole", "agent.hidden=[32]", "agent.num_units=11",
    "agent.batch_size=32", "agent.learning_starts=100", "env.num_envs=2", "env.eval_num_envs=2",
    "train.eval_every_env_steps=200", "train.eval_episodes=2",
    "train.checkpoint_every_env_steps=200", "train.stop_when_solved=false",
    "train.progress=false", "torch_threads=1",
]  # fmt: skip


def _cli(script: str, *args: str, user_envs: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if user_envs:
        env["PYTHONPATH"] = str(USER_ENVS)
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), *args],
        capture_output=True, text=True, timeout=300, cwd=ROOT, env=env,
    )  # fmt: skip


def _one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, proc.stderr[-2000:]
    return lines[0]


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ER-DQN trained 400 env steps on ToyChain-v0, named as ``toy_env:ToyChain-v0``."""
    run_dir = tmp_path_factory.mktemp("toy") / "run"
    proc = _cli(
        "train.py", f"hydra.run.dir={run_dir}", "env.id=toy_env:ToyChain-v0",
        "train.total_env_steps=400", *TINY_TOY,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return run_dir


def test_a_user_env_trains_checkpoints_resumes_evaluates_and_is_probed(
    toy_run: Path, tmp_path: Path
) -> None:
    recorded = yaml.safe_load((toy_run / ".hydra" / "config.yaml").read_text())["env"]
    assert recorded["id"] == "toy_env:ToyChain-v0" and recorded["imports"] == []
    assert json.loads((toy_run / "config.json").read_text())["env"]["id"] == recorded["id"]
    summary = json.loads((toy_run / "summary.json").read_text())
    assert summary["env_id"] == "toy_env:ToyChain-v0" and summary["env_steps"] == 400
    assert (toy_run / "checkpoints" / "latest").read_text().strip()

    # resume: the same command with a longer budget continues from the run's own checkpoint
    proc = _cli(
        "train.py", f"hydra.run.dir={toy_run}", "env.id=toy_env:ToyChain-v0",
        "train.total_env_steps=600", *TINY_TOY,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "resuming from" in proc.stdout + proc.stderr
    assert json.loads((toy_run / "summary.json").read_text())["env_steps"] == 600

    # evaluate: the checkpoint's config names the module; evaluate imports it again
    proc = _cli("evaluate.py", f"checkpoint={toy_run}", "episodes=2", f"out={tmp_path / 'ev'}",
                "progress=false", "torch_threads=1")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    evaluation = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert evaluation["episodes"] == 2 and evaluation["env_id"] == "toy_env:ToyChain-v0"

    # the in-task probe: cue states from the agent's episodes, rollouts of the cloned toy env
    proc = _cli(
        "probe.py", f"checkpoint={toy_run}", f"out={tmp_path / 'probe'}", "cues=1",
        "episodes=1", "rollouts=24", "rollout_eps=0.3", "horizon=30", "splits=5", "bins=3",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "probe" / "probe.json").read_text())
    assert result["protocol"] == "in-task" and result["env_id"] == "toy_env:ToyChain-v0"
    assert len(result["cues"]) + len(result["skipped_deterministic_cues"]) == 1

    # the same run where the module cannot be imported: one line naming it, nothing written
    proc = _cli("evaluate.py", f"checkpoint={toy_run}", "episodes=1",
                f"out={tmp_path / 'ev2'}", user_envs=False)  # fmt: skip
    line = _one_error_line(proc)
    assert "toy_env" in line and "No module named 'toy_env'" in line and "PYTHONPATH" in line
    assert not (tmp_path / "ev2" / "eval.json").exists()


def test_env_imports_registers_the_ids_of_a_package(tmp_path: Path) -> None:
    """``env.imports=[toy_env] env.id=ToyChain-v0``: recorded, and the API's ``load`` imports
    the module again before it makes the env (here in this process, where it was never
    imported by the run)."""
    run_dir = tmp_path / "run"
    proc = _cli(
        "train.py", f"hydra.run.dir={run_dir}", "env.imports=[toy_env]", "env.id=ToyChain-v0",
        "train.total_env_steps=200", *TINY_TOY,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    recorded = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())["env"]
    assert recorded["imports"] == ["toy_env"] and recorded["id"] == "ToyChain-v0"
    code = (
        "import json, sys; import numpy as np; from dopa_rl.api import evaluate, load; "
        "assert 'toy_env' not in sys.modules; agent = load(sys.argv[1]); "
        "assert 'toy_env' in sys.modules; result = evaluate(sys.argv[1], 2, sys.argv[2]); "
        "print(json.dumps([result['episodes'], agent.predict(np.eye(5, dtype=np.float32)[0])]))"
    )
    env = dict(os.environ, PYTHONPATH=str(USER_ENVS))
    api = subprocess.run(
        [sys.executable, "-c", code, str(run_dir), str(tmp_path / "ev")],
        capture_output=True, text=True, timeout=300, cwd=ROOT, env=env,
    )  # fmt: skip
    assert api.returncode == 0, api.stderr[-2000:]
    episodes, action = json.loads(api.stdout.strip().splitlines()[-1])
    assert episodes == 2 and action in (0, 1)


def test_train_refuses_a_module_that_does_not_import(tmp_path: Path) -> None:
    proc = _cli("train.py", f"hydra.run.dir={tmp_path / 'run'}",
                "env.id=no_such_pkg:ToyChain-v0", *TINY_TOY)  # fmt: skip
    line = _one_error_line(proc)
    assert "env.id=no_such_pkg:ToyChain-v0" in line and "No module named 'no_such_pkg'" in line
    assert not (tmp_path / "run").exists()  # refused before Hydra creates the run dir


def test_import_errors_and_unknown_ids_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(USER_ENVS))
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "broken_envs.py").write_text("raise RuntimeError('needs a licence key')\n")
    with pytest.raises(ConfigError, match=r"env.imports: importing module 'broken_envs' "
                       r"failed: RuntimeError: needs a licence key"):  # fmt: skip
        check_env_id("ToyChain-v0", ["broken_envs"])
    (tmp_path / "needs_dep.py").write_text("import not_installed_dep\n")
    with pytest.raises(ConfigError, match="importing module 'needs_dep' failed: "
                       "ModuleNotFoundError: No module named 'not_installed_dep'"):  # fmt: skip
        check_env_id("needs_dep:X-v0")
    with pytest.raises(ConfigError, match="'my pkg' is not a Python module name"):
        check_env_id("X-v0", ["my pkg"])
    with pytest.raises(ConfigError, match="env.imports must be a list of module names"):
        check_env_id("X-v0", "toy_env")  # type: ignore[arg-type]
    # imported, but the id is still unknown: the error says what was imported and suggests
    with pytest.raises(ConfigError, match=r"unknown gymnasium id 'ToyChain-v9' \(not registered "
                       r"by importing toy_env; did you mean ToyChain-v0[,?]"):  # fmt: skip
        check_env_id("toy_env:ToyChain-v9")
    with pytest.raises(ConfigError, match="env.id must be 'Id' or 'module:Id'"):
        check_env_id(":ToyChain-v0")
    env = GymVecEnv("ToyChain-v0", 1, imports=["toy_env"])
    assert env.env_id == "ToyChain-v0" and env.num_actions == 2
    env.close()
