"""The env families' registry: each family declares what it can do once, in one ``EnvFamily``.

Nothing outside ``agent/envs/`` compares family names (tests/test_architecture.py checks it):
code asks the family's record instead (``family_of(cfg.env).lab_task``, ``.video_fps`` …).
A new family is one module in ``agent/envs/families/`` that calls :func:`register` (the package
imports every module in it), plus ``conf/env/<name>.yaml`` and its test.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..core.config import EnvConfig, suggest
from ..core.errors import ConfigError

if TYPE_CHECKING:
    from .base import VecEnv

OBSERVATIONS = ("vector", "image", "frame_stack")

# EnvConfig keys every family reads; the rest apply only to the families that list them
COMMON_KEYS = ("family", "num_envs", "eval_num_envs", "value_min", "value_max")


@dataclass(frozen=True)
class EvalProtocol:
    """The family's published evaluation protocol, which its ``conf/env`` file sets as the
    defaults (``agent.eps_eval``; the env caps its own episodes): ``epsilon`` of the
    evaluation policy and ``max_episode_steps``, the cap on one episode in agent steps (None:
    the env's own time limit, if any)."""

    epsilon: float = 0.0
    max_episode_steps: int | None = None


@dataclass(frozen=True)
class EnvFamily:
    """What one env family is and can do.

    make:          ``make(env_cfg, num_envs, evaluation, render)`` → ``VecEnv``; ``evaluation``
                   asks for the evaluation variant (unclipped rewards, no episodic life).
    observation:   ``vector`` | ``image`` | ``frame_stack`` (consecutive observations share
                   all but one frame; replay stores each frame once).
    torso:         the torso ``agent.torso=auto`` builds (agent/nn/networks.py names).
    frame_stack:   observations are stacks of frames (``env.frame_stack`` of them).
    lab_task:      a lab task of Dabney et al. 2020: trials with cue states, probed with the
                   paper's protocol (agent/probes/agent_cells.py).
    can_clone / clone_state / restore_state: the env can copy and restore the full state of one
                   of its envs, random generator included (the in-task probe rolls out from
                   cloned states): ``clone_state(vec_env, index)`` → state,
                   ``restore_state(vec_env, index, state)``.
    clone_env:     ``clone_env(env_cfg, seed)`` → one env that clones itself
                   (agent/envs/cloning.py ``CloneableEnv``), for families whose ``VecEnv``
                   cannot copy one of its envs (Atari's C++ vector env); None: the probe
                   clones env 0 of a one-env ``VecEnv`` with ``clone_state``/``restore_state``.
    video_fps:     frames per second of a rendered episode for this env config; None: the
                   family cannot render.
    replay_in_periodic_checkpoints: what ``checkpoint.replay_when=auto`` means: true saves
                   the replay in every checkpoint, false only in the final and pre-emption
                   ones (Atari: a 1M-transition replay is 7 GB).
    evaluation:    the published evaluation protocol (``EvalProtocol``).
    config_keys:   the ``env.*`` keys that apply besides ``COMMON_KEYS``; setting another
                   one away from its default is a start-up error.
    steps_outside_python: stepping releases the GIL (Atari's C++ threads), so
                   ``train.overlap=auto`` overlaps stepping and updates on CUDA.
    population:    ``train.population > 1`` supports it.
    display_id:    the env's name in results (the game on Atari, the gymnasium id otherwise).
    evaluation_extras: extra fields of ``eval.json`` from the env config and the mean return
                   (Atari: the human-normalised score).
    window:        episodes can be played in a gymnasium window (``render_mode="human"``,
                   ``dopa-enjoy``); the others are written to a video.
    cap_episode_steps: ``cap_episode_steps(env_cfg, n)`` sets the env config so that episodes
                   are cut (truncated) at ``n`` agent steps; the default passes gymnasium's
                   ``max_episode_steps`` to ``gymnasium.make``.
    """

    name: str
    summary: str
    make: Callable[[Any, int, bool, bool], VecEnv]
    observation: str
    torso: str
    frame_stack: bool = False
    lab_task: bool = False
    can_clone: bool = False
    clone_state: Callable[[VecEnv, int], Any] | None = None
    restore_state: Callable[[VecEnv, int, Any], None] | None = None
    clone_env: Callable[[Any, int], Any] | None = None
    video_fps: Callable[[Any], int] | None = None
    replay_in_periodic_checkpoints: bool = True
    evaluation: EvalProtocol = field(default_factory=EvalProtocol)
    config_keys: tuple[str, ...] = ()
    steps_outside_python: bool = False
    population: bool = False
    display_id: Callable[[Any], str] = lambda env_cfg: str(env_cfg.id)
    evaluation_extras: Callable[[Any, float], dict[str, Any]] | None = None
    window: bool = False
    cap_episode_steps: Callable[[Any, int], None] = lambda env_cfg, n: _gym_cap(env_cfg, n)

    def __post_init__(self) -> None:
        if self.observation not in OBSERVATIONS:
            raise ValueError(f"{self.name}: observation must be one of {OBSERVATIONS}")
        if self.can_clone != (self.clone_state is not None and self.restore_state is not None):
            raise ValueError(f"{self.name}: can_clone needs clone_state and restore_state")
        known = {f.name for f in dataclasses.fields(EnvConfig)}
        unknown = sorted(set(self.config_keys) - known)
        if unknown:
            raise ValueError(f"{self.name}: config_keys {unknown} are not EnvConfig fields")


def _gym_cap(env_cfg: Any, max_episode_steps: int) -> None:
    env_cfg.kwargs["max_episode_steps"] = max_episode_steps


_REGISTRY: dict[str, EnvFamily] = {}


def register(family: EnvFamily) -> EnvFamily:
    """Add ``family`` (replacing one of the same name, for tests); returns it."""
    _REGISTRY[family.name] = family
    return family


def names() -> list[str]:
    """Registered family names."""
    return sorted(_REGISTRY)


def get(name: str) -> EnvFamily:
    """The family called ``name``; ConfigError naming close matches otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown env.family '{name}'{suggest(name, names())}; expected one of "
            f"{', '.join(names())}"
        ) from None


def family_of(env_cfg: Any) -> EnvFamily:
    """The family of an ``EnvConfig`` (``cfg.env``)."""
    return get(str(env_cfg.family))


def validate(cfg: Any) -> None:
    """The env part of a run config: a registered family, and no ``env.*`` key that does not
    apply to it set away from its default (so ``env=cartpole env.game=pong`` fails at start-up
    instead of training CartPole)."""
    family = family_of(cfg.env)
    applies = set(COMMON_KEYS) | set(family.config_keys)
    for f in dataclasses.fields(EnvConfig):
        if f.name in applies:
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        value = getattr(cfg.env, f.name)
        if hasattr(value, "items"):  # DictConfig → dict for the comparison
            value = dict(value.items())
        if value != default:
            raise ConfigError(
                f"env.{f.name} does not apply to env.family={family.name} (its keys: "
                f"{', '.join(sorted(family.config_keys)) or 'none'})"
            )
