"""``make_env(cfg)``: one batched interface (``VecEnv``) for every env family; each family's
capabilities in one record (``agent.envs.registry``, families in ``agent/envs/families/``)."""

from __future__ import annotations

from typing import Any

from . import families  # noqa: F401  (registers the built-in families)
from .base import VecEnv, VecStep
from .registry import EnvFamily, family_of, register_configs, validate

__all__ = [
    "EnvFamily",
    "VecEnv",
    "VecStep",
    "family_of",
    "make_env",
    "register_configs",
    "validate",
]


def make_env(
    env_cfg: Any, *, num_envs: int, evaluation: bool = False, render: bool = False
) -> VecEnv:
    """Build the batched env described by ``env_cfg`` (an ``EnvConfig``).

    ``evaluation=True`` gives the evaluation variant: unclipped rewards, no episodic life.
    """
    return family_of(env_cfg).make(env_cfg, num_envs, evaluation, render)
