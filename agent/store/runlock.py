"""One writer per run dir: an exclusive ``flock`` on ``RUN_DIR/.lock``.

Two trainers in one run dir would interleave their checkpoints silently. The kernel releases a
``flock`` when its holder exits, however it exits (``kill -9`` included), so a lock can never be
left held by a dead process on a local file system; the file itself stays and records the
holder (pid, host) for the refusal message. A file left by a dead holder is a *stale* record:
it is noticed, said once, and overwritten. On network file systems without working ``flock``
the lock degrades to a no-op, which is said once too.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from ..core.errors import RunDirLocked

log = logging.getLogger("agent")

LOCK_FILE = ".lock"


def _holder(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            text = f.read(128).decode("ascii", errors="replace").strip()
    except OSError:
        return "another process"
    return text or "another process"


@contextlib.contextmanager
def run_dir_lock(run_dir: str | Path) -> Iterator[None]:
    """Hold the run dir's lock for the duration of the block, or raise RunDirLocked."""
    path = Path(run_dir) / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunDirLocked(
                f"run dir '{run_dir}' is in use by {_holder(path)}; wait for it to finish, "
                "stop it, or choose another hydra.run.dir"
            ) from None
        except OSError as err:  # e.g. ENOLCK on a network file system without locks
            log.warning(
                "cannot lock run dir %s (%s); not guarding against a second writer",
                run_dir,
                err.strerror,
            )
        else:
            stale = _holder(path) if os.fstat(fd).st_size else None
            if stale:
                log.info("run dir lock: previous holder (%s) has exited; taking over", stale)
        record = f"pid {os.getpid()} on {socket.gethostname()}\n".encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, record, 0)
        yield
        os.ftruncate(fd, 0)  # an empty record: cleanly released, nothing stale to report
    finally:
        os.close(fd)  # releases the flock
