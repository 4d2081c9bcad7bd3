"""Gymnasium envs (classic control, the lab tasks, any id with discrete actions) behind VecEnv.

A small synchronous vector env with same-step autoreset: for cheap envs the per-step cost of
subprocesses outweighs their gain, and keeping the envs in-process lets a checkpoint capture
their exact state (``get_state``/``set_state``) for a bit-exact resume.
"""

from __future__ import annotations

import difflib
from typing import Any

import gymnasium as gym
import numpy as np

from agent.envs.base import VecEnv, VecStep
from agent.errors import ConfigError


def check_env_id(env_id: str) -> gym.envs.registration.EnvSpec:
    """The registry spec of ``env_id``, or a ConfigError listing close matches."""
    try:
        return gym.spec(env_id)
    except gym.error.Error:
        close = difflib.get_close_matches(env_id, list(gym.registry.keys()), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError(f"unknown gymnasium id '{env_id}'{hint}") from None


class GymVecEnv(VecEnv):
    """``num_envs`` copies of one gymnasium env stepped in-process."""

    def __init__(
        self,
        env_id: str,
        num_envs: int,
        *,
        kwargs: dict[str, Any] | None = None,
        render: bool = False,
    ) -> None:
        spec = check_env_id(env_id)
        kwargs = dict(kwargs or {})
        if render:
            kwargs["render_mode"] = "rgb_array"
        try:
            self.envs = [gym.make(env_id, **kwargs) for _ in range(num_envs)]
        except TypeError as err:
            raise ConfigError(f"bad env.kwargs for '{env_id}': {err}") from None
        except gym.error.DependencyNotInstalled as err:
            # e.g. LunarLander without Box2D: one line naming the extra, not a traceback
            extra = (
                " (pip install swig && pip install 'dopa-rl[box2d]')" if "Box2D" in str(err) else ""
            )
            first = str(err).strip().splitlines()[0]
            raise ConfigError(
                f"env '{env_id}' needs a package that is not installed{extra}: {first}"
            ) from None
        space = self.envs[0].action_space
        if not isinstance(space, gym.spaces.Discrete):
            raise ConfigError(
                f"env '{env_id}' has a {type(space).__name__} action space; "
                "DQN-family agents need a Discrete one"
            )
        obs_space = self.envs[0].observation_space
        if not isinstance(obs_space, gym.spaces.Box):
            raise ConfigError(f"env '{env_id}' needs a Box observation space")
        self.env_id = env_id
        self.num_envs = num_envs
        self.num_actions = int(space.n)
        self.observation_shape = tuple(obs_space.shape)
        self.observation_dtype = np.dtype(np.float32)
        self.observation_kind = "image" if len(self.observation_shape) == 3 else "vector"
        self.reward_threshold = spec.reward_threshold
        self.frames_per_step = 1
        self._returns = np.zeros(num_envs, dtype=np.float64)
        self._lengths = np.zeros(num_envs, dtype=np.int64)
        self._obs = np.zeros((num_envs, *self.observation_shape), dtype=np.float32)

    def reset(self, seed: int | None = None) -> np.ndarray:
        for i, env in enumerate(self.envs):
            obs, _ = env.reset(seed=None if seed is None else seed + i)
            self._obs[i] = obs
        for i, env in enumerate(self.envs):
            env.action_space.seed(None if seed is None else seed + i)
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
        for i, env in enumerate(self.envs):
            obs, r, term, trunc, _ = env.step(int(actions[i]))
            reward[i], terminated[i], truncated[i] = r, term, trunc
            final_obs[i] = obs
            self._returns[i] += r
            self._lengths[i] += 1
            if term or trunc:
                returns.append(float(self._returns[i]))
                lengths.append(int(self._lengths[i]))
                self._returns[i] = 0.0
                self._lengths[i] = 0
                obs, _ = env.reset()
            self._obs[i] = obs
        return VecStep(self._obs.copy(), reward, terminated, truncated, final_obs, returns, lengths)

    def render_frame(self) -> np.ndarray | None:
        frame = self.envs[0].render()
        return frame if isinstance(frame, np.ndarray) else None

    def close(self) -> None:
        for env in self.envs:
            env.close()

    # Exact state for bit-exact resume: pure-Python envs keep their state in plain attributes.
    def get_state(self) -> dict[str, Any]:
        """JSON-able state of every env (numpy arrays as lists, RNG bit-generator states)."""
        return {
            "envs": [_snapshot(env) for env in self.envs],
            "obs": self._obs.tolist(),
            "returns": self._returns.tolist(),
            "lengths": self._lengths.tolist(),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        for env, snap in zip(self.envs, state["envs"], strict=True):
            _restore(env, snap)
        self._obs[:] = np.asarray(state["obs"], dtype=np.float32)
        self._returns[:] = state["returns"]
        self._lengths[:] = state["lengths"]


_SIMPLE = (bool, int, float, str, type(None))


def _layers(env: gym.Env) -> list[Any]:
    layers = []
    while True:
        layers.append(env)
        if not hasattr(env, "env"):
            break
        env = env.env
    return layers


def _encode(value: Any) -> Any:
    if isinstance(value, _SIMPLE):
        return {"v": value}
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return {"a": value.tolist(), "dtype": str(value.dtype), "shape": list(value.shape)}
    if isinstance(value, np.generic):
        return {"v": value.item()}
    if isinstance(value, tuple | list) and all(isinstance(v, _SIMPLE) for v in value):
        return {"l": list(value), "tuple": isinstance(value, tuple)}
    if isinstance(value, np.random.Generator):
        return {"rng": value.bit_generator.state}
    return None  # not state we can or need to carry (spaces, renderers, specs)


def _decode(current: Any, enc: dict[str, Any]) -> Any:
    if "v" in enc:
        return enc["v"]
    if "a" in enc:
        return np.asarray(enc["a"], dtype=enc["dtype"]).reshape(enc["shape"])
    if "l" in enc:
        return tuple(enc["l"]) if enc["tuple"] else list(enc["l"])
    if "rng" in enc:
        if not isinstance(current, np.random.Generator):  # env never reset in this process
            bit_generator = getattr(np.random, enc["rng"]["bit_generator"])
            current = np.random.Generator(bit_generator())
        current.bit_generator.state = enc["rng"]
        return current
    raise ValueError(f"unknown env state encoding {enc}")


def _snapshot(env: gym.Env) -> list[dict[str, Any]]:
    snaps = []
    for layer in _layers(env):
        attrs = {}
        for name, value in vars(layer).items():
            if name in ("env", "spec", "metadata", "render_mode"):
                continue
            enc = _encode(value)
            if enc is not None:
                attrs[name] = enc
        snaps.append(attrs)
    return snaps


def _restore(env: gym.Env, snaps: list[dict[str, Any]]) -> None:
    for layer, attrs in zip(_layers(env), snaps, strict=True):
        for name, enc in attrs.items():
            setattr(layer, name, _decode(getattr(layer, name, None), enc))
