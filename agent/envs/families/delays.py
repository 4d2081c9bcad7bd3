"""Family ``delays``: the lab task of delays and magnitudes (agent/envs/delay_tasks.py, issue
37), trials whose cues predict reward at different delays and magnitudes. Otherwise the
``control`` family: in-process gymnasium envs with the same schema, cloning, evaluation and
population support. Not ``lab_task``: the Dabney et al. 2020 probe reads one pre-outcome
state of the two 2020 tasks; this task's facts are ``delay_tasks.DelayTaskSpec``."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..base import VecEnv
from ..registry import register
from . import control
from .control import CONTROL


def check_config(env_cfg: Any) -> None:
    from .. import delay_tasks  # noqa: F401  (registers dopa/DelaysMagnitudes-v0)

    control.check_config(env_cfg)


def make(env_cfg: Any, num_envs: int, evaluation: bool, render: bool) -> VecEnv:
    from .. import delay_tasks  # noqa: F401  (registers dopa/DelaysMagnitudes-v0)

    return control.make(env_cfg, num_envs, evaluation, render)


DELAYS = register(
    dataclasses.replace(
        CONTROL,
        name="delays",
        summary="the lab task of delays and magnitudes (dopa/DelaysMagnitudes-v0)",
        make=make,
        video_fps=None,  # no rendering
        window=False,
        check_config=check_config,
    )
)
