"""Family ``lab``: the two lab tasks of Dabney et al. 2020 (agent/envs/lab_tasks.py), trials
with cue states that the paper's probe reads; no rendering. Otherwise the ``control`` family:
in-process gymnasium envs with the same schema, cloning, evaluation and population support."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..base import VecEnv
from ..registry import register
from . import control
from .control import CONTROL


def check_config(env_cfg: Any) -> None:
    from .. import lab_tasks  # noqa: F401  (registers the dopa/* ids)

    control.check_config(env_cfg)


def make(env_cfg: Any, num_envs: int, evaluation: bool, render: bool) -> VecEnv:
    from .. import lab_tasks  # noqa: F401  (registers the dopa/* ids)

    return control.make(env_cfg, num_envs, evaluation, render)


LAB = register(
    dataclasses.replace(
        CONTROL,
        name="lab",
        summary="the lab tasks of Dabney et al. 2020 (dopa/VariableMagnitude-v0, …)",
        make=make,
        lab_task=True,
        video_fps=None,  # no rendering
        window=False,
        check_config=check_config,
    )
)
