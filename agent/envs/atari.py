"""Atari 2600 games behind ``VecEnv``, on ``ale_py.vector.AtariVectorEnv``.

The vector env runs every emulator in C++ threads and does the standard preprocessing there
(Mnih et al. 2015; Machado et al. 2018): 84×84 grayscale (area interpolation), frame skip with a
max-pool over the last two frames of each skip, a stack of the last ``frame_stack`` frames, up to
``noop_max`` random no-op *emulator frames* at each reset, sticky actions, and a cap on the
emulator frames of one episode (counted from the end of the reset no-ops; reaching it is a
truncation, so learners bootstrap from ``final_obs``).

Facts about ``AtariVectorEnv`` (ale-py 0.12) this wrapper relies on, all checked by
``tests/test_atari_env.py``:

* ``autoreset_mode=SAME_STEP`` is supported natively: a finished env is reset inside the same
  ``step``, its row of ``obs`` already holds the new episode's first observation and
  ``info["final_obs"]`` (present only when some env reset, always ``num_envs`` rows) holds the
  last observation of the old episode. Rows of ``info["final_obs"]`` for envs that did *not*
  reset hold stale data, so only reset rows are copied from it.
* The reward of the terminal step is kept (it is not replaced by the reset's zero).
* ALE's own ``episodic_life=True`` restarts the whole game on every life loss, which is not
  the DQN protocol (end the *learning* episode on a life loss, but play on until game over).
  We get the DQN protocol from ``life_loss_info=True``: ``terminated`` is raised on a life loss
  while the game continues. A life-loss row is then terminated but not reset; we tell the two
  apart exactly from the frame counters: across a step without reset the global
  ``frame_number`` and the ``episode_frame_number`` advance by the same amount, across a reset
  they cannot (the episode counter restarts at the number of no-op frames).
* ``repeat_action_probability`` defaults to 0.0 in ``AtariVectorEnv`` (unlike ``ALE/*-v5``),
  so it is always passed explicitly here.
* No-ops: ALE draws 0 … ``noop_max`` − 1 no-op frames per reset.

``episode_returns`` / ``episode_lengths`` are tracked here from the unclipped game reward and
count whole games (across lives), in agent steps, whatever ``clip_rewards`` and
``episodic_life`` say; ``reward`` is the training reward (clipped to [−1, 1] when asked).

Async batches: ``AtariVectorEnv`` can step ``num_envs`` envs and return whichever
``batch_size`` < ``num_envs`` finish first (``send``/``recv`` with ``info["env_id"]``). That
does not fit ``VecEnv.step``, which takes one action per env and returns every env, so only
``batch_size=None`` (or ``num_envs``) is accepted; an async trainer would need an env-id-indexed
interface on top of ``send``/``recv``.
"""

from __future__ import annotations

import difflib
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from typing import Any

import numpy as np
from ale_py import roms
from ale_py.vector_env import AtariVectorEnv
from gymnasium.vector import AutoresetMode

from ..core.errors import ConfigError
from .base import VecEnv, VecStep
from .hns import squash_game_name

# ALE screens are 210 × 160 RGB; the network sees 84 × 84 grayscale.
_SCREEN_HEIGHT, _SCREEN_WIDTH = 210, 160
_OBS_SIZE = 84
# Seeds ALE accepts are C ints; keep ``seed + i`` inside that range.
_MAX_SEED = 2**31 - 1


def rom_name(game: str) -> str:
    """The ALE ROM id (snake_case) of ``game``; raises ``ConfigError`` naming close matches.

    Accepts ROM ids (``space_invaders``), CamelCase (``SpaceInvaders``) and gymnasium ids
    (``ALE/SpaceInvaders-v5``, ``SpaceInvadersNoFrameskip-v4``).
    """
    ids = roms.get_all_rom_ids()
    squashed = {squash_game_name(rom): rom for rom in ids}
    key = squash_game_name(game)
    if key in squashed:
        return squashed[key]
    close = difflib.get_close_matches(game.strip().lower(), ids, n=4, cutoff=0.5)
    if not close:
        close = difflib.get_close_matches(key, list(squashed), n=4, cutoff=0.5)
        close = [squashed[c] for c in close]
    hint = f"close matches: {', '.join(close)}" if close else "no close match"
    raise ConfigError(
        f"unknown Atari game '{game}' ({hint}; expected an ALE ROM name such as pong)"
    )


def atari_env_id(game: str) -> str:
    """The ``env_id`` this family reports, e.g. ``ALE/SpaceInvaders`` for ``space_invaders``."""
    return "ALE/" + "".join(part.capitalize() for part in rom_name(game).split("_"))


