"""The one batched interface every env family implements, so the training loop never branches."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class VecStep:
    """Result of one batched step (same-step autoreset).

    obs:        next observations to act on; rows of finished envs already hold the reset obs.
    reward:     float32 [E], the training reward (clipped on Atari when configured).
    terminated: bool [E], true terminal states (no bootstrap).
    truncated:  bool [E], time limits (bootstrap from ``final_obs``).
    final_obs:  the real next observation of every env: equals ``obs`` except in finished rows,
                which hold the last observation of the episode (what replay must store).
    episode_returns / episode_lengths: one entry per episode that finished in this step, with
                the *unclipped* return (what evaluation and TensorBoard report).
    """

    obs: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    final_obs: np.ndarray
    episode_returns: list[float] = field(default_factory=list)
    episode_lengths: list[int] = field(default_factory=list)


class VecEnv(ABC):
    """A batch of ``num_envs`` environments with a discrete action space."""

    env_id: str
    num_envs: int
    observation_shape: tuple[int, ...]
    observation_dtype: np.dtype
    num_actions: int
    reward_threshold: float | None = None
    frames_per_step: int = 1  # emulator frames per agent step (frame skip on Atari)
    # "vector" | "image" | "frame_stack" (consecutive observations share all but one frame:
    # replay then stores each frame once)
    observation_kind: str = "vector"

    @abstractmethod
    def reset(self, seed: int | None = None) -> np.ndarray:
        """Reset all envs (seeded: env i gets ``seed + i``); returns obs [E, *observation_shape]."""

    @abstractmethod
    def step(self, actions: np.ndarray) -> VecStep:
        """Step every env with ``actions`` (int [E])."""

    # Split stepping for the overlapped loop (agent/loop/overlap.py): ``step_async`` returns at once
    # where the envs step outside Python (Atari's C++ threads), ``step_wait`` returns the step.
    # The default steps inside ``step_wait`` (no overlap, same result).
    _pending: np.ndarray | None = None

    def step_async(self, actions: np.ndarray) -> None:
        """Start stepping every env with ``actions``; ``step_wait`` returns the result."""
        self._pending = np.asarray(actions)

    def step_wait(self) -> VecStep:
        """The step started by ``step_async``."""
        actions, self._pending = self._pending, None
        if actions is None:
            raise RuntimeError("step_wait without step_async")
        return self.step(actions)

    def get_state(self) -> dict[str, Any] | None:
        """JSON-able state for a bit-exact resume (with ``obs``, the observation to act on
        next), or None where the state lives outside Python (Atari's C++ envs: their episodes
        restart on resume)."""
        return None

    def check_state(self, state: Any) -> None:
        """ValueError (one line naming the field) unless ``set_state`` would restore ``state``
        into this env; changes nothing. A checkpoint's env state is checked with this before
        any part of the run is restored: what a snapshot holds is each family's own business."""
        raise ValueError(f"env_state: {type(self).__name__} keeps no env state in checkpoints")

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore what ``get_state`` returned (checked first: ``check_state``)."""
        raise NotImplementedError(f"{type(self).__name__} cannot restore its state")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""

    def render_frame(self) -> np.ndarray | None:
        """An RGB frame of env 0 for videos, if the env family supports it."""
        return None
