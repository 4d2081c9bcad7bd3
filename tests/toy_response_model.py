"""A toy response model, one file (issue 35 "add one"): every unit responds with the sign of
its prediction error, +1 above its value and -1 below (a step, no asymmetry of slope)."""

from __future__ import annotations

import numpy as np
from dopa_rl.probes.responses import Outcomes, ResponseModel, register, unregister

NAME = "toy_sign"


def respond(outcomes: Outcomes) -> tuple[np.ndarray, float]:
    error = outcomes.values[None, :] - outcomes.readout.values[:, None]  # [N, K]
    return np.sign(error), 0.0


MODEL = ResponseModel(
    name=NAME,
    label="sign-of-error response (toy)",
    note="toy model: the sign of each unit's prediction error",
    respond=respond,
)


def install() -> None:
    register(MODEL)


def uninstall() -> None:
    unregister(NAME)
