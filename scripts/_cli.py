"""Shared helpers for the thin entry points: one-line errors, group-choice checks."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def check_group_choices(argv: list[str]) -> None:
    """Fail early, in one line, on `agent=typo` or `env=typo` (Hydra's own message spans lines)."""
    for arg in argv[1:]:
        key, sep, value = arg.partition("=")
        key = key.lstrip("+~")
        if not sep or key not in ("agent", "env", "experiment"):
            continue
        options = sorted(p.stem for p in (CONF_DIR / key).glob("*.yaml"))
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
