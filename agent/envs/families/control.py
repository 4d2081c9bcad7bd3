"""Family ``control``: any gymnasium id with discrete actions (classic control, Box2D …),
stepped in-process by ``GymVecEnv``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...core.config import EnvConfig
from ..base import VecEnv
from ..cloning import gym_clone_state, gym_restore_state
from ..registry import EnvFamily, EvalProtocol, register


@dataclass
class GymEnvConfig(EnvConfig):
    """Families ``control`` and ``lab``: any gymnasium id with discrete actions."""

    # gymnasium id; ``module:Id`` imports ``module`` first (which registers it), as
    # gymnasium.make does
    id: str = "CartPole-v1"
    kwargs: dict[str, Any] = field(default_factory=dict)  # passed to gymnasium.make
    # modules imported before the env is made, for packages that register their ids on import
    # (RL-Zoo's --gym-packages); recorded with the run, so evaluate, resume and probe import
    # them again
    imports: list[str] = field(default_factory=list)


def check_config(env_cfg: Any) -> None:
    """``env.id`` names a registered gymnasium id once ``env.imports`` and the module of a
    ``module:Id`` are imported: a module that does not import, or an unknown id, is one line
    at start-up, before the run dir exists."""
    from ..control import check_env_id

    check_env_id(env_cfg.id, list(env_cfg.imports))


def make(env_cfg: Any, num_envs: int, evaluation: bool, render: bool) -> VecEnv:  # noqa: ARG001
    from ..control import GymVecEnv

    return GymVecEnv(
        env_cfg.id,
        num_envs,
        kwargs=dict(env_cfg.kwargs),
        render=render,
        imports=list(env_cfg.imports),
    )


CONTROL = register(
    EnvFamily(
        name="control",
        summary="gymnasium ids with discrete actions (CartPole-v1, Acrobot-v1, …)",
        make=make,
        observation="vector",
        torso="mlp",
        # in-process gymnasium envs deep-copy (Box2D and MuJoCo ids fail the copy with a
        # clear error when the in-task probe asks)
        can_clone=True,
        clone_state=gym_clone_state,
        restore_state=gym_restore_state,
        video_fps=lambda env_cfg: 50,
        evaluation=EvalProtocol(epsilon=0.0),
        config_class=GymEnvConfig,
        population=True,
        window=True,
        check_config=check_config,
    )
)
