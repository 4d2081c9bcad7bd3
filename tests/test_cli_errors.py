"""Bad input from the command line: one clear `error:` line, non-zero exit, no traceback."""

import subprocess
import sys

import pytest
from conftest import ROOT
from helpers import TINY, make_cfg

from agent.train import run


def cli(script: str, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "scripts" / script), *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["agent=qrdnq"], ["unknown agent 'qrdnq'", "qrdqn"]),
        (["env=cartpol"], ["unknown env 'cartpol'", "cartpole"]),
        (["env.id=CartPole-v9"], ["unknown gymnasium id 'CartPole-v9'", "CartPole-v1"]),
        (["train.total_env_steps=-5"], ["train.total_env_steps", "-5"]),
        (["train.eval_episodes=0"], ["train.eval_episodes"]),
        (["agent.eps_end=1.5"], ["agent.eps_end", "[0, 1]"]),
        (["agent.target_tau=0"], ["agent.target_tau", "(0, 1]"]),
        (["env.id=Pendulum-v1"], ["Box action space", "Discrete"]),
    ],
)
def test_train_rejects_bad_config(tmp_path, args, fragments):
    proc = cli("train.py", *args, f"hydra.run.dir={tmp_path}")
    assert_one_line_error(proc, *fragments)


def test_unknown_key_fails_at_start_up(tmp_path):
    proc = cli("train.py", "agent.learning_rate=1e-3", f"hydra.run.dir={tmp_path}")
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert "learning_rate" in proc.stderr


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    run(make_cfg(*TINY, "train.total_env_steps=200"), run_dir)
    return run_dir


def test_evaluate_missing_checkpoint(tmp_path):
    assert_one_line_error(cli("evaluate.py", f"checkpoint={tmp_path / 'nope'}"), "does not exist")


def test_evaluate_corrupt_checkpoint(trained_run, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(trained_run, copy)
    model = copy / "checkpoints" / "200" / "model.safetensors"
    model.write_bytes(model.read_bytes()[:100])  # truncated
    assert_one_line_error(cli("evaluate.py", f"checkpoint={copy}"), "model.safetensors")


def test_evaluate_writes_eval_json(trained_run, tmp_path):
    proc = cli("evaluate.py", f"checkpoint={trained_run}", "episodes=2", f"out={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    import json

    result = json.loads((tmp_path / "eval.json").read_text())
    assert len(result["returns"]) == 2 and result["algo"] == "qrdqn"


def test_resume_from_other_agent_is_one_line_error(trained_run, tmp_path):
    proc = cli("train.py", "agent=dqn", f"resume={trained_run}", f"hydra.run.dir={tmp_path}")
    assert_one_line_error(proc, "agent=qrdqn", "agent=dqn")
