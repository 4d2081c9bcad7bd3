"""Replay as tensors on the chosen device, laid out [time, env] so n-step returns are computed
at sample time by device-side indexing (no host-side n-step queues)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch


@dataclass
class NStepWindow:
    """Sampled n-step windows: rows [B, n] of env column ``env`` [B], the steps used ``steps``
    (1..n, stopping at the first done step), that last row ``last``, the discounted reward sum
    and the bootstrap discount γ^steps·(1 − terminated)."""

    offset: torch.Tensor  # [B] rows after the oldest stored row
    env: torch.Tensor
    rows: torch.Tensor
    steps: torch.Tensor
    last: torch.Tensor
    reward: torch.Tensor
    discount: torch.Tensor


class StepStorage(Protocol):
    """What the n-step window sampler reads: a ring of ``rows`` rows × ``num_envs`` columns
    of per-step rewards and episode ends, written up to ``pos`` (``size`` rows filled)."""

    rows: int
    pos: int
    size: int
    num_envs: int
    n_step: int
    gamma: float
    device: torch.device
    generator: torch.Generator
    reward: torch.Tensor  # [rows, E] float32
    terminated: torch.Tensor  # [rows, E] bool
    done: torch.Tensor  # [rows, E] bool (terminated or truncated)
    discounts: torch.Tensor  # [n_step]: γ^k


class Replay(Protocol):
    """A replay buffer: what the training loop and checkpoints use."""

    def add(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        next_obs: np.ndarray,
        obs_device: torch.Tensor | None = None,
    ) -> None: ...

    def __len__(self) -> int: ...  # transitions stored

    def can_sample(self) -> bool: ...

    def sample(self, batch_size: int) -> Batch: ...

    def state_tensors(self) -> dict[str, torch.Tensor]: ...

    def state_meta(self) -> dict[str, Any]: ...

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None: ...

    def end_episodes(self) -> None: ...

    def check_valid(self) -> None: ...


def check_ring(buffer: StepStorage) -> None:
    """The ring invariants every [time, env] buffer keeps; raises ValueError if broken."""
    if not 0 <= buffer.size <= buffer.rows or not 0 <= buffer.pos < buffer.rows:
        raise ValueError(f"replay pos={buffer.pos} size={buffer.size} outside {buffer.rows} rows")
    if buffer.size < buffer.rows and buffer.pos != buffer.size:
        raise ValueError(f"replay not yet full but pos={buffer.pos} != size={buffer.size}")
    if bool((buffer.terminated & ~buffer.done).any()):
        raise ValueError("replay has terminated steps not marked done")


def sample_n_step_window(buffer: StepStorage, batch_size: int) -> NStepWindow:
    """Draw windows uniformly over rows and envs from a [time, env] buffer; a window starting
    at row t covers rows t..t+n−1 and stops at the first done step."""
    n, dev, g = buffer.n_step, buffer.device, buffer.generator
    valid_rows = buffer.size - (n - 1)
    oldest = (buffer.pos - buffer.size) % buffer.rows
    offset = torch.randint(0, valid_rows, (batch_size,), device=dev, generator=g)
    env = torch.randint(0, buffer.num_envs, (batch_size,), device=dev, generator=g)
    return n_step_window_at(buffer, offset, env, oldest)


def n_step_window_at(
    buffer: StepStorage, offset: torch.Tensor, env: torch.Tensor, oldest: int | torch.Tensor
) -> NStepWindow:
    """The n-step windows starting ``offset`` [B] rows after the oldest stored row ``oldest``
    (a number, or a 0-d device tensor inside a CUDA graph) in env columns ``env`` [B]: fixed
    shapes and no host reads, so the same code runs eagerly and captured."""
    n, dev = buffer.n_step, buffer.device
    if n == 1:  # one-step targets: no window to scan (a third of the ops, on every update)
        last = (oldest + offset) % buffer.rows
        terminated = buffer.terminated[last, env]
        discount = buffer.gamma * (~terminated).float()
        steps = torch.ones_like(last)
        return NStepWindow(
            offset, env, last.unsqueeze(1), steps, last, buffer.reward[last, env], discount
        )
    rows = ((oldest + offset).unsqueeze(1) + torch.arange(n, device=dev)) % buffer.rows
    cols = env.unsqueeze(1).expand(-1, n)
    done = buffer.done[rows, cols]  # [B, n]
    # alive[k]: no episode end strictly before step k of the window
    alive = torch.ones_like(done, dtype=torch.float32)
    alive[:, 1:] = torch.cumprod(1.0 - done[:, :-1].float(), dim=1)
    reward = (buffer.reward[rows, cols] * alive * buffer.discounts).sum(dim=1)
    steps = alive.sum(dim=1).long()
    last = rows.gather(1, (steps - 1).unsqueeze(1)).squeeze(1)
    terminated = buffer.terminated[last, env]
    discount = (buffer.gamma ** steps.float()) * (~terminated).float()
    return NStepWindow(offset, env, rows, steps, last, reward, discount)


class StagedWrites:
    """Host → device writes of replay adds without stalls: on a device other than the CPU each
    field goes through its own staging buffer on the host (pinned when CUDA is available) and
    one ``non_blocking`` copy straight into its ring slot, so an add queues its copies behind
    the updates already launched instead of waiting for them (a pageable ``torch.as_tensor(x,
    device=cuda)`` copies synchronously). Before a staging buffer is refilled, the event of its
    last copy is waited on; the training loops read the actions back each iteration, which
    completes every earlier copy, so that wait is free there. On the CPU: plain copies."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.staged = device.type != "cpu"
        self.pin = device.type == "cuda" and torch.cuda.is_available()
        self._host: dict[str, torch.Tensor] = {}
        self._events: dict[str, Any] = {}

    def write(self, dest: torch.Tensor, name: str, values: Any) -> None:
        """``dest[...] = values`` (a numpy array or number), one copy per call."""
        if not self.staged:
            dest.copy_(torch.as_tensor(values))
            return
        host = self._host.get(name)
        if host is None or host.shape != dest.shape:
            host = torch.empty(dest.shape, dtype=dest.dtype)
            self._host[name] = host.pin_memory() if self.pin else host
            host = self._host[name]
        event = self._events.get(name)
        if event is not None:
            event.synchronize()  # the last copy from this buffer has finished
        np.copyto(host.numpy(), values, casting="unsafe")
        dest.copy_(host, non_blocking=True)
        if self.pin:
            event = self._events.get(name) or torch.cuda.Event()  # type: ignore[no-untyped-call]
            event.record()
            self._events[name] = event


