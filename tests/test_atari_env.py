"""AtariVecEnv: layout, same-step autoreset, truncation, sticky actions, reward clipping."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ale_py")

from ale_py.env import AtariEnv  # noqa: E402
from dopa_rl.core.errors import ConfigError  # noqa: E402
from dopa_rl.envs.atari import AtariVecEnv, rom_name  # noqa: E402

# Pong's minimal action set: NOOP, FIRE, RIGHT (up), LEFT (down), RIGHTFIRE, LEFTFIRE.
PONG_UP = 2


def _run(env: AtariVecEnv, actions: np.ndarray, seed: int) -> list:
    """Reset with ``seed`` and step through ``actions`` [T, E]; returns the VecSteps."""
    env.reset(seed=seed)
    return [env.step(a) for a in actions]


def test_shapes_dtypes_and_stack_layout() -> None:
    env = AtariVecEnv("Pong", 3, seed=0)
    assert env.game == "pong" and env.env_id == "ALE/Pong"
    assert env.observation_shape == (4, 84, 84) and env.observation_dtype == np.uint8
    assert env.num_actions == 6 and env.frames_per_step == 4 and env.reward_threshold is None
    obs = env.reset()
    assert obs.shape == (3, 4, 84, 84) and obs.dtype == np.uint8
    # A fresh stack holds one screen (newest, last) behind zero padding.
    assert not obs[:, :3].any() and obs[:, 3].any()
    for _ in range(5):
        step = env.step(np.zeros(3, dtype=np.int64))
        assert step.obs.shape == (3, 4, 84, 84) and step.obs.dtype == np.uint8
        assert step.reward.dtype == np.float32 and step.reward.shape == (3,)
        assert step.terminated.dtype == bool and step.truncated.dtype == bool
        # Frames are ordered oldest → newest: each step shifts the stack by one.
        np.testing.assert_array_equal(step.obs[:, :3], obs[:, 1:])
        np.testing.assert_array_equal(step.final_obs, step.obs)
        obs = step.obs
    assert env.render_frame() is None
    env.close()


def test_truncation_same_step_autoreset() -> None:
    # 40 emulator frames = 10 agent steps of 4 frames, counted after the reset no-ops.
    env = AtariVecEnv("pong", 2, seed=1, max_episode_frames=40)
    prev = env.reset()
    for t in range(1, 11):
        step = env.step(np.full(2, PONG_UP))
        if t < 10:
            assert not step.truncated.any() and not step.episode_returns
            prev = step.obs
    assert step.truncated.all() and not step.terminated.any()
    assert step.episode_lengths == [10, 10]
    assert step.episode_returns == [0.0, 0.0]
    # final_obs continues the old episode's stack; obs is the new episode's first stack.
    np.testing.assert_array_equal(step.final_obs[:, :3], prev[:, 1:])
    assert not step.obs[:, :3].any() and step.obs[:, 3].any()
    assert not np.array_equal(step.final_obs, step.obs)
    # The next episode counts from zero again.
    for _ in range(10):
        step = env.step(np.zeros(2, dtype=np.int64))
    assert step.truncated.all() and step.episode_lengths == [10, 10]


def test_terminal_reward_and_unclipped_return_match_plain_ale() -> None:
    """A whole Pong game: our return equals ALE's single env under the same actions."""
    actions = np.random.default_rng(0).integers(0, 6, 3000)
    env = AtariVecEnv("pong", 1, seed=0, sticky_action_prob=0.0, noop_max=0)
    env.reset()
    total_clipped, finished = 0.0, None
    for t, a in enumerate(actions):
        step = env.step(np.array([a]))
        total_clipped += float(step.reward[0])
        if step.terminated[0]:
            finished = (t + 1, step)
            break
    assert finished is not None, "a random Pong game should end within 3000 steps"
    length, step = finished
    assert step.episode_lengths == [length]
    assert step.episode_returns == [total_clipped]  # Pong rewards are ±1, so clipping is a no-op
    reference = AtariEnv("pong", frameskip=4, repeat_action_probability=0.0)
    reference.reset(seed=0)
    ref_return, ref_length = 0.0, 0
    for a in actions:
        _, r, term, trunc, _ = reference.step(int(a))
        ref_return += r
        ref_length += 1
        if term or trunc:
            break
    assert (ref_length, ref_return) == (length, step.episode_returns[0])


def test_clipped_training_reward_and_unclipped_episode_returns() -> None:
    # Cap episodes at 150 agent steps so that each env finishes one within the run.
    actions = np.random.default_rng(1).integers(0, 6, (160, 1))
    kwargs = dict(seed=5, max_episode_frames=600)
    clipped = _run(AtariVecEnv("space_invaders", 1, **kwargs), actions, seed=5)
    raw = _run(AtariVecEnv("space_invaders", 1, clip_rewards=False, **kwargs), actions, seed=5)
    raw_rewards = np.stack([s.reward for s in raw])
    clipped_rewards = np.stack([s.reward for s in clipped])
    assert raw_rewards.max() > 1  # space invaders pays 5–30 points per alien
    assert clipped_rewards.min() >= -1 and clipped_rewards.max() <= 1
    np.testing.assert_array_equal(clipped_rewards, np.clip(raw_rewards, -1, 1))
    # Episode returns are the raw score in both, once per finished episode.
    done = np.stack([s.terminated | s.truncated for s in raw])
    returns = [r for s in clipped for r in s.episode_returns]
    assert returns == [r for s in raw for r in s.episode_returns]
    assert len(returns) == done.sum() == 1 and returns[0] > 1
    expected, acc = [], np.zeros(1)
    for rewards, ended in zip(raw_rewards, done, strict=True):
        acc += rewards
        expected += acc[ended].tolist()
        acc[ended] = 0
    assert returns == expected


