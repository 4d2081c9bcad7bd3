"""QR-DQN (Dabney et al. 2018, "Distributional Reinforcement Learning with Quantile
Regression"): N quantiles at τ̂ᵢ = (2i−1)/2N, trained with the quantile Huber loss."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..core.config import AgentConfig
from ..nn import losses
from ..nn.networks import Head, QNetwork, UnitsHead, midpoint_taus
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

NAME = "qrdqn"


@dataclass
class QRDQNConfig(AgentConfig):
    name: str = NAME
    num_units: int = 25  # quantiles (the paper's Atari setting: 200)
    huber_kappa: float = 1.0  # κ of the quantile Huber loss


def quantile_q_learning(
    dist_q_tm1: torch.Tensor,
    tau_tm1: torch.Tensor,
    a_tm1: torch.Tensor,
    r_t: torch.Tensor,
    discount_t: torch.Tensor,
    q_t_selector: torch.Tensor,
    dist_q_t: torch.Tensor,
    kappa: float = 1.0,
) -> torch.Tensor:
    """Quantile regression Q-learning (Dabney et al. 2018), per sample:

        u_ij = r_t + γ_t θ_j(x_t, a*) − θ_i(x_tm1, a_tm1),   a* = argmax q_t_selector
        L_b = Σ_i mean_j |τ_i − 1{u_ij < 0}| · Huber_κ(u_ij) / κ

    Minimised by θ_i = the τ_i-quantile of the target distribution. dist_q_tm1 [B, A, N];
    tau_tm1 [N] (QR-DQN) or [B, N] (IQN's sampled τ); dist_q_t [B, A, N']; q_t_selector
    [B, A]; a_tm1, r_t, discount_t [B] → [B]."""
    check_transition(r_t, discount_t, dist_q_tm1.shape[0])
    pred = taken_values(dist_q_tm1, a_tm1)
    with torch.no_grad():
        z = greedy_values(dist_q_t, q_t_selector)
        target = r_t.unsqueeze(1) + discount_t.unsqueeze(1) * z
    return losses.quantile_huber_loss(pred, target, tau_tm1, kappa)


class QRDQN(Algorithm):
    name = NAME
    config_class = QRDQNConfig
    loss_name = "quantile_huber"

    @classmethod
    def validate(cls, cfg: Any) -> None:
        require_positive(cfg, "huber_kappa")

    def build_head(self, in_features: int, num_actions: int, image: bool) -> Head:
        return UnitsHead(in_features, num_actions, midpoint_taus(self.cfg.num_units))

    def loss(
        self, online: QNetwork, target: QNetwork, batch: Batch, generator: Generators
    ) -> torch.Tensor:
        dist_q_tm1, dist_q_t, selector = self.forward_transition(online, target, batch, generator)
        return quantile_q_learning(
            dist_q_tm1,
            online.head.taus,
            batch.action,
            batch.reward,
            batch.discount,
            selector,
            dist_q_t,
            self.cfg.huber_kappa,
        )

    measurable = True

    def unit_loss(
        self, pred: torch.Tensor, target: torch.Tensor, taus: torch.Tensor
    ) -> torch.Tensor:
        return losses.quantile_huber_loss(pred, target, taus, self.cfg.huber_kappa)

    def readout(self, unit_values: np.ndarray, taus: np.ndarray) -> list[UnitReadout]:
        note = "QR-DQN quantile units, quantile-Huber response"
        kappa = float(self.cfg.huber_kappa)
        return [UnitReadout(v, taus, "huber", kappa, "quantile", note) for v in unit_values]


ALGORITHM = QRDQN
