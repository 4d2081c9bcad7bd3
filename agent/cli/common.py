"""What every entry point shares: where the Hydra configs are, one-line errors, group checks.

``scripts/_cli.py`` re-exports these, so ``python scripts/X.py`` and the console scripts
(``dopa-*``) behave the same."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

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
        from agent.errors import TrainingDiverged, UserError

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
