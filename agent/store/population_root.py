"""The root folder of a ``train.population=S`` run: its members and its summary across them.

A population root holds ``member_<k>_s<seed>/`` folders (each an ordinary run dir),
``population.json`` and a ``summary.json`` across the members. That ``summary.json`` says
``"population": S`` and names ``member_dirs``: tools that count runs (aggregate) read the
members instead of the root, so every member counts once; tools that open one run (evaluate,
probe) take each member in turn or say which members there are.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import ConfigError
from ..core.files import open_regular

POPULATION_JSON = "population.json"
SUMMARY_JSON = "summary.json"
MEMBER_DIR = re.compile(r"^member_(\d+)_s(-?\d+)$")


def _read(path: Path) -> dict[str, Any] | None:
    try:
        # a FIFO in place of the file would block a plain open(): read regular files only
        with open_regular(path) as f:
            data = json.load(f)
    except (OSError, ValueError):  # UserError is a ValueError
        return None
    return data if isinstance(data, dict) else None


def _listed_members(root: Path) -> list[str] | None:
    """The member folder names ``population.json`` (or the root ``summary.json``) lists."""
    for name in (POPULATION_JSON, SUMMARY_JSON):
        listed = (_read(root / name) or {}).get("member_dirs")
        if isinstance(listed, list) and listed and all(isinstance(d, str) for d in listed):
            return [d for d in listed if Path(d).name == d]
    return None


def population_members(path: str | Path) -> list[Path]:
    """The member folders of a population root, in member order; [] for anything else.

    ``population.json`` (or the root ``summary.json``) names them; a population that was
    stopped before writing either is recognised by its ``member_<k>_s<seed>`` folders. A
    listed member whose folder is gone is left out: :func:`missing_members` names those."""
    root = Path(path)
    if not root.is_dir():
        return []
    listed = _listed_members(root)
    if listed is not None:
        return [root / d for d in listed if (root / d).is_dir()]
    found = [p for p in root.iterdir() if p.is_dir() and MEMBER_DIR.match(p.name)]
    return sorted(found, key=lambda p: int(MEMBER_DIR.match(p.name).group(1)))  # type: ignore[union-attr]


def missing_members(path: str | Path) -> list[str]:
    """The members a population root lists whose folders are gone (deleted or moved): tools
    that count members refuse such a population rather than count the rest silently."""
    root = Path(path)
    listed = _listed_members(root) if root.is_dir() else None
    return [d for d in listed or [] if not (root / d).is_dir()]


def complete_members(path: str | Path) -> list[Path]:
    """:func:`population_members`, refused (``ConfigError``) when a listed member's folder is
    gone: a median or a study over the rest would be counted short without a word. The
    members that are there can still be given one by one."""
    gone = missing_members(path)
    if gone:
        raise ConfigError(
            f"population '{path}' lists member {gone[0]}, whose folder is missing"
            + (f" (and {len(gone) - 1} more)" if len(gone) > 1 else "")
            + "; give the members that are there one by one to use them without it"
        )
    return population_members(path)


def is_population_summary(summary: dict[str, Any]) -> bool:
    """A root summary across members (not one run's): aggregate counts its members instead."""
    return isinstance(summary.get("member_dirs"), list)


def root_summary(
    algo: str, env_id: str, seeds: list[int], member_dirs: list[str], members: list[dict[str, Any]]
) -> dict[str, Any]:
    """The population's ``summary.json``: the members' headline numbers side by side, their
    median final evaluation return and the spread (min, max) over members.

    Medians, not the best member: a population is S draws of the same training procedure."""
    returns = [m.get("eval_return_mean") for m in members]
    finite = [float(r) for r in returns if isinstance(r, int | float) and math.isfinite(r)]
    solved = [m.get("solved_at_env_step") for m in members]
    return {
        "algo": algo,
        "env_id": env_id,
        "population": len(seeds),
        "seeds": seeds,
        "member_dirs": member_dirs,
        "env_steps": max((int(m.get("env_steps", 0)) for m in members), default=0),
        "wall_s": max((float(m.get("wall_s", 0.0)) for m in members), default=0.0),
        "eval_return_median": float(np.median(finite)) if finite else math.nan,
        "eval_return_min": min(finite) if finite else math.nan,
        "eval_return_max": max(finite) if finite else math.nan,
        "eval_return_mean": float(np.mean(finite)) if finite else math.nan,
        "eval_returns": returns,
        # the population is solved when its last member is
        "solved_at_env_step": None
        if not solved or any(s is None for s in solved)
        else max(int(s) for s in solved if s is not None),
    }


def write_root_summary(root: Path, summary: dict[str, Any]) -> Path:
    """Write the root ``summary.json`` (see :func:`root_summary`)."""
    path = root / SUMMARY_JSON
    with open(path, "w") as f:
        json.dump(summary, f, indent=1)
    return path


def members_hint(path: str | Path, limit: int = 4) -> str:
    """A sentence naming a population root's members, for error messages ('' if none)."""
    members = population_members(path)
    if not members:
        return ""
    shown = ", ".join(m.name for m in members[:limit]) + (", …" if len(members) > limit else "")
    return f"; '{path}' is a population of {len(members)} members ({shown}): give one of them"