def test_episodic_life_ends_learning_episodes_but_not_games() -> None:
    """Same seed and actions: life losses add terminations, the games themselves are unchanged."""
    actions = np.random.default_rng(2).integers(0, 4, (300, 1))  # two games end by step 273
    plain = _run(AtariVecEnv("breakout", 1, seed=7), actions, seed=7)
    lives = _run(AtariVecEnv("breakout", 1, seed=7, episodic_life=True), actions, seed=7)
    game_returns = [r for s in plain for r in s.episode_returns]
    assert len(game_returns) >= 2
    assert [r for s in lives for r in s.episode_returns] == game_returns
    assert [n for s in lives for n in s.episode_lengths] == [
        n for s in plain for n in s.episode_lengths
    ]
    extra = 0
    for p, q in zip(plain, lives, strict=True):
        np.testing.assert_array_equal(p.obs, q.obs)
        np.testing.assert_array_equal(p.final_obs, q.final_obs)
        assert (q.terminated >= p.terminated).all()
        life_lost = q.terminated & ~p.terminated
        extra += int(life_lost.sum())
        # A life loss ends the learning episode without a reset: the game plays on.
        np.testing.assert_array_equal(q.final_obs[life_lost], q.obs[life_lost])
    assert extra >= 4 * len(game_returns)  # Breakout has 5 lives per game


def test_sticky_actions_reach_ale() -> None:
    """With p = 1 ALE repeats the reset action (NOOP) forever, so our actions are ignored.

    The vector env has no getter for ALE's ``repeat_action_probability``; this checks its effect.
    Without no-ops both envs start from the same screen; env 0 presses UP, env 1 does nothing.
    """
    actions = np.tile(np.array([PONG_UP, 0]), (60, 1))

    def frames(prob: float) -> np.ndarray:
        env = AtariVecEnv("pong", 2, seed=3, sticky_action_prob=prob, noop_max=0)
        return np.stack([s.obs for s in _run(env, actions, seed=3)])

    ignored = frames(1.0)
    np.testing.assert_array_equal(ignored[:, 0], ignored[:, 1])
    obeyed = frames(0.0)
    assert not np.array_equal(obeyed[:, 0], obeyed[:, 1])
    assert AtariVecEnv("pong", 1).sticky_action_prob == 0.25  # our default, not ALE's 0.0


def test_seeding_is_reproducible_per_env() -> None:
    actions = np.random.default_rng(4).integers(0, 6, (50, 2))
    env = AtariVecEnv("pong", 2)
    a = _run(env, actions, seed=11)
    b = _run(env, actions, seed=11)  # reseeding restarts every env's random streams
    np.testing.assert_array_equal(a[-1].obs, b[-1].obs)
    # env i gets seed + i: env 1 of seed 11 is env 0 of seed 12.
    c = _run(AtariVecEnv("pong", 1), actions[:, 1:], seed=12)
    np.testing.assert_array_equal(a[-1].obs[1], c[-1].obs[0])


def test_render_frame_follows_env_zero() -> None:
    env = AtariVecEnv("breakout", 2, seed=7, episodic_life=True, render=True)
    env.reset()
    first = env.render_frame()
    assert first is not None and first.shape == (210, 160, 3) and first.dtype == np.uint8
    # Env 0 replays the episodic-life run above: its first game ends at step 127.
    actions = np.random.default_rng(2).integers(0, 4, (140, 2))
    actions[:, 0] = np.random.default_rng(2).integers(0, 4, (300, 1))[:140, 0]
    games = 0
    # The env raises if the render emulator ends a game at a different step from env 0.
    for a in actions:
        step = env.step(a)
        games += int(step.terminated[0] or step.truncated[0])
    assert games >= 2  # at least one life loss and the game over
    assert not np.array_equal(env.render_frame(), first)


def test_unknown_game_lists_close_matches() -> None:
    assert rom_name("SpaceInvaders") == "space_invaders"
    assert rom_name("ALE/MsPacman-v5") == "ms_pacman"
    with pytest.raises(ConfigError, match=r"'spaceinvader'.*space_invaders") as err:
        AtariVecEnv("spaceinvader", 1)
    assert "\n" not in str(err.value)


def test_bad_values_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        AtariVecEnv("pong", 4, batch_size=2)
    with pytest.raises(ConfigError, match="sticky_action_prob"):
        AtariVecEnv("pong", 1, sticky_action_prob=1.5)
