"""Networks as a torso plus a swappable head.

Every head maps torso features to unit values ``[B, A, N]`` and exposes the τ of each unit, so
the probes can read any head's units as "dopamine cells" (docs/science.md §4). Which head an
agent uses is its algorithm's choice (``agent/algos/``); the torso is ``agent.torso``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..core.errors import ConfigError


class Torso(nn.Module):
    """Observations [B, *obs_shape] → features [B, out_features]."""

    out_features: int

    def input_dtype(self) -> torch.dtype:
        """The weights' dtype, which observations are cast to (uint8 frames, float64 arrays):
        float32, or float64 for a probe that measures a copy in double precision."""
        for p in self.parameters():
            return p.dtype
        return torch.float32


class Head(nn.Module):
    """Torso features [B, F] (and optionally τ) → unit values [B, A, N]; ``taus`` [N] are the
    units' fixed τ (IQN: the grid used when no τ is given)."""

    taus: torch.Tensor

    def forward(self, features: torch.Tensor, taus: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError


class MLPTorso(Torso):
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
        return self.net(obs.to(self.input_dtype()))


class NatureCNNTorso(Torso):
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
        x = obs.to(self.input_dtype()) * (1.0 / 255.0)
        return self.fc(self.net(x.contiguous(memory_format=torch.channels_last)))


class MinAtarTorso(Torso):
    """Young & Tian 2019 (MinAtar) torso: one 3×3 convolution with 16 channels and a 128-unit
    layer, for small image observations [C, H, W] (float or uint8 0/1 planes)."""

    def __init__(self, obs_shape: tuple[int, ...]) -> None:
        super().__init__()
        channels, height, width = obs_shape
        self.net = nn.Sequential(
            nn.Conv2d(channels, 16, 3, stride=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(16 * (height - 2) * (width - 2), 128),
            nn.ReLU(),
        )
        self.out_features = 128

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs.to(self.input_dtype()))


class UnitsHead(Head):
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


class PerUnitHiddenHead(Head):
    """Units with a hidden layer each (``agent.unit_hidden=K``): unit i of action a is
    θ_{a,i} = w_{a,i}·ReLU(A_i f + c_i) + b_{a,i}, so a gradient step on one unit's error
    moves the shared torso only through that unit's own K-unit layer."""

    def __init__(self, in_features: int, num_actions: int, taus: torch.Tensor, hidden: int):
        super().__init__()
        self.num_actions = num_actions
        self.num_units = n = int(taus.numel())
        bound_in, bound_h = 1 / math.sqrt(in_features), 1 / math.sqrt(hidden)
        self.w_in = nn.Parameter(torch.empty(n, hidden, in_features).uniform_(-bound_in, bound_in))
        self.b_in = nn.Parameter(torch.empty(n, hidden).uniform_(-bound_in, bound_in))
        self.w_out = nn.Parameter(torch.empty(num_actions, n, hidden).uniform_(-bound_h, bound_h))
        self.b_out = nn.Parameter(torch.empty(num_actions, n).uniform_(-bound_h, bound_h))
        self.register_buffer("taus", taus.clone().float())

    def forward(self, features: torch.Tensor, taus: torch.Tensor | None = None) -> torch.Tensor:
        h = torch.relu(torch.einsum("bf,nkf->bnk", features, self.w_in) + self.b_in)
        return torch.einsum("bnk,ank->ban", h, self.w_out) + self.b_out


class ImplicitHead(Head):
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
        self.frequencies: torch.Tensor
        self.register_buffer("frequencies", torch.arange(embedding_dim).float() * math.pi)
        # τ used when a fixed grid is wanted (probes): midpoints of N = 32 bins
        self.register_buffer("taus", midpoint_taus(32))

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

    def __init__(self, torso: Torso, head: Head, value_head: nn.Module | None = None) -> None:
        super().__init__()
        self.torso = torso
        self.head = head
        # agent.head_detach: the head sees a stop-gradient of the features; this scalar value
        # head (features → one value per action) carries the torso's learning signal instead
        self.value_head = value_head
        # bfloat16 autocast of the torso (precision=bf16); the head and loss stay float32
        self.torso_autocast: torch.dtype | None = None

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        if self.torso_autocast is None:
            return self.torso(obs)
        # no weight-cast cache: a CUDA graph capture must not keep cached casts (torch docs)
        with torch.autocast(obs.device.type, dtype=self.torso_autocast, cache_enabled=False):
            return self.torso(obs).float()

    def forward(self, obs: torch.Tensor, taus: torch.Tensor | None = None) -> torch.Tensor:
        features = self.features(obs)
        if self.value_head is not None:
            features = features.detach()
        return self.head(features, taus)

    def values(self, obs: torch.Tensor) -> torch.Tensor:
        """The value head's Q(x, ·) [B, A] (``agent.head_detach`` only)."""
        if self.value_head is None:
            raise ValueError("this network has no value head (agent.head_detach is off)")
        return self.value_head(self.features(obs))


def midpoint_taus(num_units: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """τ̂ᵢ = (2i − 1) / 2N, i = 1..N: the midpoints of N equal probability bins.

    QR-DQN's quantile levels (Dabney et al. 2018), also used for expectile levels (Rowland et
    al. 2019 spread them over (0, 1) the same way), C51's atom CDF positions in the probes and
    IQN's fixed probe grid. The one place this grid is computed."""
    # on the CPU explicitly: under a meta-device context (agent/learn/resources.py) a plain
    # arange goes through torch._refs, importing sympy and torch._dynamo (~0.9 s at start-up)
    return (2 * torch.arange(1, num_units + 1, dtype=dtype, device="cpu") - 1) / (2 * num_units)


# the smallest image side each convolutional torso takes: the Nature CNN's 8×8/4, 4×4/2 and
# 3×3/1 convolutions need 36 pixels, the MinAtar CNN's one 3×3 convolution 3
MIN_IMAGE_SIDE = {"nature_cnn": 36, "minatar_cnn": 3}


def resolve_torso(torso: str, obs_shape: tuple[int, ...]) -> str:
    """The torso for ``agent.torso``: ``auto`` picks from the observation shape: the Nature CNN
    for image stacks large enough for it (``MIN_IMAGE_SIDE``), the MinAtar CNN for smaller
    images such as MinAtar's 10×10×C, an MLP for vectors."""
    if torso != "auto":
        return torso
    if len(obs_shape) == 3:
        return "nature_cnn" if min(obs_shape[1:]) >= MIN_IMAGE_SIDE["nature_cnn"] else "minatar_cnn"
    return "mlp"


def build_torso(torso: str, obs_shape: tuple[int, ...], hidden: list[int]) -> Torso:
    """A torso by name (``agent.torso``, resolved with :func:`resolve_torso`)."""
    kind = resolve_torso(torso, obs_shape)
    if kind == "mlp":
        return MLPTorso(obs_shape, hidden)
    if len(obs_shape) != 3:
        raise ConfigError(f"agent.torso={kind} needs image observations [C, H, W], got {obs_shape}")
    side = MIN_IMAGE_SIDE.get(kind, 1)
    if min(obs_shape[1:]) < side:
        raise ConfigError(
            f"agent.torso={kind} needs images of at least {side}×{side} pixels, but this env's "
            f"are {obs_shape[1]}×{obs_shape[2]}; use agent.torso=auto (it picks the torso that "
            "fits)"
        )
    if kind == "nature_cnn":
        return NatureCNNTorso(obs_shape)
    if kind == "minatar_cnn":
        return MinAtarTorso(obs_shape)
    raise ConfigError(
        f"unknown agent.torso '{kind}'; expected auto, mlp, nature_cnn or minatar_cnn"
    )


def build_network(
    agent_cfg: Any,
    obs_shape: tuple[int, ...],
    num_actions: int,
    build_head: Callable[[int, int, bool], Head],
    default_torso: str = "auto",
) -> QNetwork:
    """Torso from ``agent.torso`` (``auto``: ``default_torso``, the env family's) plus the
    algorithm's head ``build_head(features, actions, image)`` (``image``: the torso is
    convolutional, for heads that add layers on images)."""
    torso_name = default_torso if agent_cfg.torso == "auto" else agent_cfg.torso
    torso = build_torso(torso_name, obs_shape, list(agent_cfg.hidden))
    image = not isinstance(torso, MLPTorso)
    head = build_head(torso.out_features, num_actions, image)
    unit_hidden = int(getattr(agent_cfg, "unit_hidden", 0))
    if unit_hidden:
        if not isinstance(head, UnitsHead):
            raise ConfigError(
                f"agent.unit_hidden needs a head of fixed units, not {type(head).__name__}"
            )
        head = PerUnitHiddenHead(torso.out_features, num_actions, head.taus, unit_hidden)
    value_head = None
    if getattr(agent_cfg, "head_detach", False):
        value_head = nn.Linear(torso.out_features, num_actions)
    return QNetwork(torso, head, value_head)
