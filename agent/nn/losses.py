"""Loss primitives shared by the algorithms (``agent/algos/``): pure functions, one per loss,
each returning the **per-sample** loss [B] (callers take the mean, or weight samples first).
Each docstring gives the equation and the paper.

Shapes: ``pred`` [B, N] are the online unit values of the taken action, ``target`` [B, M] are
target samples (already ``r + γⁿ·z``, treated as constants), ``taus`` [N] or [B, N].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def huber(u: torch.Tensor, kappa: float = 1.0) -> torch.Tensor:
    """Huber function: ½u² if |u| ≤ κ, else κ(|u| − ½κ).

    Written as c·(|u| − ½c) with c = min(|u|, κ): the same values and gradient in three
    elementwise ops, which matters for the [B, N, N] pairwise losses below."""
    abs_u = u.abs()
    clipped = abs_u.clamp(max=kappa)
    return clipped * (abs_u - 0.5 * clipped)


def check_shapes(pred: torch.Tensor, target: torch.Tensor, taus: torch.Tensor | None) -> None:
    """Fail loudly on mismatched shapes instead of broadcasting into a wrong loss."""
    if pred.dim() != 2 or target.dim() != 2 or pred.shape[0] != target.shape[0]:
        raise ValueError(
            f"pred [B, N] and target [B, M] expected, got {pred.shape}, {target.shape}"
        )
    if taus is not None and taus.shape not in ((pred.shape[1],), pred.shape):
        raise ValueError(
            f"taus must be [N] or [B, N] for pred {tuple(pred.shape)}, got {taus.shape}"
        )


def huber_td_loss(q: torch.Tensor, target: torch.Tensor, kappa: float = 1.0) -> torch.Tensor:
    """DQN loss (Mnih et al. 2015, Nature): Huber_κ(y_b − Q(x_b, a_b)) per sample.

    q, target: [B] → [B]."""
    if q.dim() != 1 or q.shape != target.shape:
        raise ValueError(f"q and target must both be [B], got {q.shape}, {target.shape}")
    return huber(target.detach() - q, kappa)


def _pairwise(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """u[b, i, j] = target[b, j] − pred[b, i] (target detached)."""
    return target.detach().unsqueeze(1) - pred.unsqueeze(2)


def _asymmetric_weight(u: torch.Tensor, taus: torch.Tensor) -> torch.Tensor:
    """|τ_i − 1{u_ij < 0}| for u [B, N, M] and τ [N] or [B, N]: τ above, 1 − τ below."""
    tau = taus.unsqueeze(-1)  # [N, 1] or [B, N, 1]
    return torch.where(u.detach() < 0, 1 - tau, tau)


def quantile_huber_loss(
    pred: torch.Tensor, target: torch.Tensor, taus: torch.Tensor, kappa: float = 1.0
) -> torch.Tensor:
    """Quantile Huber loss (Dabney et al. 2018, "Distributional RL with Quantile Regression").

        ρ_τ^κ(u) = |τ − 1{u < 0}| · Huber_κ(u) / κ,   u = y_j − θ_i(x, a)
        L_b = Σ_i mean_j ρ_{τ_i}^κ(u_ij)

    Minimised by θ_i = the τ_i-quantile of the target distribution."""
    check_shapes(pred, target, taus)
    u = _pairwise(pred, target)
    return (_asymmetric_weight(u, taus) * huber(u, kappa)).mean(dim=2).sum(dim=1) / kappa


def expectile_loss(pred: torch.Tensor, target: torch.Tensor, taus: torch.Tensor) -> torch.Tensor:
    """Expectile loss (Rowland et al. 2019, "Statistics and Samples in Distributional RL").

        L_b = Σ_i mean_j |τ_i − 1{u_ij < 0}| · u_ij²,   u_ij = y_j − ε_i(x, a)

    Minimised by ε_i = the τ_i-expectile of the target samples (τ = ½: the mean)."""
    check_shapes(pred, target, taus)
    u = _pairwise(pred, target)
    return (_asymmetric_weight(u, taus) * u.square()).mean(dim=2).sum(dim=1)


def mean_squared_td_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Classical TD population: every unit regresses on the mean of the targets.

        L_b = Σ_i mean_j ½ (y_j − V_i(x, a))²

    Its gradient is V_i − mean_j y_j for every unit, so all units converge to the mean return
    (Sutton 1988; the classical-TD model of Dabney et al. 2020): any spread between units comes
    from initialisation and noise only."""
    check_shapes(pred, target, None)
    u = _pairwise(pred, target)
    return (0.5 * u.pow(2)).mean(dim=2).sum(dim=1)


def categorical_projection(
    next_probs: torch.Tensor, rewards: torch.Tensor, discounts: torch.Tensor, support: torch.Tensor
) -> torch.Tensor:
    """C51 projection Φ 𝒯 (Bellemare et al. 2017, "A Distributional Perspective on RL", Alg. 1).

    Each target atom 𝒯z_j = clip(r + γ z_j, v_min, v_max) gives its mass p_j to the two nearest
    support atoms z_i in proportion to the hat function:
        (Φ𝒯p)_i = Σ_j clip(1 − |𝒯z_j − z_i| / Δz, 0, 1) · p_j
    next_probs [B, N], rewards and discounts [B], support [N] evenly spaced → [B, N]."""
    delta = support[1] - support[0]
    tz = (rewards.unsqueeze(1) + discounts.unsqueeze(1) * support.unsqueeze(0)).clamp(
        support[0], support[-1]
    )
    hat = (1.0 - (tz.unsqueeze(1) - support.view(1, -1, 1)).abs() / delta).clamp(min=0.0)
    return (hat * next_probs.unsqueeze(1)).sum(dim=2)


def categorical_cross_entropy(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """C51 loss: −Σ_i (Φ𝒯p)_i log p_i(x, a) per sample (Bellemare et al. 2017).

    logits, target_probs: [B, N] → [B]."""
    if logits.dim() != 2 or logits.shape != target_probs.shape:
        raise ValueError(
            f"logits and target_probs must both be [B, N], got {logits.shape}, {target_probs.shape}"
        )
    return -(target_probs.detach() * F.log_softmax(logits, dim=-1)).sum(dim=-1)