class AtariVecEnv(VecEnv):
    """``num_envs`` copies of one Atari game, stepped in ALE's C++ threads.

    Observations are uint8 arrays of shape ``[num_envs, frame_stack, 84, 84]`` (env, stacked
    frame oldest → newest, height, width), grayscale 0–255; the network divides by 255.

    ``render=True`` keeps a second, single RGB emulator driven with env 0's seed and actions:
    ALE is deterministic given the seed and the actions, so it replays env 0 exactly and
    ``render_frame()`` returns its 210 × 160 × 3 screen (the last frame of each skip). With
    ``render=False`` (the default, no extra cost) ``render_frame()`` returns None.

    ``fire_reset=True`` presses FIRE after each reset in games that have it (a common but
    game-specific trick that Machado et al. 2018 advise against); it is off by default.
    """

    def __init__(
        self,
        game: str,
        num_envs: int,
        *,
        seed: int | None = None,
        sticky_action_prob: float = 0.25,
        frame_skip: int = 4,
        frame_stack: int = 4,
        noop_max: int = 30,
        episodic_life: bool = False,
        full_action_space: bool = False,
        max_episode_frames: int = 108_000,
        clip_rewards: bool = True,
        num_threads: int = 0,
        batch_size: int | None = None,
        fire_reset: bool = False,
        render: bool = False,
    ) -> None:
        rom = rom_name(game)
        _check(num_envs >= 1, f"env.num_envs must be >= 1, got {num_envs}")
        _check(
            0.0 <= sticky_action_prob <= 1.0,
            f"env.sticky_action_prob must be in [0, 1], got {sticky_action_prob}",
        )
        _check(frame_skip >= 1, f"env.frame_skip must be >= 1, got {frame_skip}")
        _check(frame_stack >= 1, f"env.frame_stack must be >= 1, got {frame_stack}")
        _check(noop_max >= 0, f"env.noop_max must be >= 0, got {noop_max}")
        _check(
            max_episode_frames >= 1,
            f"env.max_episode_frames must be >= 1, got {max_episode_frames}",
        )
        _check(num_threads >= 0, f"env.num_threads must be >= 0 (0: auto), got {num_threads}")
        _check(
            batch_size in (None, 0, num_envs),
            f"env.batch_size={batch_size}: async batches smaller than num_envs ({num_envs}) "
            "do not fit the VecEnv interface; leave it unset",
        )
        self.game = rom
        self.env_id = atari_env_id(rom)
        self.num_envs = num_envs
        self.observation_shape = (frame_stack, _OBS_SIZE, _OBS_SIZE)
        self.observation_dtype = np.dtype(np.uint8)
        self.observation_kind = "frame_stack"
        self.reward_threshold = None
        self.frames_per_step = frame_skip
        self.sticky_action_prob = float(sticky_action_prob)
        self.episodic_life = episodic_life
        self.clip_rewards = clip_rewards
        self._seed = seed
        self._seeded = False

        common: dict[str, Any] = dict(
            max_num_frames_per_episode=max_episode_frames,
            repeat_action_probability=float(sticky_action_prob),
            full_action_space=full_action_space,
            autoreset_mode=AutoresetMode.SAME_STEP,
            frameskip=frame_skip,
            noop_max=noop_max,
            use_fire_reset=fire_reset,
            # ALE's episodic_life restarts the game on a life loss; see the module docstring.
            episodic_life=False,
            # Clipping happens here so that episode returns can use the raw game score.
            reward_clipping=False,
        )
        self._env = AtariVectorEnv(
            rom,
            num_envs,
            num_threads=num_threads,
            img_height=_OBS_SIZE,
            img_width=_OBS_SIZE,
            grayscale=True,
            stack_num=frame_stack,
            maxpool=True,
            life_loss_info=episodic_life,
            **common,
        )
        self.num_actions = int(self._env.single_action_space.n)  # type: ignore[attr-defined]
        self._shadow: AtariVectorEnv | None = None
        if render:
            self._shadow = AtariVectorEnv(
                rom,
                1,
                num_threads=1,
                img_height=_SCREEN_HEIGHT,
                img_width=_SCREEN_WIDTH,
                grayscale=False,
                stack_num=1,
                maxpool=False,
                **common,
            )
        self._shadow_frame: np.ndarray | None = None
        self._stepper: ThreadPoolExecutor | None = None  # step_async's thread, made on first use
        self._future: Future[VecStep] | None = None
        self._returns = np.zeros(num_envs, dtype=np.float64)
        self._lengths = np.zeros(num_envs, dtype=np.int64)
        self._frame_number = np.zeros(num_envs, dtype=np.int64)
        self._episode_frame_number = np.zeros(num_envs, dtype=np.int64)

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Reset all envs (env i gets ``seed + i``); returns uint8 obs [E, stack, 84, 84].

        Without a seed the first reset uses the constructor's ``seed`` (or a fresh random one),
        later unseeded resets continue each env's random stream.
        """
        if seed is None and not self._seeded:
            seed = self._seed
            if seed is None:
                # An explicit draw keeps the render shadow and env 0 on the same stream.
                seed = int(np.random.SeedSequence().generate_state(1)[0] % (_MAX_SEED // 2))
        if seed is not None:
            _check(
                0 <= seed <= _MAX_SEED - self.num_envs,
                f"seed must be in [0, {_MAX_SEED - self.num_envs}], got {seed}",
            )
            seed = int(seed)
            self._seeded = True
        obs, info = self._env.reset(seed=seed)
        self._frame_number[:] = info["frame_number"]
        self._episode_frame_number[:] = info["episode_frame_number"]
        self._returns[:] = 0.0
        self._lengths[:] = 0
        if self._shadow is not None:
            frames, _ = self._shadow.reset(seed=seed)
            self._shadow_frame = frames[0, 0]
        return obs

    def step(self, actions: np.ndarray) -> VecStep:
        """Step every env; finished envs are reset in the same step (see ``VecStep``)."""
        return self._step(self._checked(actions))

    def step_async(self, actions: np.ndarray) -> None:
        """Start the step on a stepping thread and return at once: ALE steps in C++ without the
        GIL, so the emulators run while Python does other work (the overlapped loop's updates).
        A thread rather than ``AtariVectorEnv.send``/``recv``: on the 2-core CPU VM ``send``
        did not return before most of the step was done (docs/benchmarks.md)."""
        if self._future is not None:
            raise RuntimeError("step_async twice without step_wait")
        if self._stepper is None:
            self._stepper = ThreadPoolExecutor(1, thread_name_prefix="atari-step")
        # a copy: the caller may reuse its buffer while the thread steps
        self._future = self._stepper.submit(self._step, self._checked(actions).copy())

    def step_wait(self) -> VecStep:
        """Wait for the step ``step_async`` started."""
        future, self._future = self._future, None
        if future is None:
            raise RuntimeError("step_wait without step_async")
        return future.result()

    def _checked(self, actions: np.ndarray) -> np.ndarray:
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs,):
            raise ValueError(f"expected actions of shape ({self.num_envs},), got {actions.shape}")
        return actions.astype(np.int64, copy=False)

    def _step(self, actions: np.ndarray) -> VecStep:
        obs, raw_reward, terminated, truncated, info = self._env.step(actions)
        frame_number = info["frame_number"].astype(np.int64)
        episode_frame_number = info["episode_frame_number"].astype(np.int64)
        done = terminated | truncated
        if self.episodic_life:
            # A life loss is terminated but not reset; see the module docstring for the rule.
            advanced = frame_number - self._frame_number
            advanced_in_episode = episode_frame_number - self._episode_frame_number
            was_reset = done & (advanced != advanced_in_episode)
        else:
            was_reset = done
        self._frame_number = frame_number
        self._episode_frame_number = episode_frame_number

        final_obs = obs.copy()
        if was_reset.any():
            final_obs[was_reset] = info["final_obs"][was_reset]

        self._returns += raw_reward
        self._lengths += 1
        finished = np.flatnonzero(was_reset)
        episode_returns = self._returns[finished].tolist()
        episode_lengths = self._lengths[finished].tolist()
        self._returns[finished] = 0.0
        self._lengths[finished] = 0

        if self.clip_rewards:
            reward = np.clip(raw_reward, -1, 1).astype(np.float32)
        else:
            reward = raw_reward.astype(np.float32)

        if self._shadow is not None:
            frames, _, shadow_term, shadow_trunc, _ = self._shadow.step(actions[:1])
            self._shadow_frame = frames[0, 0]
            # Both emulators must end env 0's games together, else the video shows another game.
            if bool(shadow_term[0] or shadow_trunc[0]) != bool(was_reset[0]):
                raise RuntimeError("the render emulator lost step with env 0; please report")
        return VecStep(
            obs,
            reward,
            terminated.astype(bool, copy=False),
            truncated.astype(bool, copy=False),
            final_obs,
            episode_returns,
            episode_lengths,
        )

    def render_frame(self) -> np.ndarray | None:
        """Env 0's current RGB screen, uint8 [210, 160, 3], or None unless ``render=True``."""
        return None if self._shadow_frame is None else self._shadow_frame.copy()

    def close(self) -> None:
        """Stop the emulator threads (dropping the vector env joins them)."""
        if self._future is not None:
            with suppress(Exception):  # a step failing while the run stops: closing anyway
                self._future.result()
            self._future = None
        if self._stepper is not None:
            self._stepper.shutdown(wait=True)
            self._stepper = None
        self._env = None  # type: ignore[assignment]
        self._shadow = None


def _check(ok: bool, message: str) -> None:
    """Raise a one-line ``ConfigError`` when ``ok`` is false."""
    if not ok:
        raise ConfigError(message)
