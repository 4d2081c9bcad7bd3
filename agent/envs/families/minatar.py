"""Family ``minatar``: the five MinAtar games (Young & Tian 2019; PyPI ``minatar``, the
``minatar`` extra) behind ``VecEnv``.

``env.game`` = breakout | asterix | freeway | seaquest | space_invaders (the gymnasium names
``MinAtar/Breakout-v1`` or ``SpaceInvaders`` are accepted too). Observations are the game's
10×10×C binary planes, channels first, as float32 ``[C, 10, 10]``; the torso is the MinAtar
paper's net (agent/nn/networks.py ``MinAtarTorso``). The protocol is the paper's, which
Dopamine's MinAtar configs of Revisiting Rainbow (Obando-Ceron & Castro 2021) keep: the full
action set of 6 actions, sticky actions with probability 0.1 (``env.sticky_action_prob``),
difficulty ramping on, no frame skip or stacking, no reward clipping (rewards are small
integers). ``env.max_episode_frames`` caps an episode (a truncation; one frame is one agent
step here): the games have no time limit of their own except Freeway's 2500 frames, and a
greedy Breakout agent that never misses would play forever.

The envs run in-process, stepped one after the other: each game step is a few µs of numpy,
far below the cost of an update (scripts/bench/minatar_speed.py measures both). Their whole
state, random generator included, is plain Python and numpy, so ``get_state``/``set_state``
carry it into checkpoints and a resume is bit-exact.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...core.config import EnvConfig
from ...core.errors import ConfigError
from ..base import VecEnv, VecStep
from ..cloning import minatar_clone_state, minatar_restore_state
from ..registry import EnvFamily, EvalProtocol, register

GAMES = ("asterix", "breakout", "freeway", "seaquest", "space_invaders")
NUM_ACTIONS = 6  # MinAtar's full action set: no-op, left, up, right, down, fire


@dataclass
class MinAtarEnvConfig(EnvConfig):
    """Family ``minatar`` (Young & Tian 2019): one frame is one agent step, no frame skip,
    stacking or reward clipping."""

    family: str = "minatar"
    game: str | None = None  # breakout | asterix | freeway | seaquest | space_invaders
    sticky_action_prob: float = 0.1  # repeat the previous action
    max_episode_frames: int = 108_000  # cap on one episode (truncation)
    kwargs: dict[str, Any] = field(default_factory=dict)  # difficulty_ramping (default true)


def game_name(game: str | None) -> str:
    """The MinAtar module name of ``game`` (``breakout``); accepts ``Breakout``,
    ``SpaceInvaders`` and ``MinAtar/Breakout-v1``. ConfigError naming close matches."""
    if not game:
        raise ConfigError(f"env.game must name a MinAtar game: {', '.join(GAMES)}")
    name = str(game).removeprefix("MinAtar/").split("-v")[0]
    squashed = name.replace("_", "").lower()
    for g in GAMES:
        if squashed == g.replace("_", ""):
            return g
    close = difflib.get_close_matches(name.lower(), GAMES, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise ConfigError(f"unknown MinAtar game '{game}'{hint}; expected one of {', '.join(GAMES)}")


class MinAtarVecEnv(VecEnv):
    """``num_envs`` MinAtar games stepped in-process with same-step autoreset."""

    def __init__(
        self,
        game: str,
        num_envs: int,
        *,
        sticky_action_prob: float = 0.1,
        difficulty_ramping: bool = True,
        max_episode_frames: int | None = None,
    ) -> None:
        try:
            from minatar import Environment
        except ImportError as err:
            raise ConfigError(
                f"env.family=minatar needs MinAtar: pip install 'dopa-rl[minatar]' ({err})"
            ) from None
        self.game = game_name(game)
        self.games = [
            Environment(
                self.game,
                sticky_action_prob=sticky_action_prob,
                difficulty_ramping=difficulty_ramping,
            )
            for _ in range(num_envs)
        ]
        height, width, channels = self.games[0].state_shape()
        self.env_id = f"MinAtar/{self.game.title().replace('_', '')}"
        self.num_envs = num_envs
        self.num_actions = NUM_ACTIONS
        self.observation_shape = (channels, height, width)
        self.observation_dtype = np.dtype(np.float32)
        self.observation_kind = "image"
        self.reward_threshold = None
        self.frames_per_step = 1
        self.max_episode_frames = max_episode_frames
        self._settings = (sticky_action_prob, difficulty_ramping)
        self._returns = np.zeros(num_envs, dtype=np.float64)
        self._lengths = np.zeros(num_envs, dtype=np.int64)
        self._obs = np.zeros((num_envs, *self.observation_shape), dtype=np.float32)

    def _observe(self, i: int, out: np.ndarray) -> None:
        # the game's [H, W, C] bool planes, channels first
        out[i] = self.games[i].state().transpose(2, 0, 1)

    def reset(self, seed: int | None = None) -> np.ndarray:
        for i, g in enumerate(self.games):
            if seed is not None:
                g.seed(seed + i)  # the game and its sticky actions share this generator
            g.last_action = 0  # a reset of the batch starts from a known sticky action
            g.reset()
            self._observe(i, self._obs)
        self._returns[:] = 0.0
        self._lengths[:] = 0
        return self._obs.copy()

    def step(self, actions: np.ndarray) -> VecStep:
        n = self.num_envs
        reward = np.zeros(n, dtype=np.float32)
        terminated = np.zeros(n, dtype=bool)
        truncated = np.zeros(n, dtype=bool)
        final_obs = np.empty_like(self._obs)
        returns: list[float] = []
        lengths: list[int] = []
        cap = self.max_episode_frames
        for i, g in enumerate(self.games):
            r, done = g.act(int(actions[i]))
            reward[i] = r
            self._returns[i] += r
            self._lengths[i] += 1
            self._observe(i, final_obs)
            terminated[i] = done
            truncated[i] = not done and cap is not None and self._lengths[i] >= cap
            if done or truncated[i]:
                returns.append(float(self._returns[i]))
                lengths.append(int(self._lengths[i]))
                self._returns[i] = 0.0
                self._lengths[i] = 0
                g.reset()  # like MinAtar's own wrappers: the sticky action carries over
                self._observe(i, self._obs)
            else:
                self._obs[i] = final_obs[i]
        return VecStep(self._obs.copy(), reward, terminated, truncated, final_obs, returns, lengths)

    def render_frame(self) -> np.ndarray | None:
        """Env 0 as RGB, one colour per channel (MinAtar's cubehelix palette, black where
        empty), each cell 16×16 pixels."""
        from matplotlib import colormaps

        state = self.games[0].state()  # [H, W, C] bool
        channels = state.shape[-1]
        palette = colormaps["cubehelix"](np.linspace(0.15, 0.85, channels))[:, :3]
        colours = np.vstack([np.zeros(3), palette])
        index = np.amax(state * np.arange(1, channels + 1), axis=2)  # last channel wins
        rgb = (colours[index] * 255).astype(np.uint8)
        return np.kron(rgb, np.ones((16, 16, 1), dtype=np.uint8))

    # -- exact state for a bit-exact resume --------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        """JSON-able state of every game: its attributes, the sticky action and the generator
        the game and its sticky actions share."""
        return {
            "games": [_snapshot(g) for g in self.games],
            "obs": self._obs.tolist(),
            "returns": self._returns.tolist(),
            "lengths": self._lengths.tolist(),
        }

    def check_state(self, state: Any) -> None:
        """ValueError naming the field unless ``set_state`` would restore ``state``."""
        self._checked(state)

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore ``get_state``'s output; everything is checked against a fresh game first
        (ValueError naming the field), so a bad snapshot changes nothing."""
        obs, returns, lengths, decoded = self._checked(state)
        for g, (attrs, last_action, rng) in zip(self.games, decoded, strict=True):
            random = np.random.RandomState()
            random.set_state(rng)
            g.random = g.env.random = random
            g.last_action = last_action
            for name, value in attrs.items():
                setattr(g.env, name, value)
        self._obs[:] = obs
        self._returns[:] = returns
        self._lengths[:] = lengths

    def _checked(
        self, state: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[dict[str, Any], int, Any]]]:
        """``state``'s observations, returns, lengths and per-game attributes, checked."""
        n = self.num_envs
        if not isinstance(state, dict) or not isinstance(state.get("games"), list):
            raise ValueError("env_state must be an object with a 'games' list")
        if len(state["games"]) != n:
            raise ValueError(
                f"env_state.games holds {len(state['games'])} games, this run has {n} "
                "(env.num_envs)"
            )
        obs = _array(state.get("obs"), (n, *self.observation_shape), np.float32, "obs")
        returns = _array(state.get("returns"), (n,), np.float64, "returns")
        lengths = _array(state.get("lengths"), (n,), np.int64, "lengths")
        if (lengths < 0).any():
            raise ValueError("env_state.lengths must be >= 0")
        reference = vars(self.games[0].env)
        decoded = [
            _check(reference, s, f"env_state.games[{i}]") for i, s in enumerate(state["games"])
        ]
        return obs, returns, lengths, decoded


