"""The algorithm registry: every module in this package that defines ``ALGORITHM`` is an agent.

Adding an agent is one Python file here (its config, head, rule function and probe read-out;
see :mod:`agent.algos.base`) plus one YAML in ``conf/agent/``. ``register`` also takes an
algorithm defined elsewhere (a plugin, or a test). An unknown name raises ``ConfigError``:
nothing falls back to another algorithm.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import torch
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from ..core import config as config_module
from ..core.config import AgentConfig, Config, EnvConfig, suggest, typed_env
from ..core.errors import ConfigError
from .base import Algorithm, UnitReadout

__all__ = [
    "Algorithm",
    "UnitReadout",
    "config_class",
    "from_container",
    "get",
    "make",
    "make_config",
    "names",
    "register",
    "register_configs",
    "validate",
]

_REGISTRY: dict[str, type[Algorithm]] = {}


def register(algorithm: type[Algorithm]) -> type[Algorithm]:
    """Add an algorithm (usable as a class decorator); its config joins Hydra's store."""
    if not issubclass(algorithm.config_class, AgentConfig):
        raise TypeError(f"{algorithm.__name__}.config_class must extend AgentConfig")
    _REGISTRY[algorithm.name] = algorithm
    _store_config(algorithm)
    return algorithm


def _discover() -> None:
    for module in pkgutil.iter_modules(__path__):
        if module.name == "base":
            continue
        algorithm = getattr(importlib.import_module(f"{__name__}.{module.name}"), "ALGORITHM", None)
        if algorithm is not None:
            register(algorithm)


def names() -> tuple[str, ...]:
    """Registered agent names, in registration order."""
    return tuple(_REGISTRY)


def get(name: str) -> type[Algorithm]:
    """The algorithm called ``name``; ``ConfigError`` (with a suggestion) if there is none."""
    try:
        return _REGISTRY[name]
    except KeyError:
        hint = suggest(name, names())
        raise ConfigError(
            f"unknown agent '{name}'{hint}; expected one of {', '.join(names())}"
        ) from None


def make(agent_cfg: Any, device: torch.device | str) -> Algorithm:
    """An instance of the config's algorithm for ``device``."""
    return get(agent_cfg.name)(agent_cfg, torch.device(device))


def config_class(name: str) -> type[AgentConfig]:
    return get(name).config_class


def make_config(name: str, **fields: Any) -> Any:
    """A typed agent config (plain dataclass) for ``name`` with ``fields`` overridden."""
    return config_class(name)(**fields)


def validate(cfg: Config | DictConfig) -> None:
    """Check a whole run config: the agent's name and keys, then everything shared."""
    algorithm = get(cfg.agent.name)
    config_module.validate(cfg)
    algorithm.validate(cfg.agent)


def from_container(data: dict[str, Any]) -> DictConfig:
    """Rebuild a typed config (schema-checked against its agent's keys) from a saved dict."""
    agent = data.get("agent") if isinstance(data, dict) else None
    name = agent.get("name") if isinstance(agent, dict) else None
    if not isinstance(name, str):
        raise ConfigError("saved config has no agent.name")
    schema = OmegaConf.structured(Config)
    try:
        schema.agent = OmegaConf.structured(config_class(name))
        # the env's family schema; configs saved before there was one per family recorded
        # every family's keys, and those that do not apply are dropped
        schema.env = typed_env(data.get("env", {}), saved=True)
        data = {k: v for k, v in data.items() if k != "env"}
        merged = OmegaConf.merge(schema, data)
    except ConfigError:
        raise
    except Exception as err:  # omegaconf raises several error types
        raise ConfigError(
            f"saved config does not match the schema: {err}".splitlines()[0]
        ) from None
    return merged  # type: ignore[return-value]


def _store_config(algorithm: type[Algorithm]) -> None:
    # outside the `agent` group, so that `agent=` lists only the YAML choices; each
    # conf/agent/<name>.yaml starts from its schema with `defaults: [/schema/agent/<name>@_here_]`
    ConfigStore.instance().store(
        group="schema/agent", name=algorithm.name, node=algorithm.config_class
    )


def register_configs() -> None:
    """Register the run schema and every agent's schema in Hydra's ConfigStore
    (``schema/agent/<name>``); the env families' schemas come with the families
    (:func:`agent.envs.register_configs` registers both)."""
    store = ConfigStore.instance()
    store.store(name="base_config", node=Config)
    store.store(group="schema/env", name="base", node=EnvConfig)
    for algorithm in _REGISTRY.values():
        _store_config(algorithm)


_discover()
