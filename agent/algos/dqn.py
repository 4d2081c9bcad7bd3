"""DQN (Mnih et al. 2015, Nature): one scalar unit per action, Huber TD loss; with
``double_dqn=true`` the double-DQN target of van Hasselt et al. 2016. The classical-TD
baseline of the dopamine probes: one unit at τ = ½."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..core.config import AgentConfig
from ..nn import losses
from ..nn.networks import Head, QNetwork, UnitsHead
from ..replay.buffer import Batch
from .base import (
    Algorithm,
    Generators,
    UnitReadout,
    check_transition,
    greedy_values,
    require_positive,
    taken_values,
)

NAME = "dqn"


@dataclass
class DQNConfig(AgentConfig):
    name: str = NAME
    num_units: int = 1
    huber_kappa: float = 1.0  # Huber threshold κ of the TD error


def q_learning(
    q_tm1: torch.Tensor,
    a_tm1: torch.Tensor,
    r_t: torch.Tensor,
    discount_t: torch.Tensor,
    q_t_selector: torch.Tensor,
    q_t: torch.Tensor,
    kappa: float = 1.0,
) -> torch.Tensor:
    """Q-learning with a Huber loss (Mnih et al. 2015), per sample:

        L_b = Huber_κ(r_t + γ_t · q_t[a*] − q_tm1[a_tm1]),   a* = argmax_a q_t_selector[a]

    ``q_t_selector`` = the online net's Q at x_t gives double Q-learning (van Hasselt et al.
    2016), = ``q_t`` itself the original DQN target. q_tm1, q_t: [B, A, 1]; q_t_selector
    [B, A]; a_tm1, r_t, discount_t [B] (discount_t = γⁿ, 0 at terminals) → [B]."""
    check_transition(r_t, discount_t, q_tm1.shape[0])
    pred = taken_values(q_tm1, a_tm1)
    with torch.no_grad():
        target = r_t + discount_t * greedy_values(q_t, q_t_selector)[:, 0]
    return losses.huber_td_loss(pred[:, 0], target, kappa)


class DQN(Algorithm):
    name = NAME
    config_class = DQNConfig
    loss_name = "huber_td"

    @classmethod
    def validate(cls, cfg: Any) -> None:
        require_positive(cfg, "huber_kappa")

    def build_head(self, in_features: int, num_actions: int, image: bool) -> Head:
        return UnitsHead(in_features, num_actions, torch.full((1,), 0.5))

    def q_from_values(self, values: torch.Tensor) -> torch.Tensor:
        return values[..., 0]

    def loss(
        self, online: QNetwork, target: QNetwork, batch: Batch, generator: Generators
    ) -> torch.Tensor:
        q_tm1, q_t, selector = self.forward_transition(online, target, batch, generator)
        return q_learning(
            q_tm1, batch.action, batch.reward, batch.discount, selector, q_t, self.cfg.huber_kappa
        )

    measurable = True

    def unit_loss(
        self, pred: torch.Tensor, target: torch.Tensor, taus: torch.Tensor
    ) -> torch.Tensor:
        return losses.huber_td_loss(pred[:, 0], target[:, 0], self.cfg.huber_kappa)

    def readout(self, unit_values: np.ndarray, taus: np.ndarray) -> list[UnitReadout]:
        note = "DQN: one unit, Huber TD response (symmetric, tau = 0.5)"
        kappa = float(self.cfg.huber_kappa)
        return [UnitReadout(v, taus, "huber", kappa, "mean", note) for v in unit_values]


ALGORITHM = DQN
