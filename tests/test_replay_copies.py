"""Replay adds cross to the device once per field, asynchronously, from a staging buffer.

Counted with a ``TorchDispatchMode`` on every op that reads a host tensor and writes a device
one. Without a GPU the buffers are built on the ``meta`` device, which dispatches exactly the
copies a CUDA buffer does (no data moves); under ``-m cuda`` the same test runs on CUDA, where
the staging buffers must also be pinned."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from dopa_rl.replay.buffer import ReplayBuffer, StagedWrites
from dopa_rl.replay.frames import FrameReplayBuffer
from test_frame_replay import FakeAtari
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

FIELDS = {  # what one add writes
    "frame": ("obs", "start", "next_obs", "action", "reward", "terminated", "done"),
    "plain": ("obs", "next_obs", "action", "reward", "terminated", "done"),
}
DEVICES = [
    "meta",
    pytest.param(
        "cuda",
        marks=[
            pytest.mark.cuda,
            pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
        ],
    ),
]


class HostToDevice(TorchDispatchMode):
    """Records (op, non_blocking, pinned source) for each op from host to device memory."""

    def __init__(self) -> None:
        super().__init__()
        self.copies: list[tuple[str, bool, bool]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs = [t for t in tree_flatten((args, kwargs))[0] if torch.is_tensor(t)]
        outputs = [t for t in tree_flatten(out)[0] if torch.is_tensor(t)]
        host = [t for t in inputs if t.device.type == "cpu"]
        if host and any(t.device.type != "cpu" for t in outputs):
            non_blocking = bool(kwargs.get("non_blocking", args[2] if len(args) > 2 else False))
            self.copies.append((str(func), non_blocking, all(t.is_pinned() for t in host)))
        return out


def make(kind: str, device: str, shape):
    cls = FrameReplayBuffer if kind == "frame" else ReplayBuffer
    if device != "meta":
        return cls(120, 4, shape, torch.uint8, n_step=3, device=device, seed=0)
    # meta has no generator: build on the CPU, then move the storage (the sampler is not used)
    buf = cls(120, 4, shape, torch.uint8, n_step=3, device="cpu", seed=0)
    for name, value in vars(buf).items():
        if torch.is_tensor(value):
            setattr(buf, name, value.to("meta"))
    buf.device = torch.device("meta")
    buf._writes = StagedWrites(buf.device)
    return buf


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["frame", "plain"])
def test_one_async_copy_per_field_and_add(kind: str, device: str) -> None:
    # no episode ends: a done step of frame replay also uploads the side ring's indices (three
    # small copies, about once per episode and env)
    env = FakeAtari(4, 4, seed=1, p_end=0.0)
    buf = make(kind, device, env.shape)
    rng = np.random.default_rng(0)
    for _ in range(12):
        obs = env.obs
        action = rng.integers(0, 6, 4)
        reward, terminated, truncated, final, _ = env.step()
        with HostToDevice() as mode:
            buf.add(obs, action, reward, terminated, truncated, final)
        assert len(mode.copies) == len(FIELDS[kind]), mode.copies  # one per field
        assert all(non_blocking for _, non_blocking, _ in mode.copies), mode.copies
        if device == "cuda":
            assert all(pinned for _, _, pinned in mode.copies), mode.copies


@pytest.mark.parametrize("device", DEVICES)
def test_obs_already_on_the_device_is_not_uploaded_again(device: str) -> None:
    env = FakeAtari(4, 4, seed=2, p_end=0.0)
    buf = make("frame", device, env.shape)
    obs = env.obs
    reward, terminated, truncated, final, _ = env.step()
    obs_device = torch.as_tensor(obs).to(device)
    with HostToDevice() as mode:
        buf.add(obs, np.zeros(4, dtype=np.int64), reward, terminated, truncated, final, obs_device)
    assert len(mode.copies) == len(FIELDS["frame"]) - 1
