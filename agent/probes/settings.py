"""The detection study's settings, each with one default, validated once (issue 35 item 2).

``dopa-probe study=`` builds a :class:`StudySettings` from its arguments and hands it down;
nothing below it writes a default of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.errors import ConfigError

#: cells in the recorded population (Dabney et al. 2020): units one simulated recording draws
RECORDED_UNITS = 40
#: cue states the in-task probe (``dopa-probe checkpoint=`` on a task) picks by default; the
#: study's is :attr:`StudySettings.cues`
PROBE_CUES = 8


@dataclass(frozen=True)
class StudySettings:
    """draws: simulated recordings per seed and group; units: units per recording; cues: cue
    states per seed on a task that is not a lab task; seed: the study's random seed; decode:
    whether each group gets a reward-space decode."""

    draws: int = 50
    units: int = RECORDED_UNITS
    cues: int = 6
    seed: int = 0
    decode: bool = True

    def __post_init__(self) -> None:
        for name, low in (("draws", 1), ("units", 3), ("cues", 1), ("seed", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