_SKIP = ("random", "channels", "action_map")  # the generator is saved once; the rest is fixed


def _encode(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return {"a": value.tolist(), "dtype": str(value.dtype), "shape": list(value.shape)}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    return value


def _snapshot(game: Any) -> dict[str, Any]:
    name, keys, pos, has_gauss, gauss = game.random.get_state()
    return {
        "attrs": {k: _encode(v) for k, v in vars(game.env).items() if k not in _SKIP},
        "last_action": int(game.last_action),
        "rng": [name, keys.tolist(), int(pos), int(has_gauss), float(gauss)],
    }


def _array(value: Any, shape: tuple[int, ...], dtype: Any, field: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"env_state.{field} must hold numbers") from None
    if arr.shape != shape:
        raise ValueError(f"env_state.{field} must have shape {list(shape)}, got {list(arr.shape)}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"env_state.{field} must be finite")
    return arr


def _plain(value: Any) -> bool:
    """JSON-like data the games keep: numbers, booleans, None and nested lists of them."""
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, bool | int | float)


def _check(reference: dict[str, Any], snap: Any, where: str) -> tuple[dict[str, Any], int, Any]:
    """The attributes, sticky action and generator state of one game's snapshot, checked
    against a game of the same kind (``reference``: its attributes)."""
    if not isinstance(snap, dict) or not isinstance(snap.get("attrs"), dict):
        raise ValueError(f"{where} must be an object with 'attrs'")
    expected = {k for k in reference if k not in _SKIP}
    if set(snap["attrs"]) != expected:
        raise ValueError(f"{where}.attrs must hold exactly {sorted(expected)}")
    attrs: dict[str, Any] = {}
    for name, enc in snap["attrs"].items():
        ref = reference[name]
        if isinstance(ref, np.ndarray):
            arr = _array(
                enc.get("a") if isinstance(enc, dict) else None, ref.shape, ref.dtype, name
            )
            attrs[name] = arr
        elif isinstance(ref, bool) and not isinstance(enc, bool):
            raise ValueError(f"{where}.attrs.{name} must be true or false")
        elif not _plain(enc) or isinstance(ref, list) != isinstance(enc, list):
            raise ValueError(f"{where}.attrs.{name} holds the wrong kind of value")
        else:
            attrs[name] = enc
    last_action = snap.get("last_action")
    if not isinstance(last_action, int) or not 0 <= last_action < NUM_ACTIONS:
        raise ValueError(f"{where}.last_action must be an action 0..{NUM_ACTIONS - 1}")
    rng = snap.get("rng")
    try:
        name, keys, pos, has_gauss, gauss = rng  # type: ignore[misc]
        state = (str(name), np.asarray(keys, dtype=np.uint32), int(pos), int(has_gauss), gauss)
        np.random.RandomState().set_state(state)
    except (TypeError, ValueError, OverflowError, IndexError):
        raise ValueError(f"{where}.rng is not a numpy RandomState state") from None
    return attrs, last_action, state


def check_config(env_cfg: Any) -> None:
    """The game, the episode cap and ``env.kwargs`` (only ``difficulty_ramping``, true or
    false): ConfigError naming the key."""
    game_name(env_cfg.game)
    frames = env_cfg.max_episode_frames
    if type(frames) is not int or frames < 1:
        raise ConfigError(
            f"env.max_episode_frames must be an integer >= 1 (one frame is one agent step), "
            f"got {frames!r}"
        )
    kwargs = dict(env_cfg.kwargs)
    ramping = kwargs.pop("difficulty_ramping", True)
    if kwargs:
        raise ConfigError(
            f"env.kwargs for env.family=minatar takes only difficulty_ramping, got {sorted(kwargs)}"
        )
    if not isinstance(ramping, bool):
        raise ConfigError(f"env.kwargs.difficulty_ramping must be true or false, got {ramping!r}")


def make(env_cfg: Any, num_envs: int, evaluation: bool, render: bool) -> VecEnv:  # noqa: ARG001
    check_config(env_cfg)
    return MinAtarVecEnv(
        env_cfg.game,
        num_envs,
        sticky_action_prob=env_cfg.sticky_action_prob,
        difficulty_ramping=env_cfg.kwargs.get("difficulty_ramping", True),
        max_episode_frames=env_cfg.max_episode_frames,
    )


def cap_episode_steps(env_cfg: Any, max_episode_steps: int) -> None:
    """One MinAtar frame is one agent step."""
    env_cfg.max_episode_frames = max_episode_steps


MINATAR = register(
    EnvFamily(
        name="minatar",
        summary="MinAtar (Young & Tian 2019): env.game=breakout|asterix|freeway|seaquest|"
        "space_invaders",
        make=make,
        observation="image",
        torso="minatar_cnn",
        # the games are plain Python and numpy: deep copies clone them (agent/envs/cloning.py)
        can_clone=True,
        clone_state=minatar_clone_state,
        restore_state=minatar_restore_state,
        evaluation=EvalProtocol(epsilon=0.001, max_episode_steps=108_000),
        config_class=MinAtarEnvConfig,
        video_fps=lambda env_cfg: 10,
        cap_episode_steps=cap_episode_steps,
        check_config=check_config,
        display_id=lambda env_cfg: game_name(env_cfg.game),
        population=True,
    )
)
