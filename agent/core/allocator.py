"""Keep freed tensor memory in the process on Linux (glibc), so an update does not page-fault.

A CPU update allocates and frees the same few hundred KB–MB of tensors every step (a QR-DQN
CartPole update: [256, 25, 25] pairwise terms of 640 KB each). glibc's malloc serves blocks
above its mmap threshold (128 KB at start, raised on the fly) with fresh ``mmap`` pages, and
hands the top of the heap back to the kernel whenever more than twice that threshold is free
there; either way the next update touches new pages, each a page fault and a zeroed page.
Measured on a 2-core AMD EPYC VM (docs/benchmarks.md): 200–460 page faults per QR-DQN CartPole
update, a count that varies 10× between identical processes, and one-thread updates 13–21 %
slower than with the memory kept (at two threads the spread between processes hides it).
``keep_freed_memory`` fixes both thresholds once per process (``mallopt``): blocks under
``MMAP_THRESHOLD`` come from the heap, and the heap keeps up to ``TRIM_THRESHOLD`` of free
memory at its top instead of returning it. Larger blocks (replay buffers, Atari frame stacks)
are still mapped and unmapped as before.

Where glibc's own ``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_`` (or ``MALLOC_TOP_PAD_``)
are set, the user chose: nothing is changed. Elsewhere (macOS, musl, Windows) this does nothing.
"""

from __future__ import annotations

import ctypes
import os
import sys

# mallopt parameter numbers (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 32 << 20  # glibc's own ceiling for its dynamic threshold (64-bit)
TRIM_THRESHOLD = 64 << 20  # free heap kept at most: a CartPole or MinAtar update frees < 10 MB
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")

_done: bool | None = None


def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds (once per process); True where they are set now
    (by this call or an earlier one), False where the platform or the user's settings rule it
    out."""
    global _done
    if _done is not None:
        return _done
    _done = False
    if not sys.platform.startswith("linux") or any(k in os.environ for k in USER_SETTINGS):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    if not hasattr(libc, "gnu_get_libc_version"):  # musl's mallopt does nothing
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success
    _done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
    return _done
