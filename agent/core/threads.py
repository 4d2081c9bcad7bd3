"""How many torch threads a run may use without slowing itself and its neighbours down.

Small networks on a shared machine: a second intra-op thread that has no free core to run on
makes every update wait for it (measured 2–20× slower on a busy 2-core machine,
``docs/benchmarks.md``). So ``torch_threads=0`` (auto, the default) takes the CPUs this process
may run on (its affinity mask, SLURM's ``SLURM_CPUS_PER_TASK``) and never more than one thread
per core that the load average leaves free; it warns once when no core looks free.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass

log = logging.getLogger("agent")

_warned = False
IDLE_LOAD = 0.3  # load per core that still counts as idle


@dataclass(frozen=True)
class ThreadChoice:
    threads: int
    cpus: int  # CPUs this process may use
    load: float | None  # 1-minute load average (None where the OS has none)
    reason: str

    @property
    def oversubscribed(self) -> bool:
        return self.load is not None and self.load >= self.cpus


def allowed_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by SLURM's CPUs per task."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS and Windows have no affinity mask
        cpus = os.cpu_count() or 1
    slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if slurm.isdigit() and int(slurm) > 0:
        cpus = min(cpus, int(slurm))
    return max(cpus, 1)


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def choose_threads(
    requested: int = 0,
    *,
    deterministic: bool = False,
    cpus: int | None = None,
    load: float | None = None,
) -> ThreadChoice:
    """``requested`` > 0 is used as given; 0 picks one thread per free allowed core (at least
    one), or exactly one with ``deterministic``: a count that followed the load could differ
    between a run and its resume, and CPU reductions split over threads round differently.
    ``cpus`` and ``load`` default to this machine's (arguments for tests)."""
    cpus = allowed_cpus() if cpus is None else cpus
    load = load_average() if load is None else load
    if requested > 0:
        return ThreadChoice(requested, cpus, load, "torch_threads as configured")
    if deterministic:
        return ThreadChoice(1, cpus, load, "deterministic=true: one thread, whatever the load")
    if load is None:
        return ThreadChoice(cpus, cpus, None, f"{cpus} allowed CPUs")
    # The load average counts other processes' runnable threads; the cores they leave free are
    # ours. floor: a half-free core is not a core a thread can have to itself; IDLE_LOAD
    # forgives the background daemons of an otherwise idle machine.
    free = math.floor(cpus - load + IDLE_LOAD)
    threads = max(1, min(cpus, free))
    return ThreadChoice(threads, cpus, load, f"{cpus} allowed CPUs, load {load:.1f}")


def configure_torch_threads(requested: int = 0, *, deterministic: bool = False) -> ThreadChoice:
    """Set ``torch.set_num_threads`` from :func:`choose_threads`; warn once per process when
    the machine looks oversubscribed (load average at or above the allowed CPUs)."""
    import torch

    global _warned
    choice = choose_threads(requested, deterministic=deterministic)
    torch.set_num_threads(choice.threads)
    if choice.oversubscribed and not _warned:
        _warned = True
        log.warning(
            "machine looks oversubscribed (load %.1f on %d allowed CPUs): using %d torch "
            "thread(s); timings will be slower than on an idle machine",
            choice.load,
            choice.cpus,
            choice.threads,
        )
    else:
        log.info("torch threads: %d (%s)", choice.threads, choice.reason)
    return choice
