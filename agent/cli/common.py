"""What every entry point shares: where the Hydra configs are, one-line errors, group checks.

``scripts/_cli.py`` re-exports these, so ``python scripts/X.py`` and the console scripts
(``dopa-*``) behave the same."""

from __future__ import annotations

import copy
import difflib
import os
import sys
from collections.abc import Callable, Iterable
from functools import wraps
from pathlib import Path
from typing import Any, cast

PACKAGE_DIR = Path(__file__).resolve().parents[1]


def conf_dir() -> Path:
    """The Hydra config folder: ``agent/conf`` inside an installed wheel (pyproject maps the
    top-level ``conf/`` there), else the checkout's ``conf/`` (a source tree or an editable
    install)."""
    packaged = PACKAGE_DIR / "conf"
    if (packaged / "config.yaml").is_file():
        return packaged
    return PACKAGE_DIR.parent / "conf"


CONF_DIR = conf_dir()
GROUPS = ("agent", "env", "experiment")  # user-facing groups (schema/*, tuned are internal)


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def check_group_choices(argv: list[str]) -> None:
    """Fail early, in one line, on `agent=typo` or `env=typo` (Hydra's own message spans lines)."""
    for arg in argv[1:]:
        key, sep, value = arg.partition("=")
        key = key.lstrip("+~")
        if not sep or key not in GROUPS:
            continue
        options = group_options(key)
        for choice in value.split(","):
            if choice and choice not in options:
                print(
                    f"error: unknown {key} '{choice}'; expected one of {', '.join(options)}",
                    file=sys.stderr,
                )
                sys.exit(2)


def one_line_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Print a UserError (exit 2) or a divergence (exit 1) as one line, without a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from agent.core.errors import TrainingDiverged, UserError

        try:
            return fn(*args, **kwargs)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        except TrainingDiverged as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(1)

    return wrapper


def wants_help(argv: list[str]) -> bool:
    return any(a in ("-h", "--help") for a in argv)


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def _schema_keys(node: Any, prefix: str = "") -> tuple[set[str], set[str]]:
    """Every dotted key of a structured config, and the dict-typed ones (free-form below)."""
    from omegaconf import DictConfig

    keys: set[str] = set()
    free: set[str] = set()
    for key in node.keys() if isinstance(node, DictConfig) else []:
        path = f"{prefix}{cast(str, key)}"  # structured-config keys are strings
        keys.add(path)
        child = node._get_node(key)
        if isinstance(child, DictConfig):
            if child._metadata.object_type in (None, dict):  # a plain dict (env.kwargs)
                free.add(path)
            sub_keys, sub_free = _schema_keys(child, f"{path}.")
            keys |= sub_keys
            free |= sub_free
    return keys, free


def chosen_agent(argv: list[str]) -> str:
    """The agent a training command line composes: ``agent=`` if given, else the one its
    ``experiment=`` preset overrides to, else the default of conf/config.yaml."""
    import re

    def default_agent(path: Path) -> str | None:
        found = re.search(r"^\s*-\s*(?:override\s+)?/?agent:\s*(\w+)", path.read_text(), re.M)
        return found.group(1) if found else None

    given = {}
    for arg in argv[1:]:
        key, sep, value = arg.partition("=")
        if sep and key.lstrip("+~") in ("agent", "experiment"):
            given[key.lstrip("+~")] = value.split(",")[0]
    if "agent" in given:
        return given["agent"]
    preset = CONF_DIR / "experiment" / f"{given.get('experiment', '')}.yaml"
    if "experiment" in given and preset.is_file() and default_agent(preset):
        return str(default_agent(preset))
    return default_agent(CONF_DIR / "config.yaml") or "qrdqn"


def run_schema(argv: list[str]) -> Any:
    """The run config schema with the chosen agent's own keys (``agent/algos/<name>.py``)."""
    from omegaconf import OmegaConf

    from agent import algos
    from agent.core.config import Config

    schema = OmegaConf.structured(Config)
    schema.agent = OmegaConf.structured(algos.config_class(chosen_agent(argv)))
    return schema


def config_groups() -> list[str]:
    """Config group names (folders of conf/: agent, env, experiment, tuned, hydra…)."""
    return sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir())


def check_override_keys(argv: list[str], schema: Any, groups: Iterable[str] = ()) -> None:
    """Fail in one line (exit 2, with a "did you mean") on an override of a key the schema does
    not have, with or without ``+``: Hydra adds a ``+key`` silently, so a typo there would
    otherwise be ignored, and its own message for a plain typo suggests adding the ``+``."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        overrides = OverridesParser.create().parse_overrides(
            [a for a in argv[1:] if not a.startswith("-")]
        )
    except Exception:  # malformed syntax: Hydra's own parser reports it
        return
    from omegaconf import DictConfig, OmegaConf

    if not isinstance(schema, DictConfig):
        schema = OmegaConf.structured(schema)
    typed = copy.deepcopy(schema)  # values are tried on a copy: the caller's stays as it was
    keys, free = _schema_keys(typed)
    groups = set(groups)
    for override in overrides:
        key = override.key_or_group
        if key.split(".")[0].split("/")[0] == "hydra" or key in groups or "/" in key:
            continue
        if any(key.startswith(f"{f}.") for f in free):
            continue
        if key in keys:
            _check_value(typed, key, override)
            continue
        close = difflib.get_close_matches(key, sorted(keys), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        fail(f"unknown config key '{key}'{hint}")


def _check_value(typed: Any, key: str, override: Any) -> None:
    """Fail in one line when an override's value does not fit its key's type (Hydra's own
    message is five lines and exits 1). Sweeps, deletions and interpolations are Hydra's."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if override.is_sweep_override() or override.is_delete():
        return
    value = override.value()
    if "${" in str(value):
        return
    try:
        OmegaConf.update(typed, key, value, merge=True)
    except OmegaConfBaseException as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        fail(f"{key}={override.get_value_element_as_str()}: {reason}")


def check_run_dir_creatable(argv: list[str]) -> None:
    """The run dir must be creatable: Hydra itself makes it (with a traceback when a parent is a
    regular file or cannot be written) before the training code can say anything. Checked for
    ``hydra.run.dir=X`` / ``hydra.sweep.dir=X`` and, when the command does not give the one it
    uses, for the default's root (``runs/``, or ``multirun/`` with ``-m``; conf/config.yaml): a
    ``runs/`` mounted into a container from a host folder owned by another uid is the usual case."""
    multirun = any(a in ("-m", "--multirun") for a in argv[1:])
    used = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    given: dict[str, str] = {}
    for arg in argv[1:]:
        key, sep, value = arg.partition("=")
        if sep and key.lstrip("+") in ("hydra.run.dir", "hydra.sweep.dir"):
            given[key.lstrip("+")] = value
    checks = [(f"{key}='{value}'", value) for key, value in given.items()]
    if used not in given:
        default_root = "multirun" if multirun else "runs"
        checks.append((f"the run dir (default under '{default_root}/')", default_root))
    for what, value in checks:
        path = Path(value).expanduser().absolute()
        existing = path
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            fail(f"{what} lies under '{existing}', which is a file, not a folder")
        if not os.access(existing, os.W_OK | os.X_OK):
            owner = existing.stat().st_uid
            fail(
                f"{what}: cannot write in '{existing}' (owned by uid {owner}, this process runs"
                f" as uid {os.getuid()}); give a writable hydra.run.dir= or run as its owner"
            )
