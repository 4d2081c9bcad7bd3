"""Test helpers: compose the Hydra config in-process and tiny training settings."""

from __future__ import annotations

import subprocess

from conftest import ROOT
from dopa_rl.envs import register_configs
from hydra import compose, initialize_config_dir

register_configs()

TINY = [
    "train.total_env_steps=600",
    "agent.learning_starts=100",
    "train.eval_every_env_steps=300",
    "train.eval_episodes=2",
    "train.checkpoint_every_env_steps=200",
    "agent.replay_size=1000",
    "agent.batch_size=16",
    "train.progress=false",
]


def make_cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def error_lines(stderr: str) -> list[str]:
    """The `error:` lines a command printed."""
    return [x for x in stderr.splitlines() if x.startswith("error:")]


def assert_one_line_exit_2(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    """A refusal as promised: exit 2, no traceback, one `error:` line holding each fragment."""
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    (line,) = error_lines(proc.stderr)
    for fragment in fragments:
        assert fragment in line, line
    return line
