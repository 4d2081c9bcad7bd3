"""Which run an input is: a run counts once, however it is given (issue 34).

The same folder twice, a population root and one of its members, a run dir and its newest
checkpoint folder, a relative and an absolute path, a symlink: inputs are compared by the
resolved real path of their run dir. The study (:mod:`agent.probes.detection`) and the
aggregate (:mod:`agent.results.aggregate`) drop repeats and name them in one note; two
*different* checkpoints of one run are refused (one training seed, not two).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..core.errors import ConfigError
from .checkpoint import STATE_FILE, is_step_name, resolve_checkpoint


def run_identity(path: Path) -> Path:
    """The real path of the run an input belongs to: a saved file itself, a checkpoint folder
    its run dir (``RUN/checkpoints/<step>`` → ``RUN``), a run or member dir itself."""
    real = path.resolve()
    checkpoint = real.is_dir() and ((real / STATE_FILE).is_file() or is_step_name(real.name))
    return real.parent.parent if checkpoint and real.parent.name == "checkpoints" else real


def unique_runs(inputs: Sequence[tuple[Path, str]], notes: list[str] | None = None) -> list[Path]:
    """The paths of ``inputs`` (path, the argument it came from) with every run kept once
    (first occurrence, order kept); the repeats dropped are named in one line appended to
    ``notes``. Two different checkpoints of one run raise ConfigError."""
    kept: dict[Path, tuple[Path, str]] = {}
    dropped: list[str] = []
    for path, given in inputs:
        run = run_identity(path)
        if run not in kept:
            kept[run] = (path, given)
            continue
        first, first_given = kept[run]
        if not _same_checkpoint(first, path):
            raise ConfigError(
                f"{first} and {path} are two checkpoints of one run ({run}): a run is one "
                "training seed; give one of them"
            )
        dropped.append(f"{path} from '{given}' (already counted from '{first_given}')")
    if dropped and notes is not None:
        notes.append(
            f"dropped {len(dropped)} repeated input(s), each run counts once: {'; '.join(dropped)}"
        )
    return [path for path, _ in kept.values()]


def _same_checkpoint(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve() or a.is_file():
        return True
    return resolve_checkpoint(a).resolve() == resolve_checkpoint(b).resolve()
