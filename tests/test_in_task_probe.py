"""The in-task probe (agent/probes/in_task.py): cue states, cloned rollouts, the pipeline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import ROOT
from dopa_rl.algos import make_config
from dopa_rl.core.errors import ConfigError
from dopa_rl.learn.learner import Learner
from dopa_rl.probes.in_task import bin_outcomes, probe_in_task
from dopa_rl.probes.tabular import expectiles
from torch import nn

# A cue state after which one reward is drawn, at the step, from a known distribution.
VALUES = np.array([0.0, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0])
PROBS = np.array([0.1, 0.15, 0.2, 0.2, 0.15, 0.1, 0.1])
ITI_STEPS = 3


class CueRewardTask(gym.Env):  # type: ignore[type-arg]
    """ITI steps (no reward), a cue state, then a reward drawn when leaving the cue."""

    observation_space = gym.spaces.Box(0.0, 1.0, (ITI_STEPS + 1,), np.float32)
    action_space = gym.spaces.Discrete(1)

    def _obs(self) -> np.ndarray:
        return np.eye(ITI_STEPS + 1, dtype=np.float32)[self.t]

    def reset(self, *, seed=None, options=None):  # type: ignore[no-untyped-def]
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):  # type: ignore[no-untyped-def]
        if self.t < ITI_STEPS:
            self.t += 1
            return self._obs(), 0.0, False, False, {}
        reward = float(self.np_random.choice(VALUES, p=PROBS))  # drawn now: cloning keeps it open
        return self._obs(), reward, True, False, {}


class TableNet(nn.Module):
    """A tabular head: unit values per (one-hot) state, one action."""

    def __init__(self, table: np.ndarray, taus: np.ndarray) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.as_tensor(table, dtype=torch.float32))
        self.head = nn.Module()
        self.head.register_buffer("taus", torch.as_tensor(taus, dtype=torch.float32))

    def forward(self, obs: torch.Tensor, taus: torch.Tensor | None = None) -> torch.Tensor:
        return (obs.float() @ self.table)[:, None, :]


def _register() -> None:
    if "test/CueReward-v0" not in gym.registry:
        gym.register("test/CueReward-v0", entry_point=CueRewardTask)


def _tabular_agent(gamma: float = 0.9, n: int = 21) -> tuple[Learner, SimpleNamespace, np.ndarray]:
    """An expectile agent whose units hold the exact values of the task: at the cue state the
    τ-expectiles of the reward, at ITI step t the discounted ones (zero spread only at t
    where the reward is too far to matter: none here, so the cue's spread is the largest)."""
    _register()
    taus = (2 * np.arange(1, n + 1) - 1) / (2 * n)
    cue = expectiles(VALUES, PROBS, taus)
    table = np.stack([gamma ** (ITI_STEPS - t) * cue for t in range(ITI_STEPS + 1)])
    agent_cfg = make_config("erdqn", num_units=n, hidden=[4], gamma=gamma)
    learner = Learner(agent_cfg, (ITI_STEPS + 1,), 1, "cpu")
    learner.online = TableNet(table, taus)
    cfg = SimpleNamespace(
        agent=agent_cfg,
        env=SimpleNamespace(
            family="control", id="test/CueReward-v0", kwargs={}, imports=[], game=None
        ),
        probe=SimpleNamespace(response_noise="recorded", splits=50),
    )
    return learner, cfg, cue


def test_in_task_probe_recovers_the_expectiles_of_a_known_return_distribution() -> None:
    learner, cfg, truth = _tabular_agent()
    result = probe_in_task(
        learner, cfg, cues=1, episodes=1, rollouts=1400, noise=0.05, splits=30, parallel=8
    )
    [cue] = result["cues"]
    assert (cue["cue"]["episode"], cue["cue"]["step"]) == (0, ITI_STEPS)  # the widest head
    # the rollouts sample the task's distribution
    g = np.asarray(cue["true_distribution"]["values"])
    freq = np.array([np.mean(g == v) for v in VALUES])
    assert np.abs(freq - PROBS).max() < 0.04
    # reversal points estimated from noisy responses to sampled returns ≈ the expectiles
    rps = np.asarray(cue["reversal_points"], dtype=float)
    assert np.corrcoef(rps, truth)[0, 1] > 0.95
    assert np.median(np.abs(rps - truth)) < 0.6  # magnitudes are 1-2 apart
    taus = np.asarray(cue["asymmetries"], dtype=float)
    assert np.corrcoef(taus, cue["unit_taus"])[0, 1] > 0.9
    assert cue["split_half"]["p"] < 0.01 and cue["asymmetry_vs_reversal"]["r"] > 0.5
    # the decode is scored against the rollouts, and beats the moment-matched Gaussian
    decoded = cue["decoded"]
    assert decoded["wasserstein1"] < decoded["references"]["gaussian"]["wasserstein1"]


def test_bins_keep_ties_together() -> None:
    g = np.array([0.0] * 50 + [1.0] * 30 + [5.0] * 20)
    index, values, probs = bin_outcomes(g, 7)
    assert values.tolist() == [0.0, 1.0, 5.0] and probs.tolist() == [0.5, 0.3, 0.2]
    assert np.array_equal(values[index], g)


def test_a_family_that_cannot_clone_is_refused() -> None:
    import dataclasses

    from dopa_rl.envs.registry import get, register

    learner, cfg, _ = _tabular_agent()
    control = get("control")
    try:
        register(dataclasses.replace(control, can_clone=False, clone_state=None,
                                     restore_state=None))  # fmt: skip
        with pytest.raises(ConfigError, match="cannot clone and restore its state"):
            probe_in_task(learner, cfg, cues=1, rollouts=20)
    finally:
        register(control)


def _cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "probe.py"), *args],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT,
    )  # fmt: skip