class DeviceCounters:
    """A ring's ``pos``, ``size`` and ``total`` mirrored in one int64 device tensor, for
    sampling inside a CUDA graph (which cannot read host numbers that change between replays).
    ``refresh`` writes them with ``fill_`` (a kernel argument: no host buffer a pending copy
    could still read, no sync)."""

    def __init__(self, device: torch.device) -> None:
        self.values = torch.zeros(3, dtype=torch.int64, device=device)
        self._seen: tuple[int, int, int] | None = None

    def refresh(self, pos: int, size: int, total: int) -> None:
        if self._seen == (pos, size, total):
            return
        for i, v in enumerate((pos, size, total)):
            self.values[i].fill_(v)
        self._seen = (pos, size, total)


def draw_fixed_shape(
    buffer: StepStorage, counters: torch.Tensor, batch_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Uniform (offset, env) draws with the bound in a device tensor (``counters`` = [pos,
    size, total]), and the oldest row: floor(u · valid) for u ~ U[0, 1) in float64 (exactly
    uniform up to 2⁻⁵³, far below any replay's row count), then the env as
    ``sample_n_step_window`` draws it. Returns (offset, env, oldest)."""
    dev, g = buffer.device, buffer.generator
    pos, size = counters[0], counters[1]
    valid = (size - (buffer.n_step - 1)).clamp(min=1)
    u = torch.rand(batch_size, device=dev, generator=g, dtype=torch.float64)
    offset = torch.minimum((u * valid).long(), valid - 1)
    env = torch.randint(0, buffer.num_envs, (batch_size,), device=dev, generator=g)
    oldest = (pos - size) % buffer.rows
    return offset, env, oldest


@dataclass
class Batch:
    obs: torch.Tensor  # [B, *obs_shape]
    action: torch.Tensor  # [B] int64
    reward: torch.Tensor  # [B] n-step discounted reward Σ_k γ^k r_{t+k}
    discount: torch.Tensor  # [B] γ^m · (1 − terminated): 0 at true terminals
    next_obs: torch.Tensor  # [B, *obs_shape] observation m ≤ n steps later


class ReplayBuffer:
    """Ring buffer of ``capacity`` transitions (split evenly over ``num_envs`` columns).

    Each slot [t, e] holds (obs, action, reward, terminated, done, next_obs) of env e at its
    t-th step; ``next_obs`` is the episode's real last observation on done steps, so truncated
    episodes bootstrap correctly. An n-step sample starting at t stops at the first done step.
    """

    def __init__(
        self,
        capacity: int,
        num_envs: int,
        obs_shape: tuple[int, ...],
        obs_dtype: torch.dtype,
        *,
        n_step: int = 1,
        gamma: float = 0.99,
        device: torch.device | str = "cpu",
        seed: int = 0,
    ) -> None:
        self.rows = max(capacity // num_envs, n_step + 1)
        self.num_envs = num_envs
        self.n_step = n_step
        self.gamma = gamma
        self.device = torch.device(device)
        shape = (self.rows, num_envs)
        self.obs = torch.zeros(*shape, *obs_shape, dtype=obs_dtype, device=self.device)
        self.next_obs = torch.zeros_like(self.obs)
        self.action = torch.zeros(shape, dtype=torch.int64, device=self.device)
        self.reward = torch.zeros(shape, dtype=torch.float32, device=self.device)
        self.terminated = torch.zeros(shape, dtype=torch.bool, device=self.device)
        self.done = torch.zeros(shape, dtype=torch.bool, device=self.device)
        self.pos = 0  # next row to write
        self.size = 0  # rows written, capped at self.rows
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self.discounts = gamma ** torch.arange(n_step, dtype=torch.float32, device=self.device)
        self._counters: DeviceCounters | None = None  # sample_fixed_shape's, made on first use
        self._writes = StagedWrites(self.device)

    def __len__(self) -> int:
        return self.size * self.num_envs

    def add(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        next_obs: np.ndarray,
        obs_device: torch.Tensor | None = None,
    ) -> None:
        """Store one batched step (one row). ``next_obs`` is ``VecStep.final_obs``;
        ``obs_device``: ``obs`` already on the device (the copy acting read), not uploaded again."""
        row, w = self.pos, self._writes
        if obs_device is not None:
            self.obs[row] = obs_device
        else:
            w.write(self.obs[row], "obs", obs)
        w.write(self.next_obs[row], "next_obs", next_obs)
        w.write(self.action[row], "action", action)
        w.write(self.reward[row], "reward", reward)
        w.write(self.terminated[row], "terminated", terminated)
        w.write(self.done[row], "done", np.logical_or(terminated, truncated))
        self.pos = (self.pos + 1) % self.rows
        self.size = min(self.size + 1, self.rows)

    def can_sample(self) -> bool:
        return self.size >= self.n_step

    def check_valid(self) -> None:
        check_ring(self)

    def end_episodes(self) -> None:
        """Mark the newest stored step of every env done (a truncation): the envs restart their
        episodes (an Atari resume), so no n-step window may run into the next row and the
        newest step bootstraps from its own stored ``next_obs``."""
        if self.size:
            self.done[(self.pos - 1) % self.rows] = True

    def sample(self, batch_size: int) -> Batch:
        """Uniform over stored steps whose n-step window is complete (rows written after it)."""
        return self.batch_at(sample_n_step_window(self, batch_size))

    def sample_fixed_shape(self, batch_size: int) -> Batch:
        """``sample`` for a CUDA graph: counters in a device tensor, no host reads (call
        ``refresh_counters`` after each ``add``, outside the graph)."""
        counters = self.refresh_counters()
        offset, env, oldest = draw_fixed_shape(self, counters, batch_size)
        return self.batch_at(n_step_window_at(self, offset, env, oldest))

    def refresh_counters(self) -> torch.Tensor:
        """The device mirror of pos/size (made on first use), brought up to date."""
        if self._counters is None:
            self._counters = DeviceCounters(self.device)
        self._counters.refresh(self.pos, self.size, self.pos)
        return self._counters.values

    def batch_at(self, w: NStepWindow) -> Batch:
        """The transitions of sampled windows ``w``."""
        first = w.rows[:, 0]
        return Batch(
            obs=self.obs[first, w.env],
            action=self.action[first, w.env],
            reward=w.reward,
            discount=w.discount,
            next_obs=self.next_obs[w.last, w.env],
        )

    # checkpointing (optional: replay can be large)
    def state_tensors(self) -> dict[str, torch.Tensor]:
        """The filled rows only (all of them once the ring is full): a checkpoint early in a
        run does not write the whole pre-allocated buffer."""
        n = self.size  # rows [0, size) are the filled ones (pos == size until the ring wraps)
        return {
            "obs": self.obs[:n],
            "next_obs": self.next_obs[:n],
            "action": self.action[:n],
            "reward": self.reward[:n],
            "terminated": self.terminated[:n],
            "done": self.done[:n],
            "generator": self.generator.get_state(),
        }

    def state_meta(self) -> dict[str, int]:
        return {"pos": self.pos, "size": self.size, "rows": self.rows}

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, int]) -> None:
        if meta["rows"] != self.rows:
            raise ValueError(f"replay has {meta['rows']} rows, expected {self.rows}")
        for key in ("obs", "next_obs", "action", "reward", "terminated", "done"):
            saved = tensors[key]  # the filled rows, or every row (older checkpoints)
            getattr(self, key)[: len(saved)].copy_(saved)
        self.generator.set_state(tensors["generator"].cpu())
        self.pos, self.size = int(meta["pos"]), int(meta["size"])
