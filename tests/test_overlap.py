"""The overlapped loop (agent/loop/overlap.py): exact replay ratio, same bookkeeping as the
synchronous loop, split env stepping, and the fixed-shape acting a CUDA graph captures."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from dopa_rl.core.errors import ConfigError
from dopa_rl.learn.compiled import act_fixed_shape
from dopa_rl.loop import hooks
from dopa_rl.loop.body import train_loop
from dopa_rl.loop.hooks import Hook
from dopa_rl.loop.overlap import overlap_enabled
from dopa_rl.loop.run import updates_due
from dopa_rl.loop.train import build, run
from helpers import TINY, make_cfg


class Record(Hook):
    """Records (env steps, updates, replay rows) after every iteration."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, int, int]] = []

    def after_step(self, run, state, divergence) -> None:
        self.seen.append((state.env_steps, run.learner.updates, len(run.replay)))


def loop(cfg, tmp_path) -> tuple[Record, object]:
    r = build(cfg, tmp_path)
    try:
        state, obs = hooks.restore_or_start(r, None)
        r.open_logger(0)
        record = Record()
        train_loop(r, state, obs, [record])
        return record, r
    finally:
        r.close()


@pytest.mark.parametrize("agent", ["qrdqn", "iqn"])
def test_replay_ratio_is_exact_after_every_iteration(tmp_path, agent):
    common = [f"agent={agent}", *TINY, "agent.train_every=3", "agent.gradient_steps=2"]
    record, r = loop(make_cfg(*common, "train.overlap=on"), tmp_path / "on")
    assert r.overlap
    a = r.cfg.agent
    for env_steps, updates, rows in record.seen:
        # every update owed by this agent step is done in its own iteration
        assert updates == updates_due(a, env_steps), env_steps
        assert rows == env_steps  # every step stored
    assert record.seen[-1][0] == r.cfg.train.total_env_steps
    sync, r_sync = loop(make_cfg(*common, "train.overlap=off"), tmp_path / "off")
    assert not r_sync.overlap
    assert [s[:2] for s in sync.seen] == [s[:2] for s in record.seen]


def test_overlapped_run_learns_and_checkpoints(tmp_path):
    summary = run(make_cfg(*TINY, "train.overlap=on"), tmp_path)
    assert summary["env_steps"] == 600 and summary["updates"] == updates_due(
        make_cfg(*TINY).agent, 600
    )
    assert (tmp_path / "checkpoints" / "latest").read_text().strip() == "600"


def test_overlap_modes():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert overlap_enabled("auto", cuda, "atari", False)
    assert not overlap_enabled("auto", cuda, "atari", True)  # deterministic: synchronous
    assert not overlap_enabled("auto", cpu, "atari", False)
    assert not overlap_enabled("auto", cuda, "control", False)
    assert overlap_enabled("on", cpu, "control", True)
    assert not overlap_enabled("off", cuda, "atari", False)
    with pytest.raises(ConfigError, match="train.overlap"):
        overlap_enabled("yes", cpu, "atari", False)


def test_fixed_shape_acting_matches_eager_acting():
    """What the acting graph captures draws what Learner.act draws (for ε > 0)."""
    r = build(make_cfg(*TINY, "device=cpu"), None)
    try:
        learner = r.learner
        obs = torch.randn(64, *r.env.observation_shape)
        for eps in (0.05, 0.5, 1.0):
            state = learner.generator.get_state()
            eager = learner.act(obs, eps)
            learner.generator.set_state(state)
            fixed = act_fixed_shape(learner, obs, torch.tensor(eps))
            assert torch.equal(eager, fixed), eps
    finally:
        r.close()


def test_atari_split_step_is_the_step():
    pytest.importorskip("ale_py")
    from dopa_rl.envs.atari import AtariVecEnv

    a, b = (AtariVecEnv("pong", 2, seed=5, max_episode_frames=400) for _ in range(2))
    oa, ob = a.reset(), b.reset()
    assert np.array_equal(oa, ob)
    rng = np.random.default_rng(0)
    for _ in range(120):
        actions = rng.integers(0, a.num_actions, 2)
        sa = a.step(actions)
        b.step_async(actions)
        actions[:] = 0  # the env keeps its own copy
        sb = b.step_wait()
        for f in ("obs", "reward", "terminated", "truncated", "final_obs"):
            assert np.array_equal(getattr(sa, f), getattr(sb, f)), f
        assert sa.episode_returns == sb.episode_returns
    with pytest.raises(RuntimeError, match="without step_async"):
        b.step_wait()
    a.close()
    b.close()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("sample_in_graph", [False, True])
def test_overlapped_cuda_atari_loop(tmp_path, sample_in_graph):
    """The CUDA path of the overlapped loop: pinned transfers, graphed acting, the device copy
    of the observations stored in frame replay, optionally sampling inside the update graph."""
    pytest.importorskip("ale_py")
    cfg = make_cfg(
        "env=atari",
        "env.game=pong",
        "env.num_envs=8",
        "env.eval_num_envs=1",
        "env.max_episode_frames=400",
        "agent=qrdqn",
        "agent.batch_size=32",
        "agent.train_every=4",
        "agent.replay_size=4000",
        "agent.learning_starts=400",
        "train.total_env_steps=1200",
        "train.eval_every_env_steps=100000",
        "train.eval_episodes=1",
        "train.checkpoint_every_env_steps=100000",
        "train.progress=false",
        "device=cuda",
        "train.overlap=auto",
        f"train.sample_in_graph={str(sample_in_graph).lower()}",
    )
    record, r = loop(cfg, tmp_path)
    assert r.overlap and r.act is not None and not r.act.eager  # the acting graph ran
    assert (r.sample_update is not None) == sample_in_graph
    for env_steps, updates, rows in record.seen:
        assert updates == updates_due(r.cfg.agent, env_steps)
        assert rows == min(env_steps, r.replay.rows * 8)
    batch = r.replay.sample(64)  # frames stored from the device copy are the host frames
    assert batch.obs.device.type == "cuda" and batch.obs.dtype == torch.uint8


def test_evaluation_runs_alongside_training(tmp_path):
    """The overlapped loop evaluates on its eval envs while training goes on: an evaluation
    spans several training iterations and is recorded under the step it started at."""
    from dopa_rl.loop.overlap import BackgroundEvaluation

    cfg = make_cfg(*TINY, "train.overlap=on", "train.eval_episodes=3")
    r = build(cfg, tmp_path)
    try:
        state, obs = hooks.restore_or_start(r, None)
        r.open_logger(0)
        evaluation = BackgroundEvaluation(cfg.train.eval_every_env_steps, 0)

        class Watch(Hook):
            def __init__(self) -> None:
                self.active_steps: list[int] = []
                self.results: list[dict] = []

            def after_step(self, run, state, divergence) -> None:
                if evaluation.active:
                    self.active_steps.append(state.env_steps)
                if state.last_eval is not None and state.last_eval not in self.results:
                    self.results.append(state.last_eval)

        watch = Watch()
        train_loop(r, state, obs, [evaluation, watch])
    finally:
        r.close()
    assert len(watch.active_steps) > 3  # training iterations went on during evaluations
    assert [e["env_step"] for e in watch.results] == [300, 600][: len(watch.results)]
    assert watch.results and all(np.isfinite(e["return_mean"]) for e in watch.results)
