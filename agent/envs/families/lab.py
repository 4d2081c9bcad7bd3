"""Family ``lab``: the two lab tasks of Dabney et al. 2020 (agent/envs/lab_tasks.py), trials
with cue states that the paper's probe reads; no rendering."""

from __future__ import annotations

from typing import Any

from ..base import VecEnv
from ..cloning import gym_clone_state, gym_restore_state
from ..registry import EnvFamily, EvalProtocol, register
from .control import GymEnvConfig


def make(env_cfg: Any, num_envs: int, evaluation: bool, render: bool) -> VecEnv:  # noqa: ARG001
    from .. import lab_tasks  # noqa: F401  (registers the dopa/* ids)
    from ..control import GymVecEnv

    return GymVecEnv(env_cfg.id, num_envs, kwargs=dict(env_cfg.kwargs), render=render)


LAB = register(
    EnvFamily(
        name="lab",
        summary="the lab tasks of Dabney et al. 2020 (dopa/VariableMagnitude-v0, …)",
        make=make,
        observation="vector",
        torso="mlp",
        # in-process gymnasium envs deep-copy (Box2D and MuJoCo ids fail the copy with a
        # clear error when the in-task probe asks)
        can_clone=True,
        clone_state=gym_clone_state,
        restore_state=gym_restore_state,
        lab_task=True,
        evaluation=EvalProtocol(epsilon=0.0),
        config_class=GymEnvConfig,
        population=True,
    )
)
