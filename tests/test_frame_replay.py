"""FrameReplayBuffer returns exactly the batches ReplayBuffer returns for the same stream.

Both buffers draw the same random numbers from identically seeded generators, so equal batches
mean equal stacks, n-step rewards, discounts and next observations at the same sampled steps.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from dopa_rl.replay.buffer import Batch, ReplayBuffer
from dopa_rl.replay.frames import FrameReplayBuffer

GAMMA = 0.9
# every test that takes `device` also runs on CUDA under `pytest -m cuda` (gpu_check.sh)
DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=[
            pytest.mark.cuda,
            pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
        ],
    ),
]


class FakeAtari:
    """Stacks like ``AtariVectorEnv``: oldest frame first, zero-padded at a reset, same-step
    autoreset, and life losses that terminate without a reset (``final_obs == obs``)."""

    def __init__(self, num_envs: int, stack: int, seed: int, p_end: float = 0.08) -> None:
        self.rng = np.random.default_rng(seed)
        self.num_envs, self.stack, self.p_end = num_envs, stack, p_end
        self.shape = (stack, 6, 5)
        self.obs = np.zeros((num_envs, *self.shape), dtype=np.uint8)
        for e in range(num_envs):
            self.obs[e, -1] = self._frame()

    def _frame(self) -> np.ndarray:
        return self.rng.integers(1, 256, self.shape[1:], dtype=np.uint8)

    def step(self) -> tuple[np.ndarray, ...]:
        n = self.num_envs
        event = self.rng.choice(4, size=n, p=[1 - self.p_end, *([self.p_end / 3] * 3)])
        terminated = (event == 1) | (event == 3)  # 1: game over, 3: life loss
        truncated = event == 2
        final = np.concatenate([self.obs[:, 1:], np.zeros_like(self.obs[:, :1])], axis=1)
        for e in range(n):
            final[e, -1] = self._frame()
        obs = final.copy()
        for e in np.flatnonzero((event == 1) | (event == 2)):  # reset: a zero-padded stack
            obs[e] = 0
            obs[e, -1] = self._frame()
        reward = self.rng.normal(size=n).astype(np.float32)
        self.obs = obs
        return reward, terminated, truncated, final, obs


def assert_batches_equal(a: Batch, b: Batch) -> None:
    for field in ("obs", "action", "reward", "discount", "next_obs"):
        x, y = getattr(a, field), getattr(b, field)
        assert x.dtype == y.dtype and x.shape == y.shape, field
        assert torch.equal(x, y), f"{field} differs"


def feed(
    env: FakeAtari, buffers, steps: int, rng: np.random.Generator, num_actions: int = 6
) -> None:
    """``steps`` steps of ``env`` with random actions in ``[0, num_actions)`` (a learner that
    trains on the batches needs its own action count here)."""
    for _ in range(steps):
        obs = env.obs
        action = rng.integers(0, num_actions, env.num_envs)
        reward, terminated, truncated, final, _ = env.step()
        for buf in buffers:
            buf.add(obs, action, reward, terminated, truncated, final)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("n_step", [1, 3])
@pytest.mark.parametrize("stack", [4, 1])
def test_same_batches_as_replay_buffer(n_step: int, stack: int, device: str) -> None:
    num_envs, capacity = 3, 60  # 20 rows: the stream wraps around several times
    env = FakeAtari(num_envs, stack, seed=n_step + 10 * stack)
    ref = ReplayBuffer(
        capacity,
        num_envs,
        env.shape,
        torch.uint8,
        n_step=n_step,
        gamma=GAMMA,
        seed=5,
        device=device,
    )
    buf = FrameReplayBuffer(
        capacity,
        num_envs,
        env.shape,
        torch.uint8,
        n_step=n_step,
        gamma=GAMMA,
        seed=5,
        device=device,
        frame_stack=stack,
        side_capacity=2,  # forces the side ring to grow
    )
    rng = np.random.default_rng(0)
    for chunk in (1, 2, 5, 13, 20, 7, 40):
        feed(env, (ref, buf), chunk, rng)
        assert len(buf) == len(ref) and buf.can_sample() == ref.can_sample()
        if ref.can_sample():
            assert_batches_equal(buf.sample(256), ref.sample(256))


def test_episode_ends_and_life_losses_are_covered() -> None:
    """The stream above does exercise every case (guards the test itself)."""
    env = FakeAtari(3, 4, seed=1)
    counts = np.zeros(3, dtype=int)
    for _ in range(200):
        prev = env.obs
        _, terminated, truncated, final, obs = env.step()
        reset = (final != obs).reshape(3, -1).any(axis=1)
        counts += [(terminated & reset).sum(), truncated.sum(), (terminated & ~reset).sum()]
        assert (final[:, :-1] == prev[:, 1:]).all()
    assert (counts > 3).all()


@pytest.mark.parametrize("device", DEVICES)
def test_checkpoint_round_trip_and_resume_with_reset_envs(device: str) -> None:
    """Atari restarts its episodes on resume: after ``end_episodes`` the buffer matches a
    ReplayBuffer that saw the last stored step as a truncation (its next obs is the real one,
    not rebuilt from the new episode's reset frame, and no n-step window crosses it)."""
    num_envs, capacity, n = 2, 40, 3
    env = FakeAtari(num_envs, 4, seed=3)
    kwargs = dict(n_step=n, gamma=GAMMA, seed=9, device=device)
    ref = ReplayBuffer(capacity, num_envs, env.shape, torch.uint8, **kwargs)
    buf = FrameReplayBuffer(capacity, num_envs, env.shape, torch.uint8, **kwargs)
    rng = np.random.default_rng(1)
    feed(env, (ref, buf), 32, rng)
    # the last step before the checkpoint: the reference sees it truncated in every env
    obs, action = env.obs, rng.integers(0, 6, num_envs)
    reward, terminated, truncated, final, _ = env.step()
    buf.add(obs, action, reward, terminated, truncated, final)
    ref.add(obs, action, reward, terminated, np.ones(num_envs, dtype=bool), final)
    restored = FrameReplayBuffer(capacity, num_envs, env.shape, torch.uint8, **kwargs)
    tensors = {k: v.clone() for k, v in buf.state_tensors().items()}
    restored.load_state(tensors, dict(buf.state_meta()))
    restored.end_episodes()
    assert_batches_equal(restored.sample(128), ref.sample(128))
    # the restarted episodes: fresh, zero-padded stacks
    env.obs[:] = 0
    env.obs[:, -1] = 7
    feed(env, (ref, restored), 8, rng)  # fewer than the 20 rows: the restart stays in
    assert_batches_equal(restored.sample(256), ref.sample(256))
    restored.check_valid()


def test_rejects_stacks_not_zero_padded_at_a_start() -> None:
    buf = FrameReplayBuffer(16, 1, (2, 3, 3), torch.uint8)
    obs = np.ones((1, 2, 3, 3), dtype=np.uint8)
    no = np.zeros(1, dtype=bool)
    with pytest.raises(ValueError, match="zero-padded"):
        buf.add(obs, np.zeros(1), np.zeros(1), no, no, obs)


def test_real_atari_stream_matches_replay_buffer() -> None:
    pytest.importorskip("ale_py")
    from dopa_rl.envs.atari import AtariVecEnv

    # short episode cap → truncations; episodic life → life losses; small capacity → wraps
    env = AtariVecEnv("breakout", 2, seed=3, episodic_life=True, max_episode_frames=800)
    shape = env.observation_shape
    kwargs = dict(n_step=3, gamma=0.99, seed=4)
    ref = ReplayBuffer(300, 2, shape, torch.uint8, **kwargs)
    buf = FrameReplayBuffer(300, 2, shape, torch.uint8, **kwargs)
    rng = np.random.default_rng(0)
    obs = env.reset()
    ends = np.zeros(2, dtype=int)  # terminated and truncated steps seen
    for t in range(450):
        action = rng.integers(0, env.num_actions, 2)
        step = env.step(action)
        for b in (ref, buf):
            b.add(obs, action, step.reward, step.terminated, step.truncated, step.final_obs)
        ends += [int(step.terminated.sum()), int(step.truncated.sum())]
        obs = step.obs
        if t % 150 == 149:
            assert_batches_equal(buf.sample(128), ref.sample(128))
    env.close()
    assert (ends > 0).all()


@pytest.mark.parametrize("device", DEVICES)
def test_checkpoint_holds_only_the_filled_rows(device: str) -> None:
    env = FakeAtari(2, 4, seed=5)
    kwargs = dict(n_step=3, gamma=GAMMA, seed=2, device=device)
    buf = FrameReplayBuffer(400, 2, env.shape, torch.uint8, **kwargs)
    feed(env, (buf,), 10, np.random.default_rng(2))
    tensors = {k: v.clone() for k, v in buf.state_tensors().items()}
    assert tensors["frames"].shape[0] == 11 and tensors["action"].shape[0] == 10
    restored = FrameReplayBuffer(400, 2, env.shape, torch.uint8, **kwargs)
    restored.load_state(tensors, dict(buf.state_meta()))
    assert_batches_equal(restored.sample(64), buf.sample(64))
    rng = np.random.default_rng(3)
    feed(env, (buf, restored), 250, rng)  # wraps: the whole ring is saved from then on
    assert buf.state_tensors()["frames"].shape[0] == buf.frame_rows
    assert_batches_equal(restored.sample(64), buf.sample(64))
