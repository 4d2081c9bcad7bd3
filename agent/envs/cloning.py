"""One environment whose full state, random generator included, can be cloned and restored.

The in-task probe (agent/probes/in_task.py, docs/science.md §4 "In real tasks") needs to stop
an episode at a cue state and roll the task forward from exactly that state many times. That
needs the env's whole state, including the generator that draws its future randomness:

- gymnasium envs written in Python (classic control, the lab tasks, MinAtar through its
  gymnasium ids): a deep copy of the one-env ``VecEnv`` the training loop uses, so the
  observation pipeline is the training one and every wrapper's counters (time limits) and
  every ``np_random`` / ``RandomState`` come along;
- Atari: one ALE emulator driven here, with the training preprocessing (frame skip with a
  max-pool over the last two frames, 84×84 grayscale by area interpolation, a frame stack,
  sticky actions) and ``ALEInterface.cloneState(include_rng=True)`` / ``restoreState``, plus
  the Python-side frame stack, lives and generators. Sticky actions are drawn here, per
  emulator frame as ALE does (Machado et al. 2018): ALE's own stickiness repeats the
  previous action, which its cloned state does not hold (ale-py 0.12: two restores of one
  state with its generator then diverge at the first step).

``restore(snapshot)`` reproduces the rollout that followed the clone bit for bit (same
observations, rewards); ``restore(snapshot, reseed=k)`` puts back the same state with a
different random stream, so that M rollouts from one cue state sample its return
distribution. Families declare in their registry record whether they can clone
(``EnvFamily.can_clone``, ``clone_state``/``restore_state``, ``clone_env``); asking a family
that cannot is a ``ConfigError`` (one ``error:`` line at the command line).
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from ..core.errors import ConfigError

_NO_LIMIT = 2**62  # a time limit never reached


def cloning_support(env_cfg: Any) -> str | None:
    """None if envs of ``env_cfg``'s family can clone their state (its registry record's
    ``can_clone``), else the reason."""
    from .registry import family_of

    family = family_of(env_cfg)
    if not family.can_clone:
        return f"env family '{family.name}' cannot clone and restore its state"
    return None


class CloneableEnv(ABC):
    """One env with ``clone``/``restore``; ``step`` returns (obs, training reward, done)."""

    num_actions: int
    observation_shape: tuple[int, ...]

    @abstractmethod
    def reset(self, seed: int | None = None) -> np.ndarray:
        """Start an episode; returns the first observation [*observation_shape]."""

    @abstractmethod
    def step(self, action: int) -> tuple[np.ndarray, float, bool]:
        """(next observation, training reward, episode over: terminated or truncated)."""

    @abstractmethod
    def clone(self) -> Any:
        """The env's full state now (random generators included), as an opaque snapshot."""

    @abstractmethod
    def restore(
        self, snapshot: Any, reseed: int | None = None, time_limit: bool = True
    ) -> np.ndarray:
        """Put back ``snapshot``; returns the observation to act on. ``reseed=None`` keeps the
        snapshot's random stream (the same future), a number gives a fresh stream from it.
        ``time_limit=False`` lifts the env's episode time limit from there on: agents
        bootstrap through time-limit truncations, so the return their units predict has
        none (the caller bounds the rollout instead)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""


# ----------------------------------------------------------------------------- gymnasium


def _clone_row(vec: Any, index: int, attr: str) -> Any:
    """Env ``index`` of a vector env that keeps its envs in ``vec.<attr>``: a deep copy of the
    env (every wrapper and generator it holds) and the vector env's row for it."""
    return (
        copy.deepcopy(getattr(vec, attr)[index]),
        vec._obs[index].copy(),
        float(vec._returns[index]),
        int(vec._lengths[index]),
    )


def _restore_row(vec: Any, index: int, state: Any, attr: str) -> None:
    """Put back :func:`_clone_row`'s state into env ``index`` (a fresh copy of it)."""
    env, obs, returns, length = state
    getattr(vec, attr)[index] = copy.deepcopy(env)
    vec._obs[index] = obs
    vec._returns[index] = returns
    vec._lengths[index] = length


def gym_clone_state(vec: Any, index: int) -> Any:
    """The state of env ``index`` of a ``GymVecEnv``: the gymnasium env and its row."""
    return _clone_row(vec, index, "envs")


def gym_restore_state(vec: Any, index: int, state: Any) -> None:
    """Put back :func:`gym_clone_state`'s state into env ``index``."""
    _restore_row(vec, index, state, "envs")


def minatar_clone_state(vec: Any, index: int) -> Any:
    """The state of game ``index`` of a ``MinAtarVecEnv``: the MinAtar ``Environment`` (its
    game, sticky action and the generator both share) and its row."""
    return _clone_row(vec, index, "games")


def minatar_restore_state(vec: Any, index: int, state: Any) -> None:
    """Put back :func:`minatar_clone_state`'s state into game ``index``."""
    _restore_row(vec, index, state, "games")