def _train(run_dir: Path, *overrides: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train.py"), f"hydra.run.dir={run_dir}",
         "torch_threads=1", "train.progress=false", *overrides],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]


TINY_CARTPOLE = [
    "env=cartpole", "agent.hidden=[32]", "train.total_env_steps=1500",
    "agent.learning_starts=200", "train.eval_every_env_steps=1500", "train.eval_episodes=1",
]  # fmt: skip


def test_cartpole_end_to_end_with_baseline(tmp_path: Path) -> None:
    _train(tmp_path / "er", "agent=erdqn", *TINY_CARTPOLE)
    _train(tmp_path / "cl", "agent=classical", *TINY_CARTPOLE)
    out = tmp_path / "probe"
    proc = _cli(
        f"checkpoint={tmp_path / 'er'}", f"baseline={tmp_path / 'cl'}", f"out={out}",
        "cues=2", "episodes=1", "rollouts=42", "rollout_eps=0.3", "horizon=60", "splits=10",
        "states=16",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "in_task:erdqn" in proc.stdout and "in_task:classical" in proc.stdout
    result = json.loads((out / "probe.json").read_text())
    assert result["protocol"] == "in-task" and result["env_id"] == "CartPole-v1"
    assert result["extra_state_probe"]["label"].startswith("extra:")
    cues = [(c["cue"]["episode"], c["cue"]["step"]) for c in result["cues"]]
    skipped = [(c["episode"], c["step"]) for c in result["skipped_deterministic_cues"]]
    assert len(cues) + len(skipped) == 2
    base = result["baseline"]
    assert sorted(
        [(c["cue"]["episode"], c["cue"]["step"]) for c in base["cues"]]
        + [(c["episode"], c["step"]) for c in base["skipped_deterministic_cues"]]
    ) == sorted(cues + skipped)  # the same cue states for both agents
    for c in result["cues"]:
        assert len(c["reversal_points"]) == 51 and len(c["true_distribution"]["values"]) == 42
    if result["cues"]:
        assert (out / "probe_in_task_asymmetry_vs_reversal.png").is_file()
    # a lab-only setting is refused on a task, in one line
    bad = _cli(f"checkpoint={tmp_path / 'er'}", "trials=20", f"out={out}")
    assert bad.returncode == 2, bad.stderr
    assert sum(line.startswith("error:") for line in bad.stderr.splitlines()) == 1, bad.stderr
    assert "Traceback" not in bad.stderr


def test_cli_refuses_a_family_that_cannot_clone(tmp_path: Path) -> None:
    """A checkpoint of a family without cloning (its config says so): one error line, exit 2."""
    _train(tmp_path / "er", "agent=erdqn", *TINY_CARTPOLE)
    # the registry of families that can clone, with the control family taken off
    code = (
        "import sys, dataclasses; from dopa_rl.envs.registry import get, register; "
        "register(dataclasses.replace(get('control'), can_clone=False, clone_state=None, "
        "restore_state=None)); from dopa_rl.cli.probe import main; sys.exit(main(sys.argv[1:]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, f"checkpoint={tmp_path / 'er'}", f"out={tmp_path / 'q'}"],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "clone" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_rare_return_keeps_a_bin_of_its_own() -> None:
    g = np.array([3.0] + [7.0] * 104)
    index, values, probs = bin_outcomes(g, 7)
    assert values.tolist() == [3.0, 7.0] and index[0] == 0 and (index[1:] == 1).all()


@pytest.mark.parametrize("family", ["atari", "minatar"])
def test_image_task_in_task_probe_runs_on_cpu_with_a_few_steps(tmp_path: Path, family: str) -> None:
    """A tiny Atari (or MinAtar) run probed in its task: cue states from its episodes,
    rollouts of the cloned emulator with sticky actions, the pipeline (the returns of so short
    a horizon are often all zero, which the probe counts as skipped cues)."""
    pytest.importorskip("ale_py" if family == "atari" else "minatar")
    from dopa_rl.loop.train import run
    from dopa_rl.probes.report import probe_run
    from helpers import make_cfg

    env = (
        ["env=atari", "env.game=breakout", "env.max_episode_frames=400"]
        if family == "atari"
        else ["env=minatar", "env.game=breakout"]
    )
    overrides = [
        "agent=erdqn", *env, "env.num_envs=2", "env.eval_num_envs=1",
        "train.total_env_steps=40", "train.eval_every_env_steps=1000000",
        "train.checkpoint_every_env_steps=40", "train.progress=false",
        "agent.learning_starts=20", "agent.train_every=4", "agent.batch_size=8",
        "agent.replay_size=1000", "agent.num_units=9",
    ]  # fmt: skip
    run(make_cfg(*overrides), tmp_path)
    settings = {"cues": 2, "episodes": 1, "rollouts": 12, "horizon": 15, "bins": 3, "parallel": 4}
    result, _, cfg, _ = probe_run(tmp_path, splits=5, in_task=settings)
    assert result["protocol"] == "in-task" and result["env_id"] == "breakout"
    # the top decile of a short episode's states may hold a single state
    assert len(result["cues"]) + len(result["skipped_deterministic_cues"]) in (1, 2)
    for cue in result["cues"]:
        assert len(cue["reversal_points"]) == 9


def _tabular_classical(n: int, gamma: float = 0.9) -> tuple[Learner, SimpleNamespace]:
    """A classical population that holds the exact mean at every state: all units alike."""
    _register()
    mean = float(VALUES @ PROBS)
    table = np.stack([np.full(n, gamma ** (ITI_STEPS - t) * mean) for t in range(ITI_STEPS + 1)])
    agent_cfg = make_config("classical", num_units=n, hidden=[4], gamma=gamma)
    learner = Learner(agent_cfg, (ITI_STEPS + 1,), 1, "cpu")
    learner.online = TableNet(table, np.full(n, 0.5))
    cfg = SimpleNamespace(
        agent=agent_cfg, seed=0,
        env=SimpleNamespace(
            family="control", id="test/CueReward-v0", kwargs={}, imports=[], game=None
        ),
    )  # fmt: skip
    return learner, cfg


def test_detection_study_at_cue_states_separates_expectile_from_classical_units() -> None:
    """The study's in-task groups (issue 23 item 4): at the cue state of a task with a known
    7-valued return, exact expectile units are detected under the recorded protocol far more
    often than classical units, whose rate stays near the false-positive level."""
    from dopa_rl.probes.detection import detection_study, groups_from_learners

    runs = []
    for seed in (0, 1):
        learner, cfg, _ = _tabular_agent(n=41)
        cfg.seed = seed
        runs.append((f"er{seed}", learner, cfg))
        classical, ccfg = _tabular_classical(41)
        ccfg.seed = seed
        runs.append((f"cl{seed}", classical, ccfg))
    groups = groups_from_learners(runs, ["gradient"], cues=1)
    assert {g.name for g in groups} == {
        "erdqn/gradient@test/CueReward-v0",
        "classical/gradient@test/CueReward-v0",
    }
    er = next(g for g in groups if g.agent == "erdqn")
    [axis] = er.cue_axes[0]  # one cue state: the widest head, before the reward
    # 7 values at unequal frequencies: equal-count bins keep ties together, so 6 bins
    assert axis.size == 6 and np.all(np.diff(axis) > 0)
    assert er.extra["cue_states"]["per_seed_used"] == [1, 1]
    # exact expectile units sit on the rollouts' expectiles: in order, as wide, no offset
    fit = er.extra["units_vs_returns"]
    assert fit["order_r"]["min"] > 0.99
    assert 0.9 < fit["spread_ratio"]["median"] < 1.1 and abs(fit["offset"]["median"]) < 0.1
    content = detection_study(groups, draws=40, recorded=False, decode=False)
    res = content["groups"]
    p_er = res["erdqn/gradient@test/CueReward-v0"]["p_detect_both"]
    p_cl = res["classical/gradient@test/CueReward-v0"]["p_detect_both"]
    assert p_er > 0.5 and p_cl < 0.1, (p_er, p_cl)
    assert res["erdqn/gradient@test/CueReward-v0"]["task"] == "test/CueReward-v0"
    assert res["erdqn/gradient@test/CueReward-v0"]["vs_classical_p"] is not None
    # the saved form reads back to the same conditions
    from dopa_rl.probes.detection import UnitGroup

    back = UnitGroup.from_json(er.to_json())
    assert np.allclose(back.conditions(1)[0][3], er.conditions(1)[0][3])
