"""IQN (Dabney et al. 2018b, "Implicit Quantile Networks for Distributional Reinforcement
Learning"): the quantile function at sampled τ through a cosine embedding multiplied into the
torso features; quantile Huber loss over N × N' sampled τ, K samples to act."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..core.config import AgentConfig
from ..nn.networks import Head, ImplicitHead, QNetwork
from ..replay.buffer import Batch
from .base import Algorithm, Generators, UnitReadout, require_positive
from .qrdqn import quantile_q_learning

NAME = "iqn"


@dataclass
class IQNConfig(AgentConfig):
    name: str = NAME
    huber_kappa: float = 1.0
    iqn_embedding_dim: int = 64  # cosine features
    iqn_num_taus: int = 64  # N (online) and N' (target) samples for the loss
    iqn_num_taus_act: int = 32  # K samples to act


class IQN(Algorithm):
    name = NAME
    config_class = IQNConfig
    loss_name = "quantile_huber"

    @classmethod
    def validate(cls, cfg: Any) -> None:
        require_positive(
            cfg, "huber_kappa", "iqn_embedding_dim", "iqn_num_taus", "iqn_num_taus_act"
        )

    def build_head(self, in_features: int, num_actions: int, image: bool) -> Head:
        # the paper's extra layer after the product only on image torsos: on an MLP torso every
        # layer after the product runs once per sampled τ, and the torso already gives the depth
        return ImplicitHead(in_features, num_actions, self.cfg.iqn_embedding_dim, hidden=image)

    def sample_taus(self, rows: int, n: int, generator: Generators) -> torch.Tensor:
        """τ ~ U(0, 1) [rows, n]. With one generator per population member, member k's rows
        (the k-th equal share) come from its own generator, so each member draws exactly what
        its single run would."""
        if isinstance(generator, torch.Generator):
            return torch.rand(rows, n, device=self.device, generator=generator)
        share = rows // len(generator)
        if share * len(generator) != rows:
            raise ValueError(f"{rows} rows do not split among {len(generator)} members")
        return torch.cat([torch.rand(share, n, device=self.device, generator=g) for g in generator])

    def q_values(self, net: QNetwork, obs: torch.Tensor, generator: Generators) -> torch.Tensor:
        """Q(x, ·) [B, A]: the mean over K sampled τ."""
        taus = self.sample_taus(obs.shape[0], self.cfg.iqn_num_taus_act, generator)
        return net(obs, taus).mean(dim=2)

    def loss(
        self, online: QNetwork, target: QNetwork, batch: Batch, generator: Generators
    ) -> torch.Tensor:
        batch_size, n = batch.obs.shape[0], self.cfg.iqn_num_taus
        taus = self.sample_taus(batch_size, n, generator)
        dist_q_tm1 = online(batch.obs, taus)  # [B, A, N]
        with torch.no_grad():
            taus_next = self.sample_taus(batch_size, n, generator)
            dist_q_t = target(batch.next_obs, taus_next)  # [B, A, N']
            # without double DQN the greedy action comes from the same N' target samples
            selector = self.next_q_selector(online, batch.next_obs, dist_q_t, generator)
        return quantile_q_learning(
            dist_q_tm1,
            taus,
            batch.action,
            batch.reward,
            batch.discount,
            selector,
            dist_q_t,
            self.cfg.huber_kappa,
        )

    def readout(self, unit_values: np.ndarray, taus: np.ndarray) -> list[UnitReadout]:
        """Units at the head's fixed grid τᵢ = (2i−1)/2N (what ``net(x)`` evaluates)."""
        note = f"IQN evaluated at the fixed grid tau_i = (2i-1)/2N, N = {taus.size}"
        kappa = float(self.cfg.huber_kappa)
        return [UnitReadout(v, taus, "huber", kappa, "quantile", note) for v in unit_values]


ALGORITHM = IQN
