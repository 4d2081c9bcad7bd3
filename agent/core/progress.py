"""Progress bars for the commands that take more than a few seconds (sweeps, studies,
aggregation, evaluation): tqdm on stderr, shown on a terminal and silent when stderr is a file
or a pipe (``disable=None``), cleared when done so the results print on a clean console."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(
    items: Iterable[T], desc: str, total: int | None = None, unit: str = "it"
) -> Iterator[T]:
    """``items`` with a progress bar named ``desc``."""
    yield from tqdm(
        items, desc=desc, total=total, unit=unit, disable=None, leave=False, dynamic_ncols=True
    )
