"""Replay: n-step returns, episode boundaries, truncation bootstrap, checkpoint round trip."""

import numpy as np
import pytest
import torch
from dopa_rl.replay.buffer import ReplayBuffer

GAMMA = 0.9


def fill(
    buffer: ReplayBuffer, steps: int, num_envs: int, ends: dict, truncs: dict, start: int = 0
) -> None:
    """obs of env e at step t = 100·t + e; reward = t + 1; episode ends listed per env."""
    for t in range(start, start + steps):
        obs = np.array([[100 * t + e] for e in range(num_envs)], dtype=np.float32)
        term = np.array([t in ends.get(e, ()) for e in range(num_envs)])
        trunc = np.array([t in truncs.get(e, ()) for e in range(num_envs)])
        final = obs + 1000.0  # a distinct "real next observation"
        buffer.add(obs, np.full(num_envs, t % 2), np.full(num_envs, t + 1.0), term, trunc, final)


def expected(t: int, e: int, n: int, ends: dict, truncs: dict) -> tuple[float, float, float]:
    reward, discount = 0.0, 1.0
    for k in range(n):
        s = t + k
        reward += discount * (s + 1.0)
        discount *= GAMMA
        if s in ends.get(e, ()):
            return reward, 0.0, 100 * s + e + 1000.0
        if s in truncs.get(e, ()):
            return reward, discount, 100 * s + e + 1000.0
    return reward, discount, 100 * (t + n - 1) + e + 1000.0


@pytest.mark.parametrize("n", [1, 3])  # n = 1 takes the replay's one-step fast path
def test_n_step_samples_match_brute_force(n):
    num_envs = 2
    ends, truncs = {0: {4, 9}, 1: {6}}, {1: {2}}
    buffer = ReplayBuffer(64, num_envs, (1,), torch.float32, n_step=n, gamma=GAMMA, seed=0)
    fill(buffer, 14, num_envs, ends, truncs)
    batch = buffer.sample(512)
    seen = set()
    for i in range(512):
        code = int(batch.obs[i, 0])
        t, e = divmod(code, 100)
        seen.add((t, e))
        assert t + n - 1 <= 13  # only complete windows are sampled
        reward, discount, next_obs = expected(t, e, n, ends, truncs)
        assert abs(batch.reward[i].item() - reward) < 1e-4
        assert abs(batch.discount[i].item() - discount) < 1e-6
        assert batch.next_obs[i, 0].item() == next_obs
        assert batch.action[i].item() == t % 2
    assert len(seen) == (14 - n + 1) * num_envs  # uniform sampling reaches every valid step


def test_ring_buffer_wraps_and_keeps_only_recent_steps():
    buffer = ReplayBuffer(10, 1, (1,), torch.float32, n_step=1, gamma=GAMMA, seed=1)
    fill(buffer, 25, 1, {}, {})
    ts = {int(x) // 100 for x in buffer.sample(400).obs[:, 0]}
    assert ts == set(range(15, 25))
    assert len(buffer) == 10


def test_state_round_trip_gives_identical_samples():
    a = ReplayBuffer(32, 2, (1,), torch.float32, n_step=2, gamma=GAMMA, seed=3)
    fill(a, 20, 2, {0: {5}}, {})
    b = ReplayBuffer(32, 2, (1,), torch.float32, n_step=2, gamma=GAMMA, seed=99)
    b.load_state({k: v.clone() for k, v in a.state_tensors().items()}, a.state_meta())
    sa, sb = a.sample(16), b.sample(16)
    for field in ("obs", "action", "reward", "discount", "next_obs"):
        assert torch.equal(getattr(sa, field), getattr(sb, field))


@pytest.mark.parametrize("n", [1, 3])
def test_resume_with_restarted_episodes_ends_the_last_stored_step(n):
    """Atari restarts its episodes on resume: the newest stored step before the checkpoint is a
    truncation (bootstraps from its own next obs) and no n-step window runs across it."""
    num_envs, ends = 2, {0: {3}}
    a = ReplayBuffer(200, num_envs, (1,), torch.float32, n_step=n, gamma=GAMMA, seed=4)
    fill(a, 8, num_envs, ends, {})
    b = ReplayBuffer(200, num_envs, (1,), torch.float32, n_step=n, gamma=GAMMA, seed=4)
    b.load_state({k: v.clone() for k, v in a.state_tensors().items()}, a.state_meta())
    b.end_episodes()
    fill(b, 6, num_envs, ends, {}, start=8)  # the new episodes (obs codes continue)
    truncs = {0: {7}, 1: {7}}
    batch = b.sample(1024)
    seen = set()
    for i in range(1024):
        t, e = divmod(int(batch.obs[i, 0]), 100)
        seen.add((t, e))
        reward, discount, next_obs = expected(t, e, n, ends, truncs)
        assert abs(batch.reward[i].item() - reward) < 1e-4, (t, e)
        assert abs(batch.discount[i].item() - discount) < 1e-6, (t, e)
        assert batch.next_obs[i, 0].item() == next_obs, (t, e)
    assert (7, 0) in seen and (7, 1) in seen and (6, 1) in seen
    b.check_valid()


def test_checkpoint_holds_only_the_filled_rows():
    a = ReplayBuffer(400, 2, (1,), torch.float32, n_step=2, gamma=GAMMA, seed=3)
    fill(a, 7, 2, {0: {5}}, {})
    tensors = {k: v.clone() for k, v in a.state_tensors().items()}
    assert tensors["obs"].shape == (7, 2, 1)
    b = ReplayBuffer(400, 2, (1,), torch.float32, n_step=2, gamma=GAMMA, seed=99)
    b.load_state(tensors, a.state_meta())
    sa, sb = a.sample(32), b.sample(32)
    for field in ("obs", "action", "reward", "discount", "next_obs"):
        assert torch.equal(getattr(sa, field), getattr(sb, field))


def test_which_checkpoints_hold_the_replay():
    from types import SimpleNamespace as NS

    from dopa_rl.loop.hooks import replay_in_checkpoint

    def cfg(family, when, replay=True):
        return NS(env=NS(family=family), checkpoint=NS(replay=replay, replay_when=when))

    assert replay_in_checkpoint(cfg("control", "auto"), final=False)
    assert not replay_in_checkpoint(cfg("atari", "auto"), final=False)
    assert replay_in_checkpoint(cfg("atari", "auto"), final=True)
    assert replay_in_checkpoint(cfg("atari", "always"), final=False)
    assert not replay_in_checkpoint(cfg("control", "final"), final=False)
    assert not replay_in_checkpoint(cfg("control", "always", replay=False), final=True)
