"""The fixed-shape sampler a CUDA graph captures (counters in a device tensor, no host reads)
returns the batches the ordinary sampler returns at the same draws, for both buffers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from dopa_rl.replay.buffer import ReplayBuffer, n_step_window_at
from dopa_rl.replay.frames import FrameReplayBuffer
from test_frame_replay import DEVICES, FakeAtari, assert_batches_equal, feed

GAMMA = 0.9


def host_draw(buf, batch_size: int):
    """The fixed-shape draw written with host numbers (what the graph computes on the device)."""
    valid = buf.size - (buf.n_step - 1)
    u = torch.rand(batch_size, device=buf.device, generator=buf.generator, dtype=torch.float64)
    offset = torch.clamp((u * valid).long(), max=valid - 1)
    env = torch.randint(0, buf.num_envs, (batch_size,), device=buf.device, generator=buf.generator)
    return offset, env, (buf.pos - buf.size) % buf.rows


def ordinary_batch(buf, batch_size: int):
    offset, env, oldest = host_draw(buf, batch_size)
    w = n_step_window_at(buf, offset, env, oldest)
    if isinstance(buf, FrameReplayBuffer):
        return buf.batch_at(w, buf.total - buf.size), offset
    return buf.batch_at(w), offset


def make(kind: str, n_step: int, device: str, shape):
    cls = FrameReplayBuffer if kind == "frame" else ReplayBuffer
    kwargs = dict(n_step=n_step, gamma=GAMMA, seed=11, device=device)
    if kind == "frame":
        kwargs["side_capacity"] = 2  # the side ring grows
    return cls(60, 3, shape, torch.uint8, **kwargs)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("n_step", [1, 3])
@pytest.mark.parametrize("kind", ["frame", "plain"])
def test_fixed_shape_sampler_matches_the_ordinary_one(kind: str, n_step: int, device: str):
    env = FakeAtari(3, 4, seed=7 + n_step)
    graph_form = make(kind, n_step, device, env.shape)
    ordinary = make(kind, n_step, device, env.shape)
    rng = np.random.default_rng(0)
    for chunk in (3, 5, 13, 20, 7, 40):  # 20 rows: not full, full, wrapped several times
        feed(env, (graph_form, ordinary), chunk, rng)
        if not ordinary.can_sample():
            continue
        batch = graph_form.sample_fixed_shape(512)
        expected, offset = ordinary_batch(ordinary, 512)
        assert_batches_equal(batch, expected)
        valid = ordinary.size - (n_step - 1)
        assert int(offset.min()) >= 0 and int(offset.max()) == valid - 1  # every row reachable
        assert len(torch.unique(offset)) == valid


@pytest.mark.parametrize("n_step", [1, 3])
def test_fixed_shape_frame_replay_matches_fixed_shape_replay(n_step: int):
    """Frame replay's graph-form sampler rebuilds the stacks ReplayBuffer's returns."""
    env = FakeAtari(3, 4, seed=3)
    frame, plain = make("frame", n_step, "cpu", env.shape), make("plain", n_step, "cpu", env.shape)
    rng = np.random.default_rng(1)
    for chunk in (4, 17, 30):
        feed(env, (frame, plain), chunk, rng)
        assert_batches_equal(frame.sample_fixed_shape(256), plain.sample_fixed_shape(256))


def sampling_in_graph_sequence(kind: str, device: str) -> None:
    """GraphedSampleUpdate (sampling + update in one graph) draws the batches and makes the
    updates that eager ``sample_fixed_shape`` + ``Learner.update`` make, across a side-ring
    growth (recapture) and new steps between replays. On the CPU it runs under
    ``emulated_cuda_graphs`` (same capture, warm-up and restore; ops replayed from a record).

    The H200 run's device-side "index out of bounds" came from this test's data, not from the
    sampler: the stream held actions 0..5 for a 3-action learner, and the loss's gather by
    action read past the head. On the CPU the same gather raises an IndexError."""
    from dopa_rl.learn.compiled import GraphedSampleUpdate
    from test_compiled import NUM_ACTIONS, assert_same_learners, make_learner

    shape = (4, 36, 36)
    env = FakeAtari(3, 4, seed=5)
    env.shape = shape
    env.obs = np.zeros((3, *shape), dtype=np.uint8)
    env.obs[:, -1] = env.rng.integers(1, 256, shape[1:], dtype=np.uint8)
    graphed_replay, eager_replay = (make(kind, 3, device, shape) for _ in range(2))
    graphed_learner, eager_learner = (make_learner("qrdqn", shape, device) for _ in range(2))
    update = GraphedSampleUpdate(graphed_learner, graphed_replay, 16)
    rng = np.random.default_rng(2)
    for _ in range(6):
        feed(env, (graphed_replay, eager_replay), 5, rng, num_actions=NUM_ACTIONS)
        for _ in range(3):
            batch, _ = update()
            expected = eager_replay.sample_fixed_shape(16)
            assert_batches_equal(batch, expected)
            assert int(batch.action.max()) < NUM_ACTIONS
            eager_learner.update(expected)
    atol = 1e-4 if device == "cuda" else 1e-5  # CPU: capturable against default Adam rounding
    assert_same_learners(graphed_learner, eager_learner, atol=atol, rtol=atol)


@pytest.mark.parametrize("kind", ["frame", "plain"])
def test_sampling_in_graph_on_the_cpu_at_the_gpu_tests_sizes(kind: str):
    """The CUDA test below, emulated on the CPU: every index the graph computes is in bounds
    (the CPU checks each one), and the graphed updates follow the eager ones."""
    from dopa_rl.learn.graph_check import emulated_cuda_graphs

    with emulated_cuda_graphs():
        sampling_in_graph_sequence(kind, "cpu")


def test_actions_past_the_head_fail_on_the_cpu():
    """What broke the CUDA test: a batch with actions past the learner's head. The CPU says so
    with an IndexError (CUDA: a device-side assert that poisons the process)."""
    from test_compiled import make_learner

    shape = (4, 36, 36)
    env = FakeAtari(3, 4, seed=5)
    env.shape = shape
    env.obs = np.zeros((3, *shape), dtype=np.uint8)
    env.obs[:, -1] = env.rng.integers(1, 256, shape[1:], dtype=np.uint8)
    replay = make("frame", 3, "cpu", shape)
    feed(env, (replay,), 8, np.random.default_rng(2), num_actions=6)
    batch = replay.sample_fixed_shape(64)
    assert int(batch.action.max()) >= 3
    with pytest.raises(IndexError, match="out of bounds"):
        make_learner("qrdqn", shape, "cpu").update(batch)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("kind", ["frame", "plain"])
def test_sampling_captured_with_the_update_follows_eager(kind: str):
    sampling_in_graph_sequence(kind, "cuda")
