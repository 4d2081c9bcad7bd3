"""Shared helpers for the thin entry points (the logic lives in ``agent.cli.common``, which the
console scripts use too)."""

from __future__ import annotations

from agent.cli.common import (  # noqa: F401  (re-exported for scripts/*.py)
    CONF_DIR,
    check_group_choices,
    one_line_errors,
    wants_help,
)
