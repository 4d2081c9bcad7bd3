"""What every algorithm provides, and the few pieces all of them share.

An algorithm is one file in ``agent/algos/`` holding, in one readable place:

- its config dataclass (extending :class:`agent.core.config.AgentConfig`; a Hydra group per agent),
- its head (``build_head``) and how unit values become Q-values (``q_values``),
- its target and loss as one pure rule function in the style of DeepMind's rlax, returning the
  per-sample loss [B] with shape checks at entry and the equation and paper in its docstring,
- its probe read-out (``readout``): how its units respond as "dopamine cells" (docs/science.md
  §4).

The :class:`~agent.learn.learner.Learner` keeps only what all agents share (optimiser, target sync,
acting, state). ``agent.algos`` registers every module of this package by its ``NAME``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from ..core.config import AgentConfig
from ..core.errors import ConfigError
from ..nn.networks import Head, QNetwork
from ..replay.buffer import Batch

#: The random draws inside acting and learning (IQN's τ): one generator, or one per member of a
#: population (agent.learn.population), each drawing its member's equal share of the batch rows.
Generators = torch.Generator | Sequence[torch.Generator]


@dataclass(frozen=True)
class UnitReadout:
    """The units of one head at one state: values θᵢ, asymmetries τᵢ (discounts γᵢ where they
    differ) and their response rule."""

    values: np.ndarray  # [N] in utility (reward) units
    taus: np.ndarray  # [N]
    rule: str  # "linear" (expectile / mean) | "huber" (quantile Huber, DQN Huber)
    kappa: float | None  # Huber threshold for rule "huber"
    representation: str  # "expectile" | "quantile" | "mean"
    note: str  # how the units were read (said in the output)
    # [N] each unit's discount per env step where units have their own (agent=tmrl); None:
    # every unit discounts with agent.gamma
    gammas: np.ndarray | None = None


class Algorithm(ABC):
    """One DQN-family agent. An instance holds its run-time constants (config, device, τ's)."""

    #: the name users pick with ``agent=<name>``
    name: ClassVar[str]
    #: its config dataclass (``agent.*`` keys)
    config_class: ClassVar[type[AgentConfig]]
    #: TensorBoard tag of its loss: ``loss/<loss_name>``
    loss_name: ClassVar[str]

    def __init__(self, cfg: Any, device: torch.device) -> None:
        self.cfg = cfg
        self.device = device

    @classmethod
    def validate(cls, cfg: Any) -> None:
        """Check this algorithm's own config values; raise ConfigError (one line)."""
        return None

    def graph_capture_problem(self) -> str | None:
        """Why this configuration's update cannot be captured in a CUDA graph (an op that syncs
        with the host), or None when it can."""
        return None

    # -- network -------------------------------------------------------------------------
    @abstractmethod
    def build_head(self, in_features: int, num_actions: int, image: bool) -> Head:
        """The head: torso features [B, F] → unit values [B, A, N], with a ``taus`` buffer."""

    def q_from_values(self, values: torch.Tensor) -> torch.Tensor:
        """Q-values [B, A] from unit values [B, A, N] (default: the units' mean)."""
        return values.mean(dim=-1)

    def q_values(self, net: QNetwork, obs: torch.Tensor, generator: Generators) -> torch.Tensor:
        """Q(x, ·) [B, A]: the mean of each action's return distribution."""
        return self.q_from_values(net(obs))

    def next_q_selector(
        self,
        online: QNetwork,
        next_obs: torch.Tensor,
        dist_q_t: torch.Tensor,
        generator: Generators,
    ) -> torch.Tensor:
        """Q-values [B, A] whose argmax is the bootstrap action: the online network's (double
        DQN, van Hasselt et al. 2016: online picks, target evaluates) or the target's own."""
        if self.cfg.double_dqn:
            return self.q_values(online, next_obs, generator)
        return self.q_from_values(dist_q_t)

    # -- learning ------------------------------------------------------------------------
    def forward_transition(
        self, online: QNetwork, target: QNetwork, batch: Batch, generator: Generators
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """What a fixed-τ head's rule function takes: the online unit values at x_tm1 (with
        gradients), the target network's at x_t, and the bootstrap selector's Q-values."""
        dist_q_tm1 = online(batch.obs)
        with torch.no_grad():
            dist_q_t = target(batch.next_obs)
            selector = self.next_q_selector(online, batch.next_obs, dist_q_t, generator)
        return dist_q_tm1, dist_q_t, selector

    @abstractmethod
    def loss(
        self, online: QNetwork, target: QNetwork, batch: Batch, generator: Generators
    ) -> torch.Tensor:
        """Per-sample loss [B] of ``online`` on ``batch`` against ``target`` (no reduction)."""

    # -- probes --------------------------------------------------------------------------
    #: whether ``unit_loss`` is defined (fixed unit values: no sampled τ, no atoms)
    measurable: ClassVar[bool] = False

    def unit_loss(
        self, pred: torch.Tensor, target: torch.Tensor, taus: torch.Tensor
    ) -> torch.Tensor:
        """The algorithm's loss [B] of units ``pred`` [B, N] against target samples [B, M] (the
        probes' measured responses take one gradient step on it)."""
        raise NotImplementedError(f"{self.name} has no per-unit loss to measure")

    @abstractmethod
    def readout(self, unit_values: np.ndarray, taus: np.ndarray) -> list[UnitReadout]:
        """The units [S, N] of the probed action at S states, as "dopamine cells"."""


def greedy_values(dist_q: torch.Tensor, q_selector: torch.Tensor) -> torch.Tensor:
    """dist_q [B, A, N] at the argmax action of q_selector [B, A] → [B, N]."""
    if q_selector.shape != dist_q.shape[:2]:
        raise ValueError(f"q_selector {tuple(q_selector.shape)} does not match {dist_q.shape}")
    b = torch.arange(dist_q.shape[0], device=dist_q.device)
    return dist_q[b, q_selector.argmax(dim=1)]


def taken_values(dist_q: torch.Tensor, a_tm1: torch.Tensor) -> torch.Tensor:
    """dist_q [B, A, N] at the taken actions a_tm1 [B] → [B, N]."""
    if dist_q.dim() != 3 or a_tm1.shape != dist_q.shape[:1]:
        raise ValueError(
            f"dist_q [B, A, N] and a_tm1 [B] expected, got {dist_q.shape}, {a_tm1.shape}"
        )
    b = torch.arange(dist_q.shape[0], device=dist_q.device)
    return dist_q[b, a_tm1]


def check_transition(r_t: torch.Tensor, discount_t: torch.Tensor, batch: int) -> None:
    if r_t.shape != (batch,) or discount_t.shape != (batch,):
        raise ValueError(
            f"r_t and discount_t must be [{batch}], got {r_t.shape}, {discount_t.shape}"
        )


def require_positive(cfg: Any, *keys: str) -> None:
    for key in keys:
        value = getattr(cfg, key)
        if value is None or not value > 0:
            raise ConfigError(f"agent.{key} must be positive, got {value}")
