"""ER-DQN (Rowland et al. 2019, "Statistics and Samples in Distributional Reinforcement
Learning"): N expectiles at τ̂ᵢ = (2i−1)/2N, trained with the expectile loss against samples
imputed from the target expectiles. Without imputation (``imputation=none``, the target
expectiles used as samples) the distribution collapses toward the mean."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..core.config import AgentConfig
from ..core.errors import ConfigError
from ..nn import losses
from ..nn.imputation import ImputationPlan, impute_samples
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

NAME = "erdqn"
IMPUTATIONS = ("root", "none")


@dataclass
class ERDQNConfig(AgentConfig):
    name: str = NAME
    num_units: int = 25  # expectiles
    imputation: str = "root"  # "root": solve for samples; "none": naive, targets = expectiles
    # optional Levenberg–Marquardt refinement steps after the closed-form imputation
    imputation_iterations: int = 0


def expectile_q_learning(
    dist_q_tm1: torch.Tensor,
    tau: torch.Tensor,
    a_tm1: torch.Tensor,
    r_t: torch.Tensor,
    discount_t: torch.Tensor,
    q_t_selector: torch.Tensor,
    dist_q_t: torch.Tensor,
    imputation: str = "root",
    imputation_iterations: int = 0,
    plan: ImputationPlan | None = None,
) -> torch.Tensor:
    """Expectile regression Q-learning with imputation (Rowland et al. 2019, ER-DQN), per sample:

        z = Impute(ε(x_t, a*), τ)   (samples whose τ-expectiles are the target expectiles)
        u_ij = r_t + γ_t z_j − ε_i(x_tm1, a_tm1),   a* = argmax q_t_selector
        L_b = Σ_i mean_j |τ_i − 1{u_ij < 0}| · u_ij²

    Minimised by ε_i = the τ_i-expectile of the target distribution. dist_q_tm1, dist_q_t
    [B, A, N]; tau [N]; q_t_selector [B, A]; a_tm1, r_t, discount_t [B] → [B]. ``plan``: the
    imputation's :class:`ImputationPlan` of ``tau``, when the caller keeps one."""
    check_transition(r_t, discount_t, dist_q_tm1.shape[0])
    pred = taken_values(dist_q_tm1, a_tm1)
    with torch.no_grad():
        z = greedy_values(dist_q_t, q_t_selector)
        if imputation == "root":
            z = impute_samples(z, tau, iterations=imputation_iterations, plan=plan)
        target = r_t.unsqueeze(1) + discount_t.unsqueeze(1) * z
    return losses.expectile_loss(pred, target, tau)


def expectile_mean_readout(taus: torch.Tensor) -> torch.Tensor:
    """Weights w [N] with mean ≈ values @ w: the mean is the ½-expectile, read by linear
    interpolation between the two units whose τ straddle ½ (exact when a unit sits at ½, as
    with an odd number of midpoint τ's)."""
    weights = torch.zeros_like(taus)
    if len(taus) == 1:
        return weights + 1.0
    hi = int(torch.searchsorted(taus, 0.5).clamp(1, len(taus) - 1))
    frac = float(((0.5 - taus[hi - 1]) / (taus[hi] - taus[hi - 1])).clamp(0.0, 1.0))
    weights[hi - 1], weights[hi] = 1.0 - frac, frac
    return weights


class ERDQN(Algorithm):
    name = NAME
    config_class = ERDQNConfig
    loss_name = "expectile"

    def __init__(self, cfg: Any, device: torch.device) -> None:
        super().__init__(cfg, device)
        self.taus = midpoint_taus(cfg.num_units).to(device)
        # the mean as a fixed linear read-out of the expectiles
        self.mean_readout = expectile_mean_readout(self.taus)
        # what the imputation needs of τ alone, once (before any CUDA graph is captured)
        self.imputation_plan = ImputationPlan.build(self.taus, cfg.num_units)

    @classmethod
    def validate(cls, cfg: Any) -> None:
        if cfg.imputation not in IMPUTATIONS:
            raise ConfigError(f"agent.imputation must be 'root' or 'none', got '{cfg.imputation}'")
        if cfg.imputation_iterations < 0:
            raise ConfigError(
                f"agent.imputation_iterations must be >= 0, got {cfg.imputation_iterations}"
            )

    def graph_capture_problem(self) -> str | None:
        if self.cfg.imputation == "root" and self.cfg.imputation_iterations > 0:
            # the Levenberg–Marquardt polish uses batched cholesky_solve (agent/nn/imputation.py)
            return (
                "agent.imputation_iterations > 0 uses batched cholesky_solve, which synchronises "
                "with the host on CUDA"
            )
        return None

    def build_head(self, in_features: int, num_actions: int, image: bool) -> Head:
        return UnitsHead(in_features, num_actions, self.taus)

    def q_from_values(self, values: torch.Tensor) -> torch.Tensor:
        return values @ self.mean_readout

    def loss(
        self, online: QNetwork, target: QNetwork, batch: Batch, generator: Generators
    ) -> torch.Tensor:
        dist_q_tm1, dist_q_t, selector = self.forward_transition(online, target, batch, generator)
        return expectile_q_learning(
            dist_q_tm1,
            online.head.taus,
            batch.action,
            batch.reward,
            batch.discount,
            selector,
            dist_q_t,
            self.cfg.imputation,
            self.cfg.imputation_iterations,
            self.imputation_plan,
        )

    measurable = True

    def unit_loss(
        self, pred: torch.Tensor, target: torch.Tensor, taus: torch.Tensor
    ) -> torch.Tensor:
        return losses.expectile_loss(pred, target, taus)

    def readout(self, unit_values: np.ndarray, taus: np.ndarray) -> list[UnitReadout]:
        note = "ER-DQN expectile units, expectile-loss response"
        return [UnitReadout(v, taus, "linear", None, "expectile", note) for v in unit_values]


ALGORITHM = ERDQN
