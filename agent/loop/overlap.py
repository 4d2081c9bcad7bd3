"""Overlapped execution of the loop body: the envs step while the learner updates.

The one loop body (``agent.loop.body.train_cohort``) runs in one of two ways. Synchronously
it takes turns: act → step the envs (the learner idles) → store → update (the envs idle).
Overlapped (``train.overlap``, one member only) each iteration is

    act on obs_t (weights after every update so far) → hand the actions to the envs
    (``VecEnv.step_async``: Atari steps on a thread, ALE without the GIL) → the updates due
    at the end of this step, sampled from the replay as it stands (without step t)
    → wait for the envs (``step_wait``) → store step t → hooks

so an iteration costs about max(env, updates) + acting instead of their sum. What changes
against the synchronous loop is only that the updates of an iteration do not yet see its own
step (one agent step of ``num_envs`` transitions out of a replay of up to 1M); the number of
updates after every iteration is still ``updates_due(env_steps)`` (the replay ratio is exact,
``tests/test_overlap.py``) and acting uses weights at most one iteration old.

On CUDA, observations go up through a pinned host buffer with ``non_blocking`` copies, the
actions come back through a pinned buffer with one event wait per iteration (the only host
sync of the loop), and the device copy of the observations that acting read is the one the
replay stores (``Replay.add(obs_device=…)``: no second upload; the synchronous body on CUDA
goes through the same :class:`HostDeviceLink`). ``train.overlap``: ``auto`` is
on for CUDA + Atari unless ``deterministic``; the CPU default stays synchronous and bit-exact.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from ..core.config import OVERLAP_MODES
from ..core.errors import ConfigError
from ..envs import registry as env_families
from .hooks import Evaluation, MemberDivergence, evaluation_result
from .run import Run, TrainState


def overlap_enabled(mode: str, device: torch.device, env_family: str, deterministic: bool) -> bool:
    """Whether ``train.overlap=mode`` runs the overlapped loop (``auto``: on CUDA, for a family
    whose envs step outside Python (Atari), not deterministic); raises ``ConfigError`` for an
    unknown mode."""
    if mode not in OVERLAP_MODES:
        raise ConfigError(f"train.overlap must be one of {', '.join(OVERLAP_MODES)}, got '{mode}'")
    if mode == "auto":
        outside = env_families.get(env_family).steps_outside_python
        return device.type == "cuda" and outside and not deterministic
    return mode == "on"


class HostDeviceLink:
    """Observations up and actions down with one host sync per iteration.

    CUDA: ``upload`` copies the observations into a pinned staging buffer and from there into a
    persistent device buffer with ``non_blocking=True``; ``download`` copies the actions into a
    pinned buffer and waits on one event. Reusing the staging buffer is safe because the event
    wait of an iteration comes after its upload in stream order. CPU: no copies at all."""

    def __init__(self, device: torch.device, num_envs: int, obs_shape: tuple[int, ...], dtype: Any):
        self.device = device
        self.cuda = device.type == "cuda"
        if self.cuda:
            torch_dtype = torch.uint8 if np.dtype(dtype) == np.uint8 else torch.float32
            self.obs_host = torch.empty((num_envs, *obs_shape), dtype=torch_dtype).pin_memory()
            self.obs_device = torch.empty_like(self.obs_host, device=device)
            self.actions_host = torch.empty(num_envs, dtype=torch.int64).pin_memory()
            self.event = torch.cuda.Event()  # type: ignore[no-untyped-call]

    def upload(self, obs: np.ndarray) -> torch.Tensor:
        """The observations on the device (CUDA: asynchronously, through pinned memory)."""
        if not self.cuda:
            return torch.as_tensor(obs)
        np.copyto(self.obs_host.numpy(), obs, casting="unsafe")
        self.obs_device.copy_(self.obs_host, non_blocking=True)
        return self.obs_device

    def download(self, actions: torch.Tensor) -> np.ndarray:
        """The actions on the host, after one event wait (CUDA)."""
        if not self.cuda:
            return actions.numpy()
        self.actions_host.copy_(actions, non_blocking=True)
        self.event.record()
        self.event.synchronize()
        return self.actions_host.numpy().copy()  # the pinned buffer is reused next iteration


class BackgroundEvaluation(Evaluation):
    """Evaluation that does not stop training (as PQN evaluates): when due, the separate eval
    envs reset and then take one step per training iteration, sent right after the training
    envs' step so that both step while the learner updates. Acting is ε_eval-greedy with the
    current weights (they change during the evaluation: it scores the policy of those
    iterations) from a generator of its own. The result, the first ``eval_episodes`` episodes
    finished as in ``evaluate_policy``, is recorded under the env step at which it started;
    solve detection is the same. One evaluation at a time; one due while another runs starts
    at the next interval. The final evaluation of a run stays blocking (``hooks.finish``)."""

    def __init__(self, every: int, start_step: int) -> None:
        super().__init__(every, start_step)
        self.active = False
        self.obs: np.ndarray | None = None
        self.returns: list[float] = []
        self.started_at = 0
        self.clock = 0.0
        self.generator: torch.Generator | None = None

    def fire(self, run: Run, state: TrainState, divergence: MemberDivergence) -> None:
        if self.active:
            return
        seed = run.cfg.seed + 10_000
        self.obs = run.eval_env.reset(seed=seed)
        self.generator = torch.Generator(device=run.learner.device)
        self.generator.manual_seed(seed)
        self.returns, self.started_at = [], state.env_steps
        self.clock = time.perf_counter()
        self.active = True

    def send(self, run: Run) -> None:
        """Act on the eval envs and start their step (no-op when no evaluation runs)."""
        if not self.active:
            return
        x = torch.as_tensor(self.obs, device=run.learner.device)
        eps = run.cfg.agent.eps_eval
        actions = run.learner.act(x, eps, self.generator).cpu().numpy()
        run.eval_env.step_async(actions)

    def receive(self, run: Run, state: TrainState) -> None:
        """Collect the eval envs' step; record the result once enough episodes finished."""
        if not self.active:
            return
        step = run.eval_env.step_wait()
        self.obs = step.obs
        self.returns.extend(step.episode_returns)
        episodes = run.cfg.train.eval_episodes
        if len(self.returns) >= episodes:
            self.active = False
            wall_s = time.perf_counter() - self.clock
            result = evaluation_result(
                run, self.started_at, self.returns[:episodes], wall_s, paused=False
            )
            self.record(run, state, result)
