"""Loss primitives shared by the algorithms (``agent/algos/``): pure functions, one per loss,
each returning the **per-sample** loss [B] (callers take the mean, or weight samples first).
Each docstring gives the equation and the paper.

Shapes: ``pred`` [B, N] are the online unit values of the taken action, ``target`` [B, M] are
target samples (already ``r + γⁿ·z``, treated as constants), ``taus`` [N] or [B, N].
"""

from __future__ import annotations

from typing import Any

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


def _asymmetric_slope(c: torch.Tensor, taus: torch.Tensor) -> torch.Tensor:
    """|τ_i − 1{c_ij < 0}| · c_ij for c [B, N, M] and τ [N] or [B, N], as
    τ·c + (1 − 2τ)·min(c, 0): on the CPU ``torch.where`` on a [B, N, M] mask costs about 8× these
    three arithmetic passes (docs/benchmarks.md)."""
    tau = taus.unsqueeze(-1)  # [N, 1] or [B, N, 1]
    return c.clamp(max=0).mul_(1 - 2 * tau).addcmul_(c, tau)


class _PairwiseLoss(torch.autograd.Function):
    """L_b = Σ_i mean_j ρ_i(u_ij) and its gradient −mean_j ρ_i'(u_ij) with respect to pred,
    both computed in one forward pass over the [B, N, M] pairs.

    Autograd through the elementwise expression would allocate and revisit each [B, N, M]
    intermediate again in the backward pass (about twenty passes where this makes seven); on
    the CPU those passes cost as much as the network's matrix products (docs/benchmarks.md).
    Gradients flow to ``pred`` only: targets and τ are constants of the loss, as before."""

    @staticmethod
    def forward(
        ctx: Any, pred: torch.Tensor, target: torch.Tensor, taus: torch.Tensor, kappa: float
    ) -> torch.Tensor:
        u = _pairwise(pred.detach(), target)
        if kappa > 0:  # quantile Huber: ρ = w·Huber_κ(u)/κ, ρ' = w·clamp(u, ±κ)/κ
            # Huber_κ(u) = c·(u − ½c) with c = clamp(u, −κ, κ), and w·c shares c's sign
            c = u.clamp(-kappa, kappa)
            slope = _asymmetric_slope(c, taus)
            loss = (slope * torch.add(u, c, alpha=-0.5)).mean(dim=2).sum(dim=1) / kappa
            grad = slope.mean(dim=2).div_(-kappa)
        else:  # expectile: ρ = w·u², ρ' = 2·w·u
            slope = _asymmetric_slope(u, taus)
            loss = (slope * u).mean(dim=2).sum(dim=1)
            grad = slope.mean(dim=2).mul_(-2.0)
        ctx.save_for_backward(grad)
        return loss

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (grad,) = ctx.saved_tensors
        return grad * grad_loss.unsqueeze(1), None, None, None


def quantile_huber_loss(
    pred: torch.Tensor, target: torch.Tensor, taus: torch.Tensor, kappa: float = 1.0
) -> torch.Tensor:
    """Quantile Huber loss (Dabney et al. 2018, "Distributional RL with Quantile Regression").

        ρ_τ^κ(u) = |τ − 1{u < 0}| · Huber_κ(u) / κ,   u = y_j − θ_i(x, a)
        L_b = Σ_i mean_j ρ_{τ_i}^κ(u_ij)

    Minimised by θ_i = the τ_i-quantile of the target distribution. Its gradient
    ∂L_b/∂θ_i = −mean_j |τ_i − 1{u_ij < 0}| · clamp(u_ij, −κ, κ) / κ comes from the same pass."""
    check_shapes(pred, target, taus)
    if not kappa > 0:
        raise ValueError(f"kappa must be positive, got {kappa}")
    loss: torch.Tensor = _PairwiseLoss.apply(pred, target, taus, float(kappa))  # type: ignore[no-untyped-call]
    return loss


def expectile_loss(pred: torch.Tensor, target: torch.Tensor, taus: torch.Tensor) -> torch.Tensor:
    """Expectile loss (Rowland et al. 2019, "Statistics and Samples in Distributional RL").

        L_b = Σ_i mean_j |τ_i − 1{u_ij < 0}| · u_ij²,   u_ij = y_j − ε_i(x, a)

    Minimised by ε_i = the τ_i-expectile of the target samples (τ = ½: the mean). Its gradient
    ∂L_b/∂ε_i = −2 mean_j |τ_i − 1{u_ij < 0}| · u_ij comes from the same pass."""
    check_shapes(pred, target, taus)
    loss: torch.Tensor = _PairwiseLoss.apply(pred, target, taus, 0.0)  # type: ignore[no-untyped-call]
    return loss


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