class CopyClone(CloneableEnv):
    """A one-env ``VecEnv`` of a gymnasium-based family, cloned by its family's
    ``clone_state``/``restore_state`` (deep copies, :func:`gym_clone_state`)."""

    def __init__(
        self,
        vec: Any,
        clone_state: Callable[[Any, int], Any] = gym_clone_state,
        restore_state: Callable[[Any, int, Any], None] = gym_restore_state,
    ) -> None:
        if vec.num_envs != 1:
            raise ValueError("CopyClone takes a VecEnv of one env")
        self.vec = vec
        self._clone_state, self._restore_state = clone_state, restore_state
        self.num_actions = int(vec.num_actions)
        self.observation_shape = tuple(vec.observation_shape)
        try:
            clone_state(vec, 0)
        except Exception as err:  # e.g. Box2D or MuJoCo state held in C objects
            first = str(err).splitlines()[0] if str(err) else ""
            raise ConfigError(
                f"env '{vec.env_id}' cannot clone its state (a deep copy fails: "
                f"{type(err).__name__}: {first})"
            ) from None

    def reset(self, seed: int | None = None) -> np.ndarray:
        return np.array(self.vec.reset(seed=seed)[0])

    def step(self, action: int) -> tuple[np.ndarray, float, bool]:
        out = self.vec.step(np.array([int(action)]))
        done = bool(out.terminated[0] or out.truncated[0])
        # the last observation of the episode, not the autoreset's first one
        return out.final_obs[0].copy(), float(out.reward[0]), done

    def clone(self) -> Any:
        return self._clone_state(self.vec, 0)

    def restore(
        self, snapshot: Any, reseed: int | None = None, time_limit: bool = True
    ) -> np.ndarray:
        self._restore_state(self.vec, 0, snapshot)
        for env in getattr(self.vec, "envs", []):  # gymnasium
            if reseed is not None:
                reseed_gym_env(env, reseed)
            layer = env
            while not time_limit and hasattr(layer, "env"):
                if isinstance(layer, gym.wrappers.TimeLimit):
                    layer._max_episode_steps = _NO_LIMIT
                layer = layer.env
        for game in getattr(self.vec, "games", []):  # MinAtar
            if reseed is not None:
                game.seed(reseed)  # the game and its sticky actions share this generator
            if not time_limit:
                self.vec.max_episode_frames = None
        return np.array(self.vec._obs[0])

    def close(self) -> None:
        self.vec.close()


def reseed_gym_env(env: Any, seed: int) -> None:
    """Give a gymnasium env (every wrapper layer) and a MinAtar game fresh generators."""
    layer = env
    while True:
        if isinstance(vars(layer).get("_np_random"), np.random.Generator):
            layer._np_random = np.random.default_rng(seed)
        game = vars(layer).get("game")
        if game is not None and isinstance(getattr(game, "random", None), np.random.RandomState):
            game.seed(seed)  # MinAtar: its Environment and game share one RandomState
        if not hasattr(layer, "env"):
            break
        layer = layer.env


# ----------------------------------------------------------------------------- Atari


@dataclass
class _AleSnapshot:
    ale: Any  # ALEState, generator included
    frames: np.ndarray
    last_screens: np.ndarray
    lives: int
    last_action: int
    rng: dict[str, Any]  # sticky actions and reset no-ops


