"""Replay for stacked Atari frames that stores each 84×84 frame once, on the device.

``agent.replay.buffer.ReplayBuffer`` keeps the whole ``[S, 84, 84]`` stack of both ``obs`` and
``next_obs`` for every transition: 2·S = 8 copies of each frame, 56 GB per 1M transitions with
S = 4. This buffer keeps only the newest frame of each step's ``obs`` and rebuilds both stacks
at sample time by device-side indexing, so the published 1M-transition replay fits on one GPU.

Layout, for a stream of batched steps T = 0, 1, 2, … (``add`` calls) of ``num_envs`` columns:

* ``frames[T mod F, e]`` = the newest frame of ``obs[T, e]``, with F = rows + S: the ``rows``
  live steps, the S − 1 older frames the oldest live stack still needs, and one slot for the
  newest frame of the last ``next_obs`` (so the newest step's ``next_obs`` needs no extra row).
* ``start[T mod F, e]``: step T begins a new stack, i.e. ``obs[T, e]`` is not the continuation
  of ``next_obs[T − 1, e]``. It is detected exactly, on the host and only for rows that were done
  at T − 1, by comparing the two stacks: a reset starts a new stack, a life loss (episodic life:
  ``terminated`` while the game goes on, ``final_obs == obs``) does not. The stack of step T is
  ``frames[T − S + 1 … T]`` with every frame before the nearest start zeroed, which is exactly how
  ``AtariVectorEnv`` pads stacks at a reset (checked in ``add``: a start row whose older frames
  are not zero raises, rather than silently storing wrong stacks).
* ``next_obs`` of a step L that is not done is ``obs[L + 1]``. For a done step (termination,
  truncation or life loss) the newest frame of ``final_obs`` goes to a small side ring (one frame
  per done step; episodes are long, so it holds a few MB) and the next stack is the stack of L
  shifted by one with that frame appended: exact for truncations (bootstrapping) and for
  terminations too (where the discount is 0 anyway). The side ring grows if ever full of live
  entries, so it never drops a frame still referenced.

Action, reward, terminated and done are stored as in ``ReplayBuffer``, sampling draws the same
random numbers from the same generator and the n-step return is the same computation, so a
``FrameReplayBuffer`` and a ``ReplayBuffer`` seeded alike and fed the same stream return
identical batches (``tests/test_frame_replay.py``).

State memory per 1M transitions (S = 4, 84×84 uint8): frames 7.06 GB (plus S·num_envs frames),
action 8 MB, reward 4 MB, terminated/done/start 3 MB, side index 8 MB, side frames 7 KB per
done step in the buffer (about 7 MB for 1,000 episodes): about 7.1 GB in all, against 56.5 GB
for ``ReplayBuffer``. Sampling a batch of B builds 2·B·S frames (B = 256: 7 MB) on the device.
"""

from __future__ import annotations

import numpy as np
import torch

from .buffer import (
    Batch,
    DeviceCounters,
    NStepWindow,
    StagedWrites,
    check_ring,
    draw_fixed_shape,
    n_step_window_at,
    sample_n_step_window,
)


