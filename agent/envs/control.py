"""Gymnasium envs (classic control, the lab tasks, any id with discrete actions) behind VecEnv.

A small synchronous vector env with same-step autoreset: for cheap envs the per-step cost of
subprocesses outweighs their gain, and keeping the envs in-process lets a checkpoint capture
their exact state (``get_state``/``set_state``) for a bit-exact resume.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from ..core.errors import ConfigError
from .base import VecEnv, VecStep


def _is_module_name(name: Any) -> bool:
    return isinstance(name, str) and all(part.isidentifier() for part in name.split("."))


def import_env_module(module: str, key: str) -> None:
    """Import ``module``, which registers gymnasium ids (a user's own envs); ConfigError naming
    ``key`` (the config key that asked for it), the module and the import's error otherwise."""
    if not _is_module_name(module):
        raise ConfigError(f"{key}: {module!r} is not a Python module name")
    try:
        importlib.import_module(module)
    except Exception as err:  # the user's module runs at import: any error is theirs
        if isinstance(err, ModuleNotFoundError) and err.name == module.split(".")[0]:
            raise ConfigError(
                f"{key}: cannot import module '{module}': {err} (install its package, or add "
                "its folder to PYTHONPATH)"
            ) from None
        first = (str(err).strip().splitlines() or [""])[0]
        raise ConfigError(
            f"{key}: importing module '{module}' failed: {type(err).__name__}: {first}"
        ) from None


def check_env_id(env_id: str, imports: Sequence[str] = ()) -> gym.envs.registration.EnvSpec:
    """The registry spec of ``env_id``, after importing the modules that register it: each of
    ``imports`` (``env.imports``) and, for gymnasium's ``module:Id`` form, ``module``. A
    ConfigError names a module that does not import, or the id still unknown (with close
    matches)."""
    if not isinstance(env_id, str):
        raise ConfigError(f"env.id must be a gymnasium id, got {env_id!r}")
    if isinstance(imports, str) or not isinstance(imports, Sequence):
        raise ConfigError(f"env.imports must be a list of module names, got {imports!r}")
    for module in imports:
        import_env_module(module, "env.imports")
    module, sep, name = env_id.rpartition(":")
    if sep:
        if not module or not name:
            raise ConfigError(f"env.id must be 'Id' or 'module:Id', got '{env_id}'")
        import_env_module(module, f"env.id={env_id}")
    imported = [*imports, *([module] if sep else [])]
    try:
        return gym.spec(name)
    except gym.error.Error:
        close = difflib.get_close_matches(name, list(gym.registry.keys()), n=3)
        hints = ([f"not registered by importing {', '.join(imported)}"] if imported else []) + (
            [f"did you mean {', '.join(close)}?"] if close else []
        )
        hint = f" ({'; '.join(hints)})" if hints else ""
        raise ConfigError(f"unknown gymnasium id '{name}'{hint}") from None


class GymVecEnv(VecEnv):
    """``num_envs`` copies of one gymnasium env stepped in-process."""

    def __init__(
        self,
        env_id: str,
        num_envs: int,
        *,
        kwargs: dict[str, Any] | None = None,
        render: bool = False,
        imports: Sequence[str] = (),
    ) -> None:
        spec = check_env_id(env_id, imports)
        kwargs = dict(kwargs or {})
        if render:
            kwargs["render_mode"] = "rgb_array"
        try:
            self.envs = [gym.make(spec.id, **kwargs) for _ in range(num_envs)]
            self._kwargs = kwargs  # a reference env for set_state's checks is built alike
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
        self.env_id = env_id  # as configured (``module:Id`` included)
        self._spec_id = spec.id  # its registered id, made after the module's import
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

    def check_state(self, state: Any) -> None:
        """ValueError naming the field unless ``set_state`` would restore ``state``."""
        self._checked(state)

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore ``get_state``'s output. Everything is checked first (ValueError naming the
        field) against a freshly reset env of the same id, so a crafted snapshot changes
        nothing and cannot leave an attribute of a type the env would crash on."""
        obs, returns, lengths, decoded = self._checked(state)
        for env, layers in zip(self.envs, decoded, strict=True):
            for layer, attrs in zip(_layers(env), layers, strict=True):
                for name, enc in attrs.items():
                    setattr(layer, name, _decode(getattr(layer, name, None), enc))
                _mark_checked(layer)
        self._obs[:] = obs
        self._returns[:] = returns
        self._lengths[:] = lengths

    def _checked(
        self, state: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[list[dict[str, Any]]]]:
        """``state``'s observations, returns, lengths and per-env layer attributes, checked."""
        n = self.num_envs
        if not isinstance(state, dict) or not isinstance(state.get("envs"), list):
            raise ValueError("env_state must be an object with an 'envs' list")
        if len(state["envs"]) != n:
            raise ValueError(
                f"env_state.envs holds {len(state['envs'])} envs, this run has {n} (env.num_envs)"
            )
        obs = _numbers(state.get("obs"), (n, *self.observation_shape), np.float32, "env_state.obs")
        returns = _numbers(state.get("returns"), (n,), np.float64, "env_state.returns")
        lengths = _numbers(state.get("lengths"), (n,), np.int64, "env_state.lengths")
        if (lengths < 0).any():
            raise ValueError("env_state.lengths must be >= 0")
        reference = gym.make(self._spec_id, **self._kwargs)
        try:
            reference.reset(seed=0)
            ref_layers = _layers(reference)
            decoded = [
                _check_snapshot(ref_layers, snap, f"env_state.envs[{i}]")
                for i, snap in enumerate(state["envs"])
            ]
        finally:
            reference.close()
        return obs, returns, lengths, decoded


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


