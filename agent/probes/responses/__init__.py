"""Response models: how a unit's mean response to an outcome is made (issue 35 item 3).

A response model is one file in this folder with one :class:`ResponseModel` registered under
its name, as an algorithm is one file in ``agent/algos/``. The probe, the in-task protocol and
the detection study ask the registry (:func:`response_model`) for its label, its note (what it
builds in), whether a learner supports it and its mean responses [N, K]; no other module
compares a response model's name.
"""

from __future__ import annotations

from . import gradient, measured  # noqa: F401  (registers the built-in models)
from .base import (
    RECORDED_NOTE,
    Outcomes,
    Respond,
    ResponseModel,
    label,
    names,
    note,
    register,
    response_model,
    unregister,
)

__all__ = [
    "RECORDED_NOTE",
    "Outcomes",
    "Respond",
    "ResponseModel",
    "label",
    "names",
    "note",
    "register",
    "response_model",
    "unregister",
]
