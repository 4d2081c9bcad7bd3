"""Family ``atari``: Atari 2600 games on ale-py's C++ vector env (agent/envs/atari.py) with the
protocol of docs/science.md §5."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...core.config import EnvConfig
from ...core.errors import ConfigError
from ..base import VecEnv
from ..registry import EnvFamily, EvalProtocol, register


@dataclass
class AtariEnvConfig(EnvConfig):
    """Family ``atari``: the protocol of docs/science.md §5, every choice explicit."""

    family: str = "atari"
    game: str | None = None  # ALE ROM name (conf/env/atari.yaml: pong)
    sticky_action_prob: float = 0.25  # repeat the previous action (Machado et al. 2018)
    frame_skip: int = 4  # emulator frames per agent step, the last two max-pooled
    frame_stack: int = 4  # frames per observation
    noop_max: int = 30  # up to this many no-op frames after a reset
    episodic_life: bool = False  # a lost life ends a training episode
    full_action_space: bool = False  # all 18 actions, not the game's minimal set
    max_episode_frames: int = 108_000  # cap on one episode, in emulator frames (truncation)
    clip_rewards: bool = True  # training rewards clipped to [-1, 1] (evaluation: raw)
    num_threads: int = 0  # ALE's C++ threads stepping the envs (0: ALE picks)


def make(env_cfg: Any, num_envs: int, evaluation: bool, render: bool) -> VecEnv:
    try:
        from ..atari import AtariVecEnv
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


def evaluation_extras(env_cfg: Any, return_mean: float) -> dict[str, Any]:
    """The game, its sticky-action probability and the human-normalised score."""
    from ..hns import human_normalized_score

    try:
        hns: float | None = float(human_normalized_score(env_cfg.game, return_mean))
    except (KeyError, ValueError):
        hns = None
    return {
        "game": env_cfg.game,
        "sticky_action_prob": env_cfg.sticky_action_prob,
        "human_normalized_score": hns,
    }


def _clone_env(env_cfg: Any, seed: int) -> Any:
    from ..cloning import ale_clone_env

    return ale_clone_env(env_cfg, seed)


def _clone_state(env: Any, index: int) -> Any:
    """The state of a cloneable emulator (``clone_env``'s; the C++ vector env has none)."""
    if index != 0 or not hasattr(env, "clone"):
        raise ConfigError("Atari states are cloned from clone_env's emulator, not the vector env")
    return env.clone()


def _restore_state(env: Any, index: int, state: Any) -> None:
    if index != 0 or not hasattr(env, "restore"):
        raise ConfigError("Atari states are restored into clone_env's emulator")
    env.restore(state)


def cap_episode_steps(env_cfg: Any, max_episode_steps: int) -> None:
    """ALE counts emulator frames: ``frame_skip`` of them per agent step."""
    env_cfg.max_episode_frames = max_episode_steps * int(env_cfg.frame_skip)


ATARI = register(
    EnvFamily(
        name="atari",
        summary="Atari 2600 games (ale-py), env.game=pong, …",
        make=make,
        observation="frame_stack",
        torso="nature_cnn",
        frame_stack=True,
        video_fps=lambda env_cfg: 60 // max(env_cfg.frame_skip, 1),
        replay_in_periodic_checkpoints=False,  # a 1M-transition replay is 7 GB
        evaluation=EvalProtocol(epsilon=0.001, max_episode_steps=27_000),  # 108k frames
        config_class=AtariEnvConfig,
        steps_outside_python=True,
        # one ALE emulator with the same preprocessing clones its state (RNG included; sticky
        # actions drawn in Python): agent/envs/cloning.py
        can_clone=True,
        clone_state=_clone_state,
        restore_state=_restore_state,
        clone_env=_clone_env,
        display_id=lambda env_cfg: str(env_cfg.game),
        evaluation_extras=evaluation_extras,
        cap_episode_steps=cap_episode_steps,
    )
)
