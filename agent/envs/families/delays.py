"""Family ``delays``: the lab task of delays and magnitudes (agent/envs/delay_tasks.py, issue
37), trials whose cues predict reward at different delays and magnitudes. Otherwise the
``control`` family: in-process gymnasium envs with the same schema, cloning, evaluation and
population support. Not ``lab_task``: the Dabney et al. 2020 probe reads one pre-outcome
state of the two 2020 tasks; this task's facts are ``delay_tasks.DelayTaskSpec``."""

from __future__ import annotations

import dataclasses
from typing import Any

from ...core.errors import ConfigError
from ..base import VecEnv
from ..registry import register
from . import control
from .control import CONTROL

# keywords of gymnasium.make itself, not of the task
_MAKE_KEYS = ("max_episode_steps", "render_mode", "disable_env_checker", "autoreset")


def check_config(env_cfg: Any) -> None:
    """The id, then the task's keyword arguments (``env.kwargs``): a bad value is one line at
    start-up, before the run dir exists."""
    from .. import delay_tasks  # registers dopa/DelaysMagnitudes-v0

    control.check_config(env_cfg)
    if env_cfg.id != delay_tasks.DELAYS_MAGNITUDES_ID:
        return
    task_kwargs = {k: v for k, v in dict(env_cfg.kwargs).items() if k not in _MAKE_KEYS}
    try:
        delay_tasks.delay_task_spec(**task_kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"env.kwargs of {env_cfg.id}: {err}") from None


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
