"""Networks as a torso plus a swappable head.

Every head maps torso features to unit values ``[B, A, N]`` and exposes the τ of each unit, so
the probes can read any head's units as "dopamine cells" (science.md §4).
"""

from __future__ import annotations

import math

import torch
from torch import nn


class MLPTorso(nn.Module):
    """Fully connected torso for vector observations (classic control, lab tasks)."""

    def __init__(self, obs_shape: tuple[int, ...], hidden: list[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        size = math.prod(obs_shape)
        for width in hidden:
            layers += [nn.Linear(size, width), nn.ReLU()]
            size = width
        self.net = nn.Sequential(*layers)
        self.out_features = size

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs.float())


class NatureCNNTorso(nn.Module):
    """Mnih et al. 2015 torso: uint8 frames [B, C, 84, 84] scaled to [0, 1] on the device."""

    def __init__(self, obs_shape: tuple[int, ...]) -> None:
        super().__init__()
        channels = obs_shape[0]
        self.net = nn.Sequential(
            nn.Conv2d(channels, 32, 8, stride=4),
            nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            size = self.net(torch.zeros(1, *obs_shape)).shape[1]
        self.fc = nn.Sequential(nn.Linear(size, 512), nn.ReLU())
        self.out_features = 512

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.float() * (1.0 / 255.0)
        return self.fc(self.net(x.contiguous(memory_format=torch.channels_last)))


class UnitsHead(nn.Module):
    """Linear head with N units per action at fixed τ (scalar DQN: N = 1 at τ = 0.5).

    Used for scalar DQN, the classical population (all τ = 0.5), QR-DQN (τ̂ᵢ = (2i−1)/2N),
    ER-DQN expectiles, and C51 (units are atom logits; τ are the atoms' CDF midpoints).
    """

    def __init__(self, in_features: int, num_actions: int, taus: torch.Tensor) -> None:
        super().__init__()
        self.num_actions = num_actions
        self.num_units = int(taus.numel())
        self.linear = nn.Linear(in_features, num_actions * self.num_units)
        self.register_buffer("taus", taus.clone().float())

    def forward(self, features: torch.Tensor, taus: torch.Tensor | None = None) -> torch.Tensor:
        return self.linear(features).view(-1, self.num_actions, self.num_units)


class ImplicitHead(nn.Module):
    """IQN head (Dabney et al. 2018, "Implicit Quantile Networks"): the quantile function at
    sampled τ. φ(τ) = ReLU(W·cos(π·i·τ) + b), i = 0..d−1, multiplied into the torso features.

    ``hidden=True`` adds the paper's fully connected layer after the product (Atari). The MLP
    torso of control tasks skips it: every layer after the product runs once per sampled τ,
    and the torso's own layers already give the depth the other agents have."""

    def __init__(
        self, in_features: int, num_actions: int, embedding_dim: int, hidden: bool = True
    ) -> None:
        super().__init__()
        self.num_actions = num_actions
        self.embed = nn.Linear(embedding_dim, in_features)
        self.hidden = (
            nn.Sequential(nn.Linear(in_features, in_features), nn.ReLU())
            if hidden
            else nn.Identity()
        )
        self.out = nn.Linear(in_features, num_actions)
        self.register_buffer("frequencies", torch.arange(embedding_dim).float() * math.pi)
        # τ used when a fixed grid is wanted (probes): midpoints of N = 32 bins
        self.register_buffer("taus", (torch.arange(32).float() + 0.5) / 32)

    def forward(self, features: torch.Tensor, taus: torch.Tensor | None = None) -> torch.Tensor:
        """features [B, F], taus [B, K] (or [K]) → values [B, A, K]."""
        if taus is None:
            taus = self.taus
        if taus.dim() == 1:
            taus = taus.expand(features.shape[0], -1)
        phi = torch.relu(self.embed(torch.cos(taus.unsqueeze(-1) * self.frequencies)))
        x = self.hidden(features.unsqueeze(1) * phi)  # [B, K, F]
        return self.out(x).transpose(1, 2)  # [B, A, K]


class QNetwork(nn.Module):
    """Torso + head. ``forward(obs, taus=None) → unit values [B, A, N]``."""

    def __init__(self, torso: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.torso = torso
        self.head = head

    def forward(self, obs: torch.Tensor, taus: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.torso(obs), taus)


def fixed_taus(name: str, num_units: int) -> torch.Tensor:
    """The τ of each unit of a fixed-τ head (science.md §5)."""
    if name == "dqn":
        return torch.full((1,), 0.5)
    if name == "classical":
        return torch.full((num_units,), 0.5)
    # QR-DQN quantile midpoints τ̂ᵢ = (2i−1)/2N; also used for expectiles (Rowland et al. 2019
    # spread expectile levels over (0, 1) the same way) and as C51 atom CDF positions.
    return (2 * torch.arange(1, num_units + 1).float() - 1) / (2 * num_units)


def build_network(agent_cfg, obs_shape: tuple[int, ...], obs_dtype, num_actions: int) -> QNetwork:
    """The agent's network for an observation space: Nature CNN for image stacks, else MLP."""
    image = len(obs_shape) == 3
    torso = NatureCNNTorso(obs_shape) if image else MLPTorso(obs_shape, list(agent_cfg.hidden))
    if agent_cfg.name == "iqn":
        head: nn.Module = ImplicitHead(
            torso.out_features, num_actions, agent_cfg.iqn_embedding_dim, hidden=image
        )
    else:
        head = UnitsHead(
            torso.out_features, num_actions, fixed_taus(agent_cfg.name, agent_cfg.num_units)
        )
    return QNetwork(torso, head)
