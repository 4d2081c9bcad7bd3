"""Classical TD population: N units, every one trained with the symmetric mean-squared TD loss.

All units converge to the mean return (Sutton 1988; the classical-TD model of Dabney et al.
2020), so any spread between them comes from initialisation and noise only: the baseline the
dopamine-cell probes compare distributional agents against."""

from __future__ import annotations

from dataclasses import dataclass

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
    taken_values,
)

NAME = "classical"


@dataclass
class ClassicalConfig(AgentConfig):
    name: str = NAME
    num_units: int = 25


def mean_td_learning(
    v_tm1: torch.Tensor,
    a_tm1: torch.Tensor,
    r_t: torch.Tensor,
    discount_t: torch.Tensor,
    q_t_selector: torch.Tensor,
    v_t: torch.Tensor,
) -> torch.Tensor:
    """TD learning of N mean-units, per sample:

        L_b = Σ_i mean_j ½ (r_t + γ_t · V_j(x_t, a*) − V_i(x_tm1, a_tm1))²

    with a* = argmax q_t_selector: each unit regresses on the mean of the population's targets.
    v_tm1, v_t: [B, A, N]; q_t_selector [B, A]; a_tm1, r_t, discount_t [B] → [B]."""
    check_transition(r_t, discount_t, v_tm1.shape[0])
    pred = taken_values(v_tm1, a_tm1)
    with torch.no_grad():
        target = r_t.unsqueeze(1) + discount_t.unsqueeze(1) * greedy_values(v_t, q_t_selector)
    return losses.mean_squared_td_loss(pred, target)


class Classical(Algorithm):
    name = NAME
    config_class = ClassicalConfig
    loss_name = "mean_squared_td"

    def build_head(self, in_features: int, num_actions: int, image: bool) -> Head:
        return UnitsHead(in_features, num_actions, torch.full((self.cfg.num_units,), 0.5))

    def loss(
        self, online: QNetwork, target: QNetwork, batch: Batch, generator: Generators
    ) -> torch.Tensor:
        v_tm1, v_t, selector = self.forward_transition(online, target, batch, generator)
        return mean_td_learning(v_tm1, batch.action, batch.reward, batch.discount, selector, v_t)

    measurable = True

    def unit_loss(
        self, pred: torch.Tensor, target: torch.Tensor, taus: torch.Tensor
    ) -> torch.Tensor:
        return losses.mean_squared_td_loss(pred, target)

    def readout(self, unit_values: np.ndarray, taus: np.ndarray) -> list[UnitReadout]:
        note = "classical population: every unit trained with the symmetric mean loss (tau = 0.5)"
        return [UnitReadout(v, taus, "linear", None, "mean", note) for v in unit_values]


ALGORITHM = Classical
