"""Beyond the paper: unit responses measured through the shared network (issue 11, item 6).

The default probe takes a unit's "firing" to be its own loss gradient, as if each unit had
parameters of its own. In a deep agent the units share a torso: one gradient step on an
outcome moves every unit, and each unit's change mixes its own error with the others'. This
module measures that change. For outcome y at the pre-outcome state x the response of unit i
is

    Δθᵢ(y) / η,   Δθ = θ(x; w − η·∇_w L(w; y)) − θ(x; w),

one plain gradient step of size η on the agent's own loss L (expectile loss for ER-DQN and the
classical population, quantile Huber for QR-DQN, Huber TD for DQN) against the single target
y, from the trained weights w. η is small (10⁻⁶, on a float64 copy of the network) so that the
response is the network's first-order learning response, Δθ/η = −J Jᵀ ∂L/∂θ with J = ∂θ/∂w:
with independent units J Jᵀ is diagonal and the response is the unit's own error gradient,
scaled; a shared torso adds the other units' errors. (A step of 10⁻³ in float32 was linear on
the lab task's network, first-order R² 1.000, but not on the MinAtar net, whose 131,792 torso
parameters amplify a step on returns of 10-30: R² −0.3 to −1,600.) τ is then estimated from
these responses by the paper's pipeline (with noise at the recorded SNR), not read from the
configuration.
With ``agent.head_detach`` the agent's loss includes its value head's TD loss on the single
outcome: that step moves the torso, and through it every unit by a common-mode amount.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from ..core.errors import ConfigError


def measured_responses(
    learner: Any, observation: np.ndarray, targets: np.ndarray, step: float = 1e-6, action: int = 0
) -> np.ndarray:
    """Responses [N, M] of the units to single-outcome targets [M] (see the module docstring).

    Every target starts from the same trained weights (a fresh float64 copy of the online
    network per outcome); ``step`` is η. Raises ConfigError for heads without fixed unit values.
    """
    if not learner.algo.measurable:
        raise ConfigError(
            f"response=measured needs an agent with fixed unit values, not '{learner.name}' "
            "(its units are sampled or categorical)"
        )
    if not step > 0:
        raise ConfigError(f"the measuring step must be positive, got {step}")
    device = learner.device
    x = torch.as_tensor(np.asarray(observation)[None], device=device)
    taus = learner.taus.to(device, torch.float64)
    base = copy.deepcopy(learner.online).double()
    base.torso_autocast = None
    with torch.no_grad():
        before = base(x)[0, action].cpu().numpy()
    out = np.empty((before.size, len(targets)))
    for m, y in enumerate(np.asarray(targets, dtype=float)):
        net = copy.deepcopy(base)
        params = [p for p in net.parameters() if p.requires_grad]
        pred = net(x)[:, action]  # [1, N]
        target = torch.full((1, 1), float(y), device=device, dtype=pred.dtype)
        loss = learner.algo.unit_loss(pred, target, taus).sum()
        if net.value_head is not None:
            # agent.head_detach: the agent's loss on the outcome includes the value head's,
            # the only one that moves the torso (and so every unit together)
            loss = loss + 0.5 * ((net.values(x)[:, action] - float(y)) ** 2).sum()
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        with torch.no_grad():
            for p, g in zip(params, grads, strict=True):
                if g is not None:
                    p.sub_(step * g)
            after = net(x)[0, action].cpu().numpy()
        out[:, m] = (after - before) / step
    return out


def own_gradient_responses(learner: Any, values: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """−∂L/∂θᵢ of each unit alone (what independent units would do), [N, M], same loss."""
    taus = learner.taus.double().cpu().numpy()
    out = np.empty((values.size, len(targets)))
    for m, y in enumerate(np.asarray(targets, dtype=float)):
        pred = torch.tensor(values[None], dtype=torch.float64, requires_grad=True)
        target = torch.full((1, 1), float(y), dtype=torch.float64)
        loss = learner.algo.unit_loss(pred, target, torch.as_tensor(taus)).sum()
        (g,) = torch.autograd.grad(loss, pred)
        out[:, m] = -g[0].numpy()
    return out


def response_decomposition(
    learner: Any, observation: np.ndarray, targets: np.ndarray, action: int = 0
) -> dict[str, Any]:
    """Each unit's measured response split into its own part and the shared-torso part.

    To first order the response to outcome y is r(y) = −J Jᵀ g(y), with J = ∂θ/∂w at the
    pre-outcome state and gᵢ(y) = ∂L/∂θᵢ (the loss is a sum over units, so gᵢ depends on unit
    i's own error only). Unit i's **own** part is −(J Jᵀ)ᵢᵢ·gᵢ(y): its own error through its
    own parameters (the diagonal of J Jᵀ); the **other** part is −Σ_{j≠i} (J Jᵀ)ᵢⱼ·gⱼ(y): the
    other units' errors through the shared torso. Over the outcomes, var(r) = var(own) +
    var(other) + 2·cov(own, other); the fractions of each unit's response variance are
    returned (they sum to 1), with their medians over units, and the R² of the first-order
    sum against the finite-step measurement (:func:`measured_responses`).
    """
    if not learner.algo.measurable:
        raise ConfigError(f"no per-unit loss to decompose for '{learner.name}'")
    device = learner.device
    x = torch.as_tensor(np.asarray(observation)[None], device=device)
    net = learner.online
    params = [p for p in net.parameters() if p.requires_grad]
    theta = net(x)[0, action]  # [N]
    rows = []
    for i in range(theta.numel()):
        grads = torch.autograd.grad(theta[i], params, retain_graph=True, allow_unused=True)
        rows.append(
            torch.cat(
                [
                    (g if g is not None else torch.zeros_like(p)).reshape(-1)
                    for g, p in zip(grads, params, strict=True)
                ]
            )  # fmt: skip
        )
    jac = torch.stack(rows).double()  # [N, P]
    ntk = (jac @ jac.T).cpu().numpy()  # [N, N] = J Jᵀ
    values = theta.detach().double().cpu().numpy()
    g = -own_gradient_responses(learner, values, targets)  # [N, M] = ∂L/∂θᵢ per outcome
    own = -np.diag(ntk)[:, None] * g
    total = -ntk @ g
    other = total - own
    var = total.var(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        f_own = own.var(axis=1) / var
        f_other = other.var(axis=1) / var
        f_cross = 2 * np.mean((own - own.mean(1, keepdims=True))
                              * (other - other.mean(1, keepdims=True)), axis=1) / var  # fmt: skip
    measured = measured_responses(learner, observation, targets, action=action)
    resid = measured - total
    r2 = 1 - float(np.sum(resid**2)) / float(
        np.sum((measured - measured.mean(1, keepdims=True)) ** 2)
    )
    return {
        "own_fraction": f_own,
        "other_fraction": f_other,
        "cross_fraction": f_cross,
        "own_fraction_median": float(np.nanmedian(f_own)),
        "other_fraction_median": float(np.nanmedian(f_other)),
        "cross_fraction_median": float(np.nanmedian(f_cross)),
        "first_order_r2": r2,
        "own": own,
        "other": other,
        "measured": measured,
        "note": (
            "first-order split of each measured response r(y) = -J J^T dL/dtheta: own = the "
            "unit's own error through its own parameters (diagonal of J J^T), other = the "
            "other units' errors through the shared torso; fractions of each unit's response "
            "variance over the outcomes (own + other + cross = 1)"
        ),
    }