class AleClone(CloneableEnv):
    """One Atari game with the training preprocessing (agent/envs/atari.py; without sticky
    actions and no-ops its observations equal ``AtariVecEnv``'s, tests/test_cloning.py) and
    ALE's own state cloning; sticky actions (probability ``sticky_action_prob`` per emulator
    frame of repeating the previous action) drawn from a generator of this class, cloned with
    it."""

    def __init__(
        self,
        game: str,
        *,
        seed: int = 0,
        sticky_action_prob: float = 0.25,
        frame_skip: int = 4,
        frame_stack: int = 4,
        noop_max: int = 30,
        episodic_life: bool = False,
        full_action_space: bool = False,
        max_episode_frames: int = 108_000,
        clip_rewards: bool = True,
    ) -> None:
        import ale_py

        from .atari import rom_name

        rom = rom_name(game)
        self.game = rom
        self.ale = ale_py.ALEInterface()
        self.ale.setLoggerMode(ale_py.LoggerMode.Error)
        self.ale.setInt("random_seed", int(seed))
        self.ale.setFloat("repeat_action_probability", 0.0)  # drawn here, see the module doc
        self.sticky_action_prob = float(sticky_action_prob)
        self.ale.setInt("max_num_frames_per_episode", int(max_episode_frames))
        path = ale_py.roms.get_rom_path(rom)
        if path is None:
            raise ConfigError(f"the ROM of '{rom}' is not installed")
        self.ale.loadROM(path)
        self.actions = (
            self.ale.getLegalActionSet() if full_action_space else self.ale.getMinimalActionSet()
        )
        self.num_actions = len(self.actions)
        self.frame_skip = int(frame_skip)
        self.noop_max = int(noop_max)
        self.episodic_life = bool(episodic_life)
        self.clip_rewards = bool(clip_rewards)
        self.observation_shape = (int(frame_stack), 84, 84)
        h, w = self.ale.getScreenDims()
        self._screens = np.zeros((2, h, w), dtype=np.uint8)
        self._frames = np.zeros(self.observation_shape, dtype=np.uint8)
        self._rng = np.random.default_rng(seed)
        self._lives = 0
        self._last_action = 0  # index into self.actions (0 is NOOP)

    def _observe(self) -> np.ndarray:
        import cv2

        pooled = np.maximum(self._screens[0], self._screens[1])
        frame = cv2.resize(pooled, (84, 84), interpolation=cv2.INTER_AREA)
        self._frames = np.roll(self._frames, -1, axis=0)
        self._frames[-1] = frame
        return self._frames.copy()

    def reset(self, seed: int | None = None) -> np.ndarray:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.ale.reset_game()
        self._last_action = 0
        for _ in range(int(self._rng.integers(0, self.noop_max)) if self.noop_max else 0):
            self.ale.act(self.actions[0])
            if self.ale.game_over():
                self.ale.reset_game()
        self._screens[:] = self.ale.getScreenGrayscale()
        self._frames[:] = 0  # as ALE's vector env: the stack starts empty but for this frame
        self._lives = self.ale.lives()
        return self._observe()

    def step(self, action: int) -> tuple[np.ndarray, float, bool]:
        reward = 0.0
        for k in range(self.frame_skip):
            if self._rng.random() >= self.sticky_action_prob:
                self._last_action = int(action)
            reward += self.ale.act(self.actions[self._last_action])
            if k >= self.frame_skip - 2:  # the last two frames of the skip are max-pooled
                self._screens[k - self.frame_skip + 2] = self.ale.getScreenGrayscale()
            if self.ale.game_over() or self.ale.game_truncated():
                break
        done = bool(self.ale.game_over() or self.ale.game_truncated())
        lives = self.ale.lives()
        if self.episodic_life and lives < self._lives:
            done = True  # the learning episode ends on a life loss (training semantics)
        self._lives = lives
        if self.clip_rewards:
            reward = float(np.clip(reward, -1.0, 1.0))
        return self._observe(), float(reward), done

    def clone(self) -> _AleSnapshot:
        return _AleSnapshot(
            self.ale.cloneState(include_rng=True),
            self._frames.copy(),
            self._screens.copy(),
            self._lives,
            self._last_action,
            dict(self._rng.bit_generator.state),
        )

    def restore(
        self, snapshot: Any, reseed: int | None = None, time_limit: bool = True
    ) -> np.ndarray:
        # ALE's frame cap is set at load time; at 108,000 frames (30 minutes) it is rarely the
        # end of a probed rollout, so time_limit=False changes nothing here.
        snap: _AleSnapshot = snapshot
        self.ale.restoreState(snap.ale)
        self._frames = snap.frames.copy()
        self._screens = snap.last_screens.copy()
        self._lives = snap.lives
        self._last_action = snap.last_action
        if reseed is None:
            self._rng.bit_generator.state = copy.deepcopy(snap.rng)
        else:
            self._rng = np.random.default_rng(reseed)
        return self._frames.copy()


# ----------------------------------------------------------------------------- factory


def ale_clone_env(env_cfg: Any, seed: int) -> AleClone:
    """One cloneable Atari emulator with the config's protocol (the atari family's
    ``clone_env``: ALE's C++ vector env cannot copy one of its envs)."""
    return AleClone(
        env_cfg.game,
        seed=seed,
        sticky_action_prob=env_cfg.sticky_action_prob,
        frame_skip=env_cfg.frame_skip,
        frame_stack=env_cfg.frame_stack,
        noop_max=env_cfg.noop_max,
        episodic_life=env_cfg.episodic_life,
        full_action_space=env_cfg.full_action_space,
        max_episode_frames=env_cfg.max_episode_frames,
        clip_rewards=env_cfg.clip_rewards,
    )


def make_cloneable_env(env_cfg: Any, *, seed: int = 0) -> CloneableEnv:
    """One env of ``env_cfg`` that can clone its state, with the *training* variant's
    rewards and episode ends (what a head's units predict: clipped rewards and life-loss
    ends on Atari when so configured). The family's ``clone_env`` builds it where the
    family has one (Atari), else its one-env ``VecEnv`` with its ``clone_state`` /
    ``restore_state``. ConfigError if the family or env cannot clone."""
    from .registry import family_of

    reason = cloning_support(env_cfg)
    if reason is not None:
        raise ConfigError(f"{reason}; the in-task probe needs an env that can")
    family = family_of(env_cfg)
    if family.clone_env is not None:
        return family.clone_env(env_cfg, seed)
    assert family.clone_state is not None and family.restore_state is not None
    vec = family.make(env_cfg, 1, False, False)
    return CopyClone(vec, family.clone_state, family.restore_state)
