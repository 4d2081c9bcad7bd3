"""A user's own environment, as a user package would ship it: importing this module registers
``ToyChain-v0`` with gymnasium (``env.id=toy_env:ToyChain-v0``, or ``env.imports=[toy_env]``
and ``env.id=ToyChain-v0``). tests/test_user_envs.py puts this folder on PYTHONPATH.

A chain of ``LENGTH`` states, observed one-hot; action 1 steps right, 0 left, and each step
slips to the other action with probability ``SLIP``. Reaching the right end pays a reward drawn
from ``END_REWARDS`` and ends the episode, so returns differ between rollouts from one state
(what the in-task probe needs). Its state is plain attributes and the env's own generator, so a
checkpoint resumes it and the probe clones it.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

LENGTH = 5
SLIP = 0.1
END_REWARDS = (0.5, 1.0, 2.0)


class ToyChain(gym.Env):  # type: ignore[type-arg]
    observation_space = gym.spaces.Box(0.0, 1.0, (LENGTH,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self) -> None:
        self.position = 0

    def _obs(self) -> np.ndarray:
        return np.eye(LENGTH, dtype=np.float32)[self.position]

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.position = 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        right = int(action) == 1
        if self.np_random.random() < SLIP:
            right = not right
        self.position = max(0, self.position + (1 if right else -1))
        if self.position == LENGTH - 1:
            return self._obs(), float(self.np_random.choice(END_REWARDS)), True, False, {}
        return self._obs(), 0.0, False, False, {}


if "ToyChain-v0" not in gym.registry:
    gym.register("ToyChain-v0", entry_point=ToyChain, max_episode_steps=30)
