"""The supervised Monte-Carlo control (issue 36 item 2): returns of the agent's policy, a fresh
network of the same construction regressed on them, saved as a checkpoint that loads like the
agent's; near-calibrated on the known-distribution chain, and it runs on MinAtar."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT
from dopa_rl.cli.known_distribution import read_checkpoint
from dopa_rl.cli.mc_control import main
from dopa_rl.learn.evaluate import load_agent
from dopa_rl.learn.mc_control import MCControlSettings, discounted_returns, mc_control
from dopa_rl.loop.train import run
from dopa_rl.probes.calibration import seed_calibration
from helpers import make_cfg

SHORT = [
    "train.eval_episodes=1",
    "train.progress=false",
    "device=cpu",
    "torch_threads=1",
]


def test_discounted_returns_to_termination_over_a_horizon_and_after_a_truncation() -> None:
    r = np.array([1.0, 0.0, 2.0, 1.0])
    g, keep = discounted_returns(r, 0.5, None, terminated=True)
    assert keep == 4
    assert g.tolist() == pytest.approx([1 + 0.5 * 0 + 0.25 * 2 + 0.125, 0 + 1 + 0.25, 2.5, 1.0])
    g, keep = discounted_returns(r, 0.5, 2, terminated=True)
    assert keep == 4 and g.tolist() == pytest.approx([1.0, 1.0, 2.5, 1.0])
    # a truncated episode: only returns whose whole horizon was seen count
    assert discounted_returns(r, 0.5, 2, terminated=False)[1] == 2
    assert discounted_returns(r, 0.5, None, terminated=False)[1] == 0


@pytest.fixture(scope="module")
def chain_population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two ER-DQN members on the chain, briefly trained (the chain has one action: the
    policy, hence the Monte-Carlo returns, do not depend on training)."""
    root = tmp_path_factory.mktemp("chain_pop")
    cfg = make_cfg(
        "agent=erdqn",
        "env=known_chain",
        "train.population=2",
        "train.total_env_steps=480",
        "train.eval_every_env_steps=480",
        "train.checkpoint_every_env_steps=480",
        *SHORT,
    )
    run(cfg, root)
    return root


def test_the_control_is_calibrated_on_the_known_chain(
    chain_population: Path, tmp_path: Path
) -> None:
    """Against the exact expectiles at all five states: c within 0.1 of 1 and |offset| at
    most 0.12 SD (600 episodes: the sample's own error of the mean is about 0.04 SD)."""
    torch.set_num_threads(1)
    member = chain_population / "member_0_s1"
    settings = MCControlSettings(episodes=600, epochs=40)
    record = mc_control(member, tmp_path / "mc", settings)
    assert record["states"] == 600 * 5 and record["states_dropped"] == 0
    assert record["settings"]["seed"] == 1  # the run's seed
    assert record["epoch_losses"][-1] < record["epoch_losses"][0]
    read = read_checkpoint(tmp_path / "mc")
    assert read.group() == "erdqn MC control" and read.seed == 1
    cal, _ = seed_calibration(read.units)
    assert np.all(np.abs(cal.spread_ratio - 1) <= 0.1), cal.spread_ratio
    assert np.all(np.abs(cal.offset) <= 0.12), cal.offset
    # the same network and head as the agent's, freshly initialised and trained
    agent, _, _ = load_agent(member)
    control, cfg, _ = load_agent(tmp_path / "mc")
    assert cfg.agent.name == "erdqn"
    shapes = {k: v.shape for k, v in agent.online.state_dict().items()}
    assert {k: v.shape for k, v in control.online.state_dict().items()} == shapes
    assert torch.equal(control.taus, agent.taus)


@pytest.mark.slow  # subprocesses: 25-50 s on 2 busy cores
def test_the_script_makes_one_control_per_member_and_refuses_bad_keys(
    chain_population: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = str(ROOT / "scripts/mc_control.py")
    out = tmp_path / "controls"
    proc = subprocess.run(
        [sys.executable, script, f"checkpoint={chain_population}", f"out={out}", "episodes=20",
         "epochs=2", "horizon=3"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    for member in ("member_0_s1", "member_1_s2"):
        record = json.loads((out / member / "mc_control.json").read_text())
        assert record["states"] == 100 and record["settings"]["horizon"] == 3
    assert proc.stdout.count("Monte-Carlo control from 100 states") == 2
    for args, fragments in (
        (["epochz=2"], ("unknown key 'epochz'", "epochs")),
        (["episodes=0"], ("episodes must be a positive integer",)),
    ):
        with pytest.raises(SystemExit) as stop:
            main([f"checkpoint={chain_population}", f"out={out}", *args])
        assert stop.value.code == 2
        (line,) = capsys.readouterr().err.splitlines()
        assert line.startswith("error:") and all(f in line for f in fragments), line


def test_the_control_runs_on_minatar(tmp_path: Path) -> None:
    """Image observations, several actions, returns cut at a horizon: a Breakout agent's
    control trains and loads like the agent (the training-length study's use)."""
    pytest.importorskip("minatar")
    torch.set_num_threads(1)
    cfg = make_cfg(
        "env=minatar",
        "agent=qrdqn",
        "train.total_env_steps=200",
        "agent.learning_starts=100",
        "train.eval_every_env_steps=200",
        "train.checkpoint_every_env_steps=200",
        "env.max_episode_frames=100",
        *SHORT,
    )
    run(cfg, tmp_path / "run")
    settings = MCControlSettings(episodes=2, epochs=2, horizon=20, epsilon=0.1)
    record = mc_control(tmp_path / "run", tmp_path / "mc", settings)
    assert record["algo"] == "qrdqn" and record["states"] > 0
    control, cfg, _ = load_agent(tmp_path / "mc")
    agent, _, _ = load_agent(tmp_path / "run")
    assert type(control.online.torso) is type(agent.online.torso)
