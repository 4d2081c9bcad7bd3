"""The own-gradient response model (the default): each unit's response to outcome y is its
own loss gradient −∂L/∂θᵢ = |τᵢ − 1{u<0}|·u, u = y − θᵢ, at the probed state, as if each unit
had parameters of its own. The asymmetry the pipeline estimates is the configured τᵢ plus
noise: only the reversal point (the unit's learned value) is an outcome of training."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .base import Outcomes, ResponseModel, register

if TYPE_CHECKING:
    from ...algos.base import UnitReadout

NAME = "gradient"


def resolve_scale(
    readout: UnitReadout, targets: np.ndarray, huber_scale: float | str | None
) -> float:
    """Divisor of the prediction errors before clipping (1 = the loss itself); ``"auto"``:
    the largest error over κ, so that no response saturates."""
    if readout.rule != "huber" or huber_scale is None:
        return 1.0
    if huber_scale == "auto":
        biggest = float(np.max(np.abs(targets[None, :] - readout.values[:, None])))
        return max(biggest / float(readout.kappa or 1.0), 1.0)
    scale = float(huber_scale)
    if not scale > 0:
        raise ValueError(f"huber_scale must be positive or 'auto', got {huber_scale!r}")
    return scale


def unit_responses(
    readout: UnitReadout, targets: np.ndarray, scale: float = 1.0
) -> tuple[np.ndarray, float]:
    """Noise-free responses [N, M] of the units to outcomes ``targets`` [M] (utility units).

    Returns the responses and the fraction of (unit, outcome) pairs clipped by the Huber
    threshold (0 for linear units).
    """
    u = np.asarray(targets, dtype=np.float64)[None, :] - readout.values[:, None]
    weight = np.where(u < 0, 1.0 - readout.taus[:, None], readout.taus[:, None])
    if readout.rule != "huber":
        return weight * u, 0.0
    kappa = float(readout.kappa or 1.0)
    scaled = u / scale
    saturated = float(np.mean(np.abs(scaled) > kappa))
    return weight * np.clip(scaled, -kappa, kappa), saturated


def respond(outcomes: Outcomes) -> tuple[np.ndarray, float]:
    return unit_responses(outcomes.readout, outcomes.values, outcomes.huber_scale)


MODEL = register(
    ResponseModel(
        name=NAME,
        label="own-gradient response",
        note=(
            "gradient response model: each unit's own loss gradient |tau_i - 1{u<0}|*u at the "
            "pre-outcome state; the asymmetry the pipeline estimates is the configured tau_i "
            "plus noise: only the reversal point (the unit's learned value) is an outcome of "
            "training"
        ),
        respond=respond,
        scales_huber=True,
    )
)
