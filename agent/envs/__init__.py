"""``make_env(cfg)``: one batched interface (``VecEnv``) for every env family."""

from __future__ import annotations

from typing import Any

from agent.core.errors import ConfigError
from agent.envs.base import VecEnv, VecStep

__all__ = ["VecEnv", "VecStep", "make_env"]


def make_env(
    env_cfg: Any, *, num_envs: int, evaluation: bool = False, render: bool = False
) -> VecEnv:
    """Build the batched env described by ``env_cfg`` (an ``EnvConfig``).

    ``evaluation=True`` gives the evaluation variant: unclipped rewards, no episodic life.
    """
    family = env_cfg.family
    if family in ("control", "lab"):
        if family == "lab":
            import agent.envs.lab_tasks  # noqa: F401  (registers the dopa/* ids)
        from agent.envs.control import GymVecEnv

        return GymVecEnv(env_cfg.id, num_envs, kwargs=dict(env_cfg.kwargs), render=render)
    if family == "atari":
        try:
            from agent.envs.atari import AtariVecEnv
        except ImportError as err:
            raise ConfigError(
                f"env.family=atari needs ale-py: pip install 'dopa-rl[atari]' ({err})"
            ) from None
        if not env_cfg.game:
            raise ConfigError("env.game must name an ALE ROM for env.family=atari, e.g. pong")
        return AtariVecEnv(
            env_cfg.game,
            num_envs,
            sticky_action_prob=env_cfg.sticky_action_prob,
            frame_skip=env_cfg.frame_skip,
            frame_stack=env_cfg.frame_stack,
            noop_max=env_cfg.noop_max,
            episodic_life=env_cfg.episodic_life and not evaluation,
            full_action_space=env_cfg.full_action_space,
            max_episode_frames=env_cfg.max_episode_frames,
            clip_rewards=env_cfg.clip_rewards and not evaluation,
            num_threads=env_cfg.num_threads,
            render=render,
        )
    raise ConfigError(f"unknown env.family '{family}'")
