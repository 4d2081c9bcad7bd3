"""The response-model registry's types and table (:mod:`agent.probes.responses`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ...core.errors import ConfigError

if TYPE_CHECKING:
    from ...algos.base import UnitReadout


@dataclass(frozen=True)
class Outcomes:
    """What a response model is asked: the units at the probed state and the outcomes."""

    learner: Any  # the unit reader (a Learner): its loss, network and τ
    readout: UnitReadout  # the units' values and τ at the probed state (one action)
    observation: np.ndarray  # [D] the probed state
    values: np.ndarray  # [K] the outcomes on the probe's axis (utility or return)
    action: int = 0
    huber_scale: float = 1.0  # divisor of quantile-Huber errors before clipping (1 = the loss)
    units: np.ndarray | None = None  # which of the head's units ``readout`` holds (None: all)


#: mean responses [N, K] of the units to the outcomes, and the fraction of clipped
#: (unit, outcome) pairs (0 where nothing saturates)
Respond = Callable[[Outcomes], tuple[np.ndarray, float]]


@dataclass(frozen=True)
class ResponseModel:
    """One response model: its name, label, what it builds in, and its responses."""

    name: str
    label: str  # e.g. "own-gradient response" (tables, figure legends)
    note: str  # what it puts in, in words (probe.json, detection.json)
    respond: Respond
    #: whether ``learner`` can answer (e.g. fixed unit values to take a gradient step on)
    supports: Callable[[Any], bool] = lambda learner: True
    #: cheap enough to evaluate at every trial's own outcome (else at each bin's mean outcome)
    per_trial: bool = True
    #: whether quantile-Huber errors are scaled first so that no response saturates
    scales_huber: bool = False
    #: probe.json reports how its responses differ from the units' own gradients
    against_own_gradient: bool = False
    #: the responses [N, K] with their own / shared-torso split, where the model has one
    decompose: Callable[[Outcomes], tuple[np.ndarray, dict[str, Any]]] | None = None


_REGISTRY: dict[str, ResponseModel] = {}

#: the note of the recorded cells' group (not a model: trials as recorded)
RECORDED_NOTE = "recorded VTA dopamine cells (Dabney et al. 2020), trials as recorded"


def register(model: ResponseModel) -> ResponseModel:
    """Add ``model`` to the registry (its file calls this at import)."""
    if model.name in _REGISTRY and _REGISTRY[model.name] is not model:
        raise ValueError(f"response model '{model.name}' is registered twice")
    _REGISTRY[model.name] = model
    return model


def unregister(name: str) -> None:
    """Remove a model (tests that register a toy one)."""
    _REGISTRY.pop(name, None)


def names() -> tuple[str, ...]:
    """The registered response models, in registration order."""
    return tuple(_REGISTRY)


def response_model(name: str, what: str = "response") -> ResponseModel:
    """The model called ``name``; a ConfigError naming the choices otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"{what} must be one of {', '.join(_REGISTRY)}, got {name!r}") from None


def label(name: str) -> str:
    """A model's label (a name not registered, e.g. "recorded", as it is)."""
    model = _REGISTRY.get(name)
    return name if model is None else model.label


def note(name: str) -> str:
    """A model's note; the recorded cells' for "recorded"; "" for an unknown name."""
    model = _REGISTRY.get(name)
    if model is not None:
        return model.note
    return RECORDED_NOTE if name == "recorded" else ""
