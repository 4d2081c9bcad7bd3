"""State cloning (agent/envs/cloning.py): a restored env replays the identical rollout."""

from __future__ import annotations

import dataclasses
import threading
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
from dopa_rl.core.errors import ConfigError
from dopa_rl.envs.cloning import AleClone, CloneableEnv, CopyClone, make_cloneable_env
from dopa_rl.envs.control import GymVecEnv


def _rollout(env: CloneableEnv, actions: np.ndarray) -> list[tuple[np.ndarray, float, bool]]:
    out = []
    for a in actions:
        obs, reward, done = env.step(int(a))
        out.append((obs.copy(), reward, done))
        if done:
            break
    return out


def _same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        np.array_equal(x[0], y[0]) and x[1] == y[1] and x[2] == y[2]
        for x, y in zip(a, b, strict=True)
    )


def _minatar() -> CloneableEnv:
    pytest.importorskip("minatar")
    cfg = SimpleNamespace(
        family="minatar", game="breakout", sticky_action_prob=0.1, max_episode_frames=108_000,
        kwargs={},
    )  # fmt: skip
    return make_cloneable_env(cfg)


def _envs() -> dict[str, object]:
    return {
        "cartpole": lambda: CopyClone(GymVecEnv("CartPole-v1", 1)),
        "acrobot": lambda: CopyClone(GymVecEnv("Acrobot-v1", 1)),
        "minatar_breakout": _minatar,
        # sticky actions on (the Machado et al. 2018 protocol) and random no-ops at reset
        "ale_breakout_sticky": lambda: AleClone("breakout", seed=3, sticky_action_prob=0.25),
    }


@pytest.mark.parametrize("name", list(_envs()))
def test_restore_replays_identical_rollout(name: str) -> None:
    env = _envs()[name]()  # type: ignore[operator]
    env.reset(seed=1)
    rng = np.random.default_rng(0)
    for a in rng.integers(0, env.num_actions, 5):
        env.step(int(a))
    snapshot = env.clone()
    actions = rng.integers(0, env.num_actions, 150)
    first = _rollout(env, actions)
    second_obs = env.restore(snapshot)
    second = _rollout(env, actions)
    env.restore(snapshot)
    third = _rollout(env, actions)
    assert len(first) >= 2
    assert second_obs.shape == env.observation_shape
    assert _same(first, second) and _same(second, third)
    env.close()


@pytest.mark.parametrize("name", ["minatar_breakout", "ale_breakout_sticky"])
def test_reseeded_restores_sample_different_futures(name: str) -> None:
    """Stochastic tasks: the same state with fresh random streams gives different rollouts
    (what the in-task probe samples), each reproducible from its seed."""
    env = _envs()[name]()  # type: ignore[operator]
    env.reset(seed=2)
    snapshot = env.clone()
    actions = np.random.default_rng(1).integers(0, env.num_actions, 150)
    rollouts = []
    for k in range(6):
        env.restore(snapshot, reseed=k)
        rollouts.append(_rollout(env, actions))
    env.restore(snapshot, reseed=0)
    assert _same(_rollout(env, actions), rollouts[0])
    assert not all(_same(rollouts[0], r) for r in rollouts[1:])


def test_ale_clone_sees_what_training_sees() -> None:
    """Without sticky actions and no-ops (whose draws come from other generators) the
    cloneable emulator's observations and rewards equal the training AtariVecEnv's."""
    from dopa_rl.envs.atari import AtariVecEnv

    vec = AtariVecEnv("breakout", 1, sticky_action_prob=0.0, noop_max=0, clip_rewards=False)
    one = AleClone("breakout", seed=3, sticky_action_prob=0.0, noop_max=0, clip_rewards=False)
    assert np.array_equal(vec.reset(seed=3)[0], one.reset())
    for a in np.random.default_rng(0).integers(0, one.num_actions, 60):
        step = vec.step(np.array([a]))
        obs, reward, _ = one.step(int(a))
        assert np.array_equal(step.final_obs[0], obs) and step.reward[0] == reward
    vec.close()


class _LockedEnv(gym.Env):  # type: ignore[type-arg]
    """A gymnasium env whose state holds an object that cannot be copied."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def reset(self, *, seed=None, options=None):  # type: ignore[no-untyped-def]
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):  # type: ignore[no-untyped-def]
        return np.zeros(2, np.float32), 0.0, False, False, {}


def test_env_that_cannot_clone_says_so() -> None:
    if "test/Locked-v0" not in gym.registry:
        gym.register("test/Locked-v0", entry_point=_LockedEnv)
    with pytest.raises(ConfigError, match="cannot clone its state"):
        CopyClone(GymVecEnv("test/Locked-v0", 1))
    from dopa_rl.envs.registry import get, register

    control = get("control")
    try:
        register(dataclasses.replace(control, can_clone=False, clone_state=None,
                                     restore_state=None))  # fmt: skip
        with pytest.raises(ConfigError, match="cannot clone and restore its state"):
            make_cloneable_env(SimpleNamespace(family="control", id="CartPole-v1", kwargs={}))
    finally:
        register(control)


def test_time_limit_can_be_lifted_for_rollouts() -> None:
    env = CopyClone(GymVecEnv("Acrobot-v1", 1, kwargs={"max_episode_steps": 10}))
    env.reset(seed=0)
    snapshot = env.clone()
    limited = _rollout(env, np.zeros(50, dtype=int))
    env.restore(snapshot, time_limit=False)
    unlimited = _rollout(env, np.zeros(50, dtype=int))
    assert len(limited) == 10 and len(unlimited) == 50
    assert _same(limited[:9], unlimited[:9])
