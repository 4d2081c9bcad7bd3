"""Analyses of a recording, as registry entries (issue 35 item 3).

An analysis is a function of a :class:`agent.probes.recording.Recording` (trials of B
recordings × U units × K magnitudes) and its own random generator, returning a JSON-able
summary. Registered analyses run on every probe's recording (probe.json ``analyses``) and on
every study group's descriptive recording of each seed (detection.json ``analyses``, a list
over seeds), without further code in the probe or the study. Each one gets a generator of its
own (seeded by the probe's seed and its name), so adding one changes no other number.

The paper's split halves, τ–RP and decode are still computed by :mod:`agent.probes.analysis`
and :mod:`agent.probes.detection` directly (their fields are the stable probe.json and
detection.json interface).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .recording import Recording


@dataclass(frozen=True)
class Analysis:
    """One analysis: its name (the JSON key), what it measures, and the function."""

    name: str
    description: str
    run: Callable[[Recording, np.random.Generator], Any]


_REGISTRY: dict[str, Analysis] = {}


def register(analysis: Analysis) -> Analysis:
    if analysis.name in _REGISTRY and _REGISTRY[analysis.name] is not analysis:
        raise ValueError(f"analysis '{analysis.name}' is registered twice")
    _REGISTRY[analysis.name] = analysis
    return analysis


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def run_all(recording: Recording, seed: int) -> dict[str, Any]:
    """Every registered analysis of ``recording``, each with its own generator."""
    return {
        name: a.run(recording, np.random.default_rng([int(seed), zlib.crc32(name.encode())]))
        for name, a in _REGISTRY.items()
    }