class FrameReplayBuffer:
    """Ring buffer of ``capacity`` transitions of uint8 frame stacks, each frame stored once.

    Same interface as ``agent.replay.buffer.ReplayBuffer``; ``obs_shape`` must be
    ``(frame_stack, H, W)``. ``add`` takes host (numpy) arrays as ``AtariVecEnv`` returns them.
    """

    def __init__(
        self,
        capacity: int,
        num_envs: int,
        obs_shape: tuple[int, ...],
        obs_dtype: torch.dtype = torch.uint8,
        *,
        n_step: int = 1,
        gamma: float = 0.99,
        device: torch.device | str = "cpu",
        seed: int = 0,
        frame_stack: int | None = None,
        side_capacity: int | None = None,
    ) -> None:
        if len(obs_shape) != 3:
            raise ValueError(f"FrameReplayBuffer needs obs of shape (stack, H, W), got {obs_shape}")
        stack = obs_shape[0] if frame_stack is None else frame_stack
        if stack != obs_shape[0]:
            raise ValueError(f"frame_stack={frame_stack} but obs_shape {obs_shape} stacks {stack}")
        self.rows = max(capacity // num_envs, n_step + 1)
        self.num_envs = num_envs
        self.n_step = n_step
        self.gamma = gamma
        self.frame_stack = stack
        self.obs_shape = tuple(obs_shape)
        self.obs_dtype = obs_dtype
        self.device = torch.device(device)
        dev = self.device
        frame_shape = tuple(obs_shape[1:])
        self.frame_rows = self.rows + stack  # see the module docstring
        self.frames = torch.zeros(
            self.frame_rows, num_envs, *frame_shape, dtype=obs_dtype, device=dev
        )
        self.start = torch.ones(self.frame_rows, num_envs, dtype=torch.bool, device=dev)
        shape = (self.rows, num_envs)
        self.action = torch.zeros(shape, dtype=torch.int64, device=dev)
        self.reward = torch.zeros(shape, dtype=torch.float32, device=dev)
        self.terminated = torch.zeros(shape, dtype=torch.bool, device=dev)
        self.done = torch.zeros(shape, dtype=torch.bool, device=dev)
        self.side_index = torch.zeros(shape, dtype=torch.int64, device=dev)  # absolute entry
        # side ring: newest frame of final_obs of done steps; host mirror of each slot's owner
        cap = side_capacity if side_capacity is not None else max(2 * num_envs, 64)
        self.side_frames = torch.zeros(cap, *frame_shape, dtype=obs_dtype, device=dev)
        self._side_step = np.full(cap, -1, dtype=np.int64)  # absolute step T of each slot
        self._side_entry = np.full(cap, -1, dtype=np.int64)  # absolute entry index of each slot
        self.side_count = 0  # entries ever written
        self.total = 0  # add() calls ever (absolute step of the next add)
        self.pos = 0  # next row to write (== total % rows)
        self.size = 0  # rows written, capped at self.rows
        # the last add's next_obs (final_obs), to tell a reset from a life loss or a resume
        self._prev_final: np.ndarray | None = None  # [E, S, H, W]; None: all rows start
        self._prev_done: np.ndarray | None = None  # [E] bool; None: compare every row
        self.generator = torch.Generator(device=dev)
        self.generator.manual_seed(seed)
        self.discounts = gamma ** torch.arange(n_step, dtype=torch.float32, device=dev)
        self._ages = torch.arange(stack - 1, -1, -1, device=dev)  # frame j is S-1-j steps old
        self._counters: DeviceCounters | None = None  # sample_fixed_shape's, made on first use
        self._writes = StagedWrites(dev)  # one pinned buffer and async copy per field (CUDA)

    def __len__(self) -> int:
        return self.size * self.num_envs

    def can_sample(self) -> bool:
        return self.size >= self.n_step

    def check_valid(self) -> None:
        check_ring(self)

    def end_episodes(self) -> None:
        """Mark the newest stored step of every env done (a truncation) because the envs
        restart their episodes (an Atari resume). Its ``next_obs`` newest frame, held
        provisionally in the frame slot the next ``add`` overwrites with the new episode's
        reset frame, moves to the side ring like that of any done step, and no n-step window
        runs across the restart."""
        if not self.size:
            return
        row, t = (self.pos - 1) % self.rows, self.total - 1
        newest = self.frames[self.total % self.frame_rows].clone()
        envs = np.flatnonzero(~self.done[row].cpu().numpy())  # done rows have their side frame
        self.done[row] = True
        if len(envs):
            self._add_side(t, row, envs, newest)
        if self._prev_done is not None:
            self._prev_done = np.ones_like(self._prev_done)

    # -- writing -------------------------------------------------------------------------
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
        """Store one batched step. ``obs``/``next_obs``: uint8 [E, S, H, W], oldest frame first;
        ``next_obs`` is ``VecStep.final_obs``; ``obs_device``: ``obs`` already on the device (the
        copy acting read): its newest frame is stored from there, not uploaded again."""
        obs = np.asarray(obs)
        next_obs = np.asarray(next_obs)
        terminated = np.asarray(terminated, dtype=bool)
        done = np.logical_or(terminated, np.asarray(truncated, dtype=bool))
        start = self._starts(obs)
        # The stack rebuilt at a start row zeroes all but the newest frame; refuse stacks
        # padded otherwise (only start rows are checked: rare, and host-side).
        if start.any() and obs[start, :-1].any():
            raise ValueError(
                "FrameReplayBuffer: an episode's first observation is not zero-padded "
                "(older frames of the stack are non-zero); use ReplayBuffer for this env"
            )
        t, w = self.total, self._writes
        slot = t % self.frame_rows
        row = self.pos
        # only the newest frames cross to the device: a quarter of the stacks' bytes
        if obs_device is not None:
            self.frames[slot] = obs_device[:, -1]
        else:
            w.write(self.frames[slot], "obs", obs[:, -1])
        w.write(self.start[slot], "start", start)
        # Provisional newest frame of obs[t + 1] for the not-done rows (overwritten next add,
        # with the same values in those rows), so the newest step's next_obs is complete.
        newest_next = self.frames[(t + 1) % self.frame_rows]
        w.write(newest_next, "next_obs", next_obs[:, -1])
        w.write(self.action[row], "action", action)
        w.write(self.reward[row], "reward", reward)
        w.write(self.terminated[row], "terminated", terminated)
        w.write(self.done[row], "done", done)
        self.total = t + 1
        self.pos = (self.pos + 1) % self.rows
        self.size = min(self.size + 1, self.rows)
        envs = np.flatnonzero(done)
        if len(envs):
            self._add_side(t, row, envs, newest_next)
        # a copy (about 28 KB per env): the caller may reuse its arrays
        self._prev_final = next_obs.copy()
        self._prev_done = done

    def _starts(self, obs: np.ndarray) -> np.ndarray:
        """Which rows of ``obs`` begin a new stack (host-side, only done rows compared)."""
        num_envs = obs.shape[0]
        if self._prev_done is None:  # first add, or after load_state: compare every row
            if self._prev_final is None:
                return np.ones(num_envs, dtype=bool)
            rows = np.arange(num_envs)
        else:
            rows = np.flatnonzero(self._prev_done)
        start = np.zeros(num_envs, dtype=bool)
        if len(rows):
            prev = self._prev_final[rows].reshape(len(rows), -1)  # type: ignore[index]
            start[rows] = (obs[rows].reshape(len(rows), -1) != prev).any(axis=1)
        return start

    def _add_side(self, t: int, row: int, envs: np.ndarray, newest: torch.Tensor) -> None:
        """Keep the newest frame of ``final_obs`` of the done rows ``envs`` of step ``t``."""
        m = len(envs)
        oldest_live = self.total - self.size
        entries = np.arange(self.side_count, self.side_count + m)
        while True:  # grow (rarely) until no live entry would be overwritten
            cap = len(self._side_step)
            slots = entries % cap
            if m <= cap and not (self._side_step[slots] >= oldest_live).any():
                break
            self._grow_side(2 * cap)
        env_idx = torch.as_tensor(envs, device=self.device)
        self.side_frames[torch.as_tensor(slots, device=self.device)] = newest[env_idx]
        self.side_index[row, env_idx] = torch.as_tensor(entries, device=self.device)
        self._side_step[slots] = t
        self._side_entry[slots] = entries
        self.side_count += m

    def _grow_side(self, cap: int) -> None:
        """Re-lay the side ring out at capacity ``cap`` (entry k lives at slot k mod cap)."""
        old_frames, old_step, old_entry = self.side_frames, self._side_step, self._side_entry
        self.side_frames = torch.zeros(
            cap, *old_frames.shape[1:], dtype=old_frames.dtype, device=self.device
        )
        self._side_step = np.full(cap, -1, dtype=np.int64)
        self._side_entry = np.full(cap, -1, dtype=np.int64)
        used = np.flatnonzero(old_entry >= 0)
        new_slots = old_entry[used] % cap
        dev = self.device
        self.side_frames[torch.as_tensor(new_slots, device=dev)] = old_frames[
            torch.as_tensor(used, device=dev)
        ]
        self._side_step[new_slots] = old_step[used]
        self._side_entry[new_slots] = old_entry[used]

    # -- reading -------------------------------------------------------------------------
    def _stacks(self, step: torch.Tensor, env: torch.Tensor) -> torch.Tensor:
        """obs stacks [B, S, H, W] of absolute steps ``step`` [B] in columns ``env`` [B]."""
        s, f = self.frame_stack, self.frame_rows
        steps = step.unsqueeze(1) - self._ages  # [B, S], oldest first
        slots = steps % f
        cols = env.unsqueeze(1).expand(-1, s)
        frames = self.frames[slots, cols]  # [B, S, H, W]
        if s == 1:
            return frames
        # frame j (age a = S-1-j) is kept iff no start at steps T-a+1 … T: a reversed
        # cumulative OR over the start flags of the stack's newer frames
        starts = self.start[slots, cols]  # [B, S], start of the step of each frame
        blocked = torch.zeros_like(starts)
        blocked[:, :-1] = starts.flip(1)[:, : s - 1].cumsum(dim=1).flip(1).bool()
        # blocked[:, j] = any(starts[:, j+1:]): a newer frame of the stack starts an episode
        return frames * (~blocked).to(frames.dtype).view(*blocked.shape, 1, 1)

    def sample(self, batch_size: int) -> Batch:
        """Uniform over stored steps whose n-step window is complete (as ``ReplayBuffer``)."""
        return self.batch_at(sample_n_step_window(self, batch_size), self.total - self.size)

    def sample_fixed_shape(self, batch_size: int) -> Batch:
        """``sample`` for a CUDA graph: counters in a device tensor, no host reads (call
        ``refresh_counters`` after each ``add``, outside the graph). The graph reads
        ``side_frames`` by address: it must be captured again when that grows or is loaded
        (``storage_key`` changes)."""
        counters = self.refresh_counters()
        offset, env, oldest = draw_fixed_shape(self, counters, batch_size)
        w = n_step_window_at(self, offset, env, oldest)
        return self.batch_at(w, counters[2] - counters[1])

    def refresh_counters(self) -> torch.Tensor:
        """The device mirror of pos/size/total (made on first use), brought up to date."""
        if self._counters is None:
            self._counters = DeviceCounters(self.device)
        self._counters.refresh(self.pos, self.size, self.total)
        return self._counters.values

    def storage_key(self) -> tuple[int, ...]:
        """Addresses a captured sampler reads that can change (the side ring grows)."""
        return (self.side_frames.data_ptr(),)

    def batch_at(self, w: NStepWindow, oldest_step: int | torch.Tensor) -> Batch:
        """The transitions of sampled windows ``w``; ``oldest_step``: absolute step of the
        oldest stored row (``total − size``; a device tensor inside a graph)."""
        n = self.n_step
        offset, env, rows, steps, last = w.offset, w.env, w.rows, w.steps, w.last
        reward, discount = w.reward, w.discount
        first_step = oldest_step + offset  # absolute step of the first row
        last_step = first_step + steps - 1
        obs = self._stacks(first_step, env)
        last_stack = obs if n == 1 else self._stacks(last_step, env)
        # next_obs: the stack of last shifted by one, plus obs[last + 1]'s newest frame or,
        # on done steps, the newest frame of final_obs from the side ring
        side_slot = self.side_index[last, env] % self.side_frames.shape[0]
        newest = torch.where(
            self.done[last, env].view(-1, 1, 1),
            self.side_frames[side_slot],
            self.frames[(last_step + 1) % self.frame_rows, env],
        )
        next_obs = torch.cat([last_stack[:, 1:], newest.unsqueeze(1)], dim=1)
        return Batch(
            obs=obs,
            action=self.action[rows[:, 0], env],
            reward=reward,
            discount=discount,
            next_obs=next_obs,
        )

    # -- checkpointing -------------------------------------------------------------------
    def state_tensors(self) -> dict[str, torch.Tensor]:
        """The filled rows only until the ring wraps (then all of them): frame slots
        0 … total (the last one holds the newest ``next_obs`` frame), rows 0 … size − 1."""
        n = self.size
        slots = min(self.total + 1, self.frame_rows)
        tensors = {
            "frames": self.frames[:slots],
            "start": self.start[:slots],
            "action": self.action[:n],
            "reward": self.reward[:n],
            "terminated": self.terminated[:n],
            "done": self.done[:n],
            "side_index": self.side_index[:n],
            "side_frames": self.side_frames,
            "side_step": torch.from_numpy(self._side_step.copy()),
            "side_entry": torch.from_numpy(self._side_entry.copy()),
            "generator": self.generator.get_state(),
        }
        if self._prev_final is not None:
            tensors["prev_final"] = torch.from_numpy(self._prev_final.copy())
        return tensors

    def state_meta(self) -> dict[str, int]:
        return {
            "pos": self.pos,
            "size": self.size,
            "rows": self.rows,
            "total": self.total,
            "side_count": self.side_count,
            "frame_stack": self.frame_stack,
        }

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, int]) -> None:
        if meta["rows"] != self.rows:
            raise ValueError(f"replay has {meta['rows']} rows, expected {self.rows}")
        if meta.get("frame_stack", self.frame_stack) != self.frame_stack:
            raise ValueError(
                f"replay stacks {meta['frame_stack']} frames, expected {self.frame_stack}"
            )
        for key in ("frames", "start", "action", "reward", "terminated", "done", "side_index"):
            saved = tensors[key]  # the filled rows, or every row (older checkpoints)
            getattr(self, key)[: len(saved)].copy_(saved)
        self.side_frames = tensors["side_frames"].to(self.device).clone()
        self._side_step = tensors["side_step"].cpu().numpy().astype(np.int64).copy()
        self._side_entry = tensors["side_entry"].cpu().numpy().astype(np.int64).copy()
        self.generator.set_state(tensors["generator"].cpu())
        self.pos, self.size = int(meta["pos"]), int(meta["size"])
        self.total, self.side_count = int(meta["total"]), int(meta["side_count"])
        prev = tensors.get("prev_final")
        self._prev_final = None if prev is None else prev.cpu().numpy().copy()
        # The env may restart its episodes on resume (Atari does): compare every row once.
        self._prev_done = None