# Bookkeeping of gymnasium's order-enforcing and passive-checker wrappers. It is not restored
# but set as "reset and checked": the writer's envs had been reset and stepped, and the
# checker's data-reuse check needs the first observation object of the process that made it
# (a checkpoint before the second env step left it pending, and the resumed step then crashed).
_AS_RESET = {"_has_reset": True, "checked_reset": True, "checked_step": True}
_AS_CHECKED = {"checked_data_reuse": True, "_previous_data": None}


def _mark_checked(layer: Any) -> None:
    attrs = vars(layer)
    for name, value in (_AS_RESET | _AS_CHECKED).items():
        if name in attrs:
            setattr(layer, name, value)


def _numbers(value: Any, shape: tuple[int, ...], dtype: Any, where: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{where} must hold numbers") from None
    if arr.shape != shape:
        raise ValueError(f"{where} must have shape {list(shape)}, got {list(arr.shape)}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"{where} must be finite")
    return arr


_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


def _check_snapshot(ref_layers: list[Any], snap: Any, where: str) -> list[dict[str, Any]]:
    """Validate one env's snapshot against a reset reference env: the same wrapper stack,
    attribute names the reference has (never a method, property or dunder), each value of the
    kind and type the reference holds there. Returns the snapshot."""
    if not isinstance(snap, list) or len(snap) != len(ref_layers):
        raise ValueError(f"{where} must list {len(ref_layers)} wrapper layers")
    for k, (ref, attrs) in enumerate(zip(ref_layers, snap, strict=True)):
        if not isinstance(attrs, dict):
            raise ValueError(f"{where}[{k}] must be an object")
        for name, enc in attrs.items():
            path = f"{where}[{k}].{name}"
            if name in _AS_RESET or name in _AS_CHECKED:
                continue  # bookkeeping, set by _mark_checked whatever was saved
            if name not in vars(ref) or name.startswith("__"):
                raise ValueError(f"{path} is not a state attribute of a {type(ref).__name__}")
            _check_encoding(vars(ref)[name], enc, path)
        expected = {
            name
            for name, value in vars(ref).items()
            if name not in ("env", "spec", "metadata", "render_mode")
            and name not in _AS_RESET
            and name not in _AS_CHECKED
            and _encode(value) is not None
        }
        missing = sorted(expected - set(attrs))
        if missing:  # left as a fresh, never-reset env would have it: the next step crashes
            raise ValueError(f"{where}[{k}] lacks {', '.join(missing)}")
    return snap


_KINDS = ("v", "a", "l", "rng")


def _check_encoding(current: Any, enc: Any, path: str) -> None:
    """``enc`` must be what ``_encode`` makes of a value like ``current`` (the reference's)."""
    kinds = [k for k in _KINDS if isinstance(enc, dict) and k in enc]
    if len(kinds) != 1:
        raise ValueError(f"{path} must be an encoded value")
    kind, ref = kinds[0], _encode(current)
    if ref is None or (kind not in ref and not (kind == "v" and current is None)):
        raise ValueError(f"{path} holds the wrong kind of value")
    if kind == "v":
        value = enc["v"]
        if current is not None and value is None:  # a counter the env would add to
            raise ValueError(f"{path} must be a {type(ref['v']).__name__}, not null")
        if current is None:  # None-or-number slots (e.g. CartPole's steps_beyond_terminated)
            if value is not None and type(value) not in (bool, int, float):
                raise ValueError(f"{path} must be a number or null")
        elif type(value) is not type(ref["v"]) and not (
            type(ref["v"]) is float and type(value) is int
        ):
            raise ValueError(f"{path} must be a {type(ref['v']).__name__}")
    elif kind == "a":
        try:
            dtype = np.dtype(enc.get("dtype"))
            shape = [int(d) for d in enc.get("shape")]
            np.asarray(enc["a"], dtype=dtype).reshape(shape)
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"{path} is not a valid array") from None
        # the same kind of number, at any width: a stepped env may hold float64 where a fresh
        # one holds float32 (Acrobot's state after its first integration step); it is
        # restored with the width it was saved with
        if dtype.kind != current.dtype.kind or shape != list(current.shape):
            kind_names = {"b": "boolean", "i": "integer", "u": "unsigned", "f": "float"}
            kind_name = kind_names.get(current.dtype.kind, str(current.dtype))
            raise ValueError(f"{path} must be a {kind_name} array of shape {list(current.shape)}")
    elif kind == "l":
        items = enc["l"]
        if not isinstance(items, list) or len(items) != len(current):
            raise ValueError(f"{path} must be a list of {len(current)} values")
        if any(
            a is not None and b is not None and type(a) is not type(b)
            for a, b in zip(items, current, strict=True)
        ):
            raise ValueError(f"{path} must hold values of the reference's types")
        if not isinstance(enc.get("tuple"), bool):
            raise ValueError(f"{path}.tuple must be true or false")
    else:
        rng = enc["rng"]
        if not isinstance(rng, dict) or rng.get("bit_generator") not in _BIT_GENERATORS:
            raise ValueError(f"{path} is not a numpy bit-generator state")
        probe = getattr(np.random, rng["bit_generator"])()
        try:
            probe.state = rng
        except (TypeError, ValueError, KeyError, OverflowError):
            raise ValueError(f"{path} is not a valid {rng['bit_generator']} state") from None
