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

from ..core.config import ENV_SCHEMAS, EnvConfig, suggest, typed_env
from ..core.errors import ConfigError

if TYPE_CHECKING:
    from .base import VecEnv

OBSERVATIONS = ("vector", "image", "frame_stack")

# EnvConfig keys every family reads; the rest live in the family's own schema (config_class)
COMMON_KEYS = tuple(f.name for f in dataclasses.fields(EnvConfig))


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
    config_class:  the family's env config schema: ``EnvConfig`` (the common keys) extended
                   by its own keys (agent/core/config.py); ``register`` stores it in Hydra's
                   ConfigStore as ``schema/env/<name>``, which ``conf/env/<name>.yaml`` starts
                   from. A run records only these keys; another family's is a start-up error.
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
    check_config:  ``check_config(env_cfg)`` raises ConfigError (one line) for a bad value of
                   the family's own keys; :func:`validate` runs it at start-up, before
                   anything is created.
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
    config_class: type[EnvConfig] = EnvConfig
    steps_outside_python: bool = False
    population: bool = False
    # the gymnasium id where the schema has one, else the family's name
    display_id: Callable[[Any], str] = lambda env_cfg: str(getattr(env_cfg, "id", env_cfg.family))
    evaluation_extras: Callable[[Any, float], dict[str, Any]] | None = None
    window: bool = False
    cap_episode_steps: Callable[[Any, int], None] = lambda env_cfg, n: _gym_cap(env_cfg, n)
    check_config: Callable[[Any], None] = lambda env_cfg: None

    def __post_init__(self) -> None:
        if self.observation not in OBSERVATIONS:
            raise ValueError(f"{self.name}: observation must be one of {OBSERVATIONS}")
        if self.can_clone != (self.clone_state is not None and self.restore_state is not None):
            raise ValueError(f"{self.name}: can_clone needs clone_state and restore_state")
        if not (isinstance(self.config_class, type) and issubclass(self.config_class, EnvConfig)):
            raise ValueError(f"{self.name}: config_class must extend EnvConfig")

    @property
    def config_keys(self) -> tuple[str, ...]:
        """The ``env.*`` keys that apply besides ``COMMON_KEYS``."""
        fields = dataclasses.fields(self.config_class)
        return tuple(f.name for f in fields if f.name not in COMMON_KEYS)


def _gym_cap(env_cfg: Any, max_episode_steps: int) -> None:
    if not hasattr(env_cfg, "kwargs"):  # a family whose schema has no gymnasium keywords
        raise ConfigError(
            f"env.family={env_cfg.family} cannot cut its episodes (its schema has no env.kwargs; "
            "its EnvFamily needs a cap_episode_steps)"
        )
    env_cfg.kwargs["max_episode_steps"] = max_episode_steps


_REGISTRY: dict[str, EnvFamily] = {}


def register(family: EnvFamily) -> EnvFamily:
    """Add ``family`` (replacing one of the same name, for tests) and its config schema
    (``schema/env/<name>`` in Hydra's ConfigStore); returns it."""
    from hydra.core.config_store import ConfigStore

    _REGISTRY[family.name] = family
    ENV_SCHEMAS[family.name] = family.config_class
    ConfigStore.instance().store(group="schema/env", name=family.name, node=family.config_class)
    return family


def register_configs() -> None:
    """Every schema Hydra composes a run from: the run's and each agent's
    (:func:`agent.algos.register_configs`) and each registered env family's
    (``schema/env/<family>``)."""
    from hydra.core.config_store import ConfigStore

    from .. import algos

    algos.register_configs()
    for family in _REGISTRY.values():
        ConfigStore.instance().store(group="schema/env", name=family.name, node=family.config_class)


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
    """The env part of a run config: a registered family, no ``env.*`` key that does not
    apply to it (``core.config.typed_env``: so ``env.family=toy env.id=Acrobot-v1`` fails at
    start-up instead of training the toy family), and the family's own values
    (``EnvFamily.check_config``)."""
    family_of(cfg.env).check_config(typed_env(cfg.env))
