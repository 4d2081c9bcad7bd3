"""C51 (Bellemare et al. 2017, "A Distributional Perspective on Reinforcement Learning"): a
categorical distribution on N evenly spaced atoms in [v_min, v_max], trained with the
cross-entropy to the projected distributional Bellman target."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from omegaconf import II

from ..core.config import AgentConfig
from ..core.errors import ConfigError
from ..nn import losses
from ..nn.networks import Head, QNetwork, UnitsHead, midpoint_taus
from ..replay.buffer import Batch
from .base import (
    Algorithm,
    Generators,
    UnitReadout,
    check_transition,
    greedy_values,
    taken_values,
)

NAME = "c51"


@dataclass
class C51Config(AgentConfig):
    name: str = NAME
    num_units: int = 51  # atoms
    # the support; by default the env's return range (env.value_min / env.value_max)
    v_min: float = II("env.value_min")
    v_max: float = II("env.value_max")


def categorical_q_learning(
    logits_tm1: torch.Tensor,
    a_tm1: torch.Tensor,
    r_t: torch.Tensor,
    discount_t: torch.Tensor,
    q_t_selector: torch.Tensor,
    logits_t: torch.Tensor,
    support: torch.Tensor,
) -> torch.Tensor:
    """Categorical Q-learning (Bellemare et al. 2017, Algorithm 1), per sample:

        L_b = −Σ_i (Φ 𝒯 p_t)_i · log p_i(x_tm1, a_tm1),   𝒯z_j = r_t + γ_t z_j,   p_t = p(x_t, a*)

    with a* = argmax q_t_selector and Φ the projection onto the support
    (:func:`agent.nn.losses.categorical_projection`). logits_tm1, logits_t: [B, A, N];
    q_t_selector [B, A]; a_tm1, r_t, discount_t [B]; support [N] → [B]."""
    check_transition(r_t, discount_t, logits_tm1.shape[0])
    if support.shape != logits_tm1.shape[2:]:
        raise ValueError(f"support {tuple(support.shape)} does not match {logits_tm1.shape}")
    pred = taken_values(logits_tm1, a_tm1)
    with torch.no_grad():
        next_logits = greedy_values(logits_t, q_t_selector)
        target_probs = losses.categorical_projection(
            torch.softmax(next_logits, dim=-1), r_t, discount_t, support
        )
    return losses.categorical_cross_entropy(pred, target_probs)


def categorical_quantiles(probs: np.ndarray, support: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """Quantiles of categorical distributions at ``taus``: [..., K] probs → [..., len(taus)].

    The inverse CDF of a distribution on atoms: the smallest atom whose CDF reaches τ.
    """
    cdf = np.cumsum(probs, axis=-1)
    cdf[..., -1] = 1.0  # guard against round-off leaving the last CDF value below 1
    idx = (cdf[..., None, :] < taus[:, None]).sum(axis=-1)  # [..., T]
    return support[np.minimum(idx, support.size - 1)]


class C51(Algorithm):
    name = NAME
    config_class = C51Config
    loss_name = "cross_entropy"

    def __init__(self, cfg: Any, device: torch.device) -> None:
        super().__init__(cfg, device)
        self.support = torch.linspace(cfg.v_min, cfg.v_max, cfg.num_units, device=device)

    @classmethod
    def validate(cls, cfg: Any) -> None:
        if not cfg.v_min < cfg.v_max:
            raise ConfigError(f"agent.v_min ({cfg.v_min}) must be below agent.v_max ({cfg.v_max})")
        if cfg.num_units < 2:
            raise ConfigError(f"agent.num_units must be >= 2 for c51, got {cfg.num_units}")

    def build_head(self, in_features: int, num_actions: int, image: bool) -> Head:
        # τ of the atoms' CDF midpoints: what the probes read the converted quantiles at
        return UnitsHead(in_features, num_actions, midpoint_taus(self.cfg.num_units))

    def q_from_values(self, values: torch.Tensor) -> torch.Tensor:
        return (torch.softmax(values, dim=-1) * self.support).sum(dim=-1)

    def loss(
        self, online: QNetwork, target: QNetwork, batch: Batch, generator: Generators
    ) -> torch.Tensor:
        logits_tm1, logits_t, selector = self.forward_transition(online, target, batch, generator)
        return categorical_q_learning(
            logits_tm1, batch.action, batch.reward, batch.discount, selector, logits_t, self.support
        )

    def readout(self, unit_values: np.ndarray, taus: np.ndarray) -> list[UnitReadout]:
        """The categorical distribution **converted to quantiles** at τ̂ᵢ = (2i−1)/2N (its
        inverse CDF on the support); these pseudo-units get the linear asymmetric response."""
        n = unit_values.shape[-1]
        taus_np = midpoint_taus(n, torch.float64).numpy()
        probs = torch.softmax(torch.as_tensor(unit_values), dim=-1).numpy()
        support = self.support.double().cpu().numpy()
        quant = categorical_quantiles(probs, support, taus_np)
        note = (
            f"C51 atoms converted to quantiles of the categorical distribution at "
            f"tau_i = (2i-1)/2N, N = {n}; pseudo-units respond linearly and asymmetrically"
        )
        return [UnitReadout(q, taus_np, "linear", None, "quantile", note) for q in quant]


ALGORITHM = C51
