"""A task family whose return distribution is known exactly at every state: the
known-distribution control of issue 36 (item 2).

``dopa/KnownChain-v0`` is a chain of ``steps`` = D states visited in order, one action
(``Discrete(1)``: the policy is fixed, the task is pure prediction). Leaving state t pays a
reward drawn independently of everything else: from the categorical ``step_values`` /
``step_probs`` at t < D − 1 and from ``final_values`` / ``final_probs`` at the last state, whose
transition ends the episode. The observation is one-hot over the D states plus the terminal one,
so it identifies the state.

The return from state t under discount γ is G_t = Σ_{k=t}^{D−1} γ^{k−t} r_k, a sum of
independent scaled categoricals, so its distribution is the exact finite categorical
r_t ⊕ γ·G_{t+1} (:meth:`KnownChain.return_distribution`). State D − 1 is the lab tasks'
pre-outcome state (its TD target is the reward itself); every earlier state's value comes from
bootstrapping, D − 1 − t steps deep, which is what this control adds to the lab tasks.

What it builds in: the rewards are independent of the path, so every state's distribution is a
convolution of the remaining steps' rewards (nothing about the past is carried forward), and
the defaults (steps of 0 or 1 with equal odds, then a jackpot of 5 with probability 0.2) make
the return at the early states bimodal and skewed, unlike a Gaussian. The discount is the
agent's (``agent.gamma``), not the env's: the targets are computed for the γ a run trained with.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

KNOWN_CHAIN_ID = "dopa/KnownChain-v0"
#: atoms of a return distribution closer than this are merged (sums of scaled rewards)
ATOM_DECIMALS = 10


def _categorical(
    values: Sequence[float], probs: Sequence[float], name: str
) -> tuple[np.ndarray, np.ndarray]:
    v = np.asarray([float(x) for x in values], dtype=np.float64)
    p = np.asarray([float(x) for x in probs], dtype=np.float64)
    if v.ndim != 1 or v.size == 0 or p.shape != v.shape:
        raise ValueError(f"{name}: values and probs must be non-empty lists of one length")
    if not (np.all(np.isfinite(v)) and np.all(np.isfinite(p))) or np.any(p < 0) or p.sum() <= 0:
        raise ValueError(f"{name}: values must be finite and probs non-negative weights")
    return v, p / p.sum()


def merge_atoms(values: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A categorical with equal atoms merged (to :data:`ATOM_DECIMALS` decimals), sorted."""
    uniq, inverse = np.unique(np.round(values, ATOM_DECIMALS), return_inverse=True)
    return uniq, np.bincount(inverse.ravel(), weights=probs.ravel(), minlength=uniq.size)


class KnownChain(gym.Env):
    """The chain task of the module docstring. Its state is ``t`` and the env's own generator
    (plain attributes), so checkpoints resume it and the in-task probe deep-copies it."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        steps: int = 5,
        step_values: Sequence[float] = (0.0, 1.0),
        step_probs: Sequence[float] = (0.5, 0.5),
        final_values: Sequence[float] = (0.0, 5.0),
        final_probs: Sequence[float] = (0.8, 0.2),
        render_mode: str | None = None,
    ) -> None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        self.steps = steps
        self.step_values, self.step_probs = _categorical(step_values, step_probs, "step rewards")
        self.final_values, self.final_probs = _categorical(
            final_values, final_probs, "final rewards"
        )
        self.observation_space = gym.spaces.Box(0.0, 1.0, (steps + 1,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(1)
        self.render_mode = render_mode
        self.t = 0

    # ---- the analytic side ----------------------------------------------------------------
    def reward_distribution(self, state: int) -> tuple[np.ndarray, np.ndarray]:
        """(values, probs) of the reward paid on leaving ``state``."""
        self._check_state(state)
        if state == self.steps - 1:
            return self.final_values.copy(), self.final_probs.copy()
        return self.step_values.copy(), self.step_probs.copy()

    def return_distribution(self, state: int, gamma: float) -> tuple[np.ndarray, np.ndarray]:
        """(values, probs) of the discounted return G from ``state``, exactly: the backward
        recursion G_t = r_t + γ·G_{t+1}, G_D = 0, over independent categoricals (atoms equal
        to :data:`ATOM_DECIMALS` decimals merged, values sorted)."""
        self._check_state(state)
        if not 0.0 <= float(gamma) <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma}")
        values, probs = np.zeros(1), np.ones(1)
        for t in range(self.steps - 1, state - 1, -1):
            r, p = self.reward_distribution(t)
            values, probs = merge_atoms(
                r[:, None] + float(gamma) * values[None, :], p[:, None] * probs[None, :]
            )
        return values, probs

    def observation(self, state: int) -> np.ndarray:
        """The one-hot observation of ``state`` (0..steps; ``steps`` is terminal)."""
        if not 0 <= state <= self.steps:
            raise ValueError(f"state must be in 0..{self.steps}, got {state}")
        obs = np.zeros(self.steps + 1, dtype=np.float32)
        obs[state] = 1.0
        return obs

    def _check_state(self, state: int) -> None:
        if not 0 <= state < self.steps:
            raise ValueError(f"state must be a non-terminal state 0..{self.steps - 1}, got {state}")

    # ---- gymnasium API --------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.t = 0
        return self.observation(0), {"state": 0}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if not self.action_space.contains(action):
            raise ValueError(f"invalid action {action!r}; the action space is Discrete(1)")
        if self.t >= self.steps:
            raise RuntimeError("step() after the episode ended; call reset()")
        values, probs = self.reward_distribution(self.t)
        reward = float(values[self.np_random.choice(values.size, p=probs)])
        self.t += 1
        terminated = self.t >= self.steps
        return self.observation(self.t), reward, terminated, False, {"state": self.t}


def register_known_tasks() -> None:
    """Register ``dopa/KnownChain-v0`` with gymnasium (idempotent; never "solved")."""
    if KNOWN_CHAIN_ID not in gym.registry:
        gym.register(id=KNOWN_CHAIN_ID, entry_point=f"{__name__}:KnownChain", reward_threshold=None)


register_known_tasks()
