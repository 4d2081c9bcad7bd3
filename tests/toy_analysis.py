"""A toy analysis, one file (issue 35 "add one"): the fraction of valid trials with a positive
response in each recording."""

from __future__ import annotations

import numpy as np
from dopa_rl.probes.analyses import Analysis, register, unregister
from dopa_rl.probes.recording import Recording

NAME = "toy_positive_fraction"


def run(recording: Recording, rng: np.random.Generator) -> list[float]:
    positive = (recording.responses > 0) & recording.valid
    return [float(v) for v in positive.sum(axis=(1, 2, 3)) / recording.valid.sum(axis=(1, 2, 3))]


ANALYSIS = Analysis(NAME, "fraction of trials with a positive response, per recording", run)


def install() -> None:
    register(ANALYSIS)


def uninstall() -> None:
    unregister(NAME)
