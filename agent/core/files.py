"""Opening run files only when they are regular files.

A FIFO, a device or a socket in place of ``evals.csv`` or ``summary.json`` makes ``open()``
block until a writer appears, with SIGTERM deferred; a folder makes it fail with an OS error
that names no key. Every reader of a run's own files goes through :func:`open_regular`, which
opens with ``O_NONBLOCK`` (so a FIFO never blocks), checks the opened descriptor with ``fstat``
(no race between the check and the open) and raises one :class:`UserError` line otherwise.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import IO, Any

from .errors import UserError


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def is_regular(path: str | os.PathLike[str]) -> bool:
    """True where ``path`` exists and is a regular file (symlinks followed); never blocks."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def open_regular(path: str | os.PathLike[str], mode: str = "r", **kwargs: Any) -> IO[Any]:
    """``open(path, mode)`` for a regular file; one ``UserError`` line for anything else.

    ``mode`` is a read or append/write mode of ``open``; a missing file raises
    ``FileNotFoundError`` as ``open`` does (callers decide whether that is an error).
    """
    path = Path(path)
    flags = os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if "+" in mode or mode.startswith(("w", "a", "x")):
        flags |= os.O_RDWR if "+" in mode or mode.startswith("r") else os.O_WRONLY
        if mode.startswith("w"):
            flags |= os.O_CREAT | os.O_TRUNC
        elif mode.startswith("a"):
            flags |= os.O_CREAT | os.O_APPEND
        elif mode.startswith("x"):
            flags |= os.O_CREAT | os.O_EXCL
    else:
        flags |= os.O_RDONLY
    try:
        fd = os.open(path, flags, 0o666)
    except IsADirectoryError:
        raise UserError(f"'{path}' is a folder, expected a regular file") from None
    except OSError as exc:
        if exc.errno is not None and exc.errno == getattr(os, "ENXIO", -1):
            # a FIFO opened for writing with no reader: not a regular file either
            raise UserError(f"'{path}' is a FIFO, expected a regular file") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UserError(f"'{path}' is {_kind(st.st_mode)}, expected a regular file")
        # back to blocking I/O: a regular file never blocks, and buffered writers expect it
        os.set_blocking(fd, True)
        return open(fd, mode, closefd=True, **kwargs)
    except BaseException:
        os.close(fd)
        raise


def read_text_regular(path: str | os.PathLike[str], encoding: str = "utf-8") -> str:
    """``Path(path).read_text()`` for a regular file only (see :func:`open_regular`)."""
    with open_regular(path, "r", encoding=encoding) as f:
        return str(f.read())
