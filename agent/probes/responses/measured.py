"""The measured response model: each unit's change after one small gradient step on the
agent's own loss against the single outcome, through the shared torso
(:mod:`agent.probes.measured`). Both reversal point and asymmetry are measured."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Outcomes, ResponseModel, register

NAME = "measured"


def _kept(outcomes: Outcomes, responses: np.ndarray) -> np.ndarray:
    """The rows of the units the readout holds (the step moves the whole head)."""
    return responses if outcomes.units is None else responses[outcomes.units]


def respond(outcomes: Outcomes) -> tuple[np.ndarray, float]:
    from ..measured import measured_responses  # torch: imported when used

    o = outcomes
    return _kept(o, measured_responses(o.learner, o.observation, o.values, action=o.action)), 0.0


def decompose(outcomes: Outcomes) -> tuple[np.ndarray, dict[str, Any]]:
    from ..measured import response_decomposition

    o = outcomes
    split = response_decomposition(o.learner, o.observation, o.values, action=o.action)
    return _kept(o, np.asarray(split["measured"])), split


MODEL = register(
    ResponseModel(
        name=NAME,
        label="measured response",
        note=(
            "measured response model: the change of each unit's value after one small plain "
            "gradient step (eta = 1e-6, float64: the first-order response) on the agent's own "
            "loss (QR-DQN: its quantile Huber, which may saturate) against the single outcome, "
            "through the shared torso, / eta; both reversal point and asymmetry are measured, "
            "and each unit's response mixes in the other units' errors (see the decomposition)"
        ),
        respond=respond,
        supports=lambda learner: bool(learner.algo.measurable),
        per_trial=False,
        against_own_gradient=True,
        decompose=decompose,
    )
)
