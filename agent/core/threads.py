"""How many torch threads a run may use without slowing itself and its neighbours down.

Small networks on a shared machine: a second intra-op thread that has no free core to run on
makes every update wait for it (measured 2–20× slower on a busy 2-core machine,
``docs/benchmarks.md``), while on an idle machine it makes a CartPole update 1.3–1.6× faster.
So ``torch_threads=0`` (auto, the default) takes the CPUs this process may run on (its affinity
mask, SLURM's ``SLURM_CPUS_PER_TASK``) and never more than one thread per core the others leave
free, measured where Linux allows: the busy time of those CPUs in ``/proc/stat`` minus this
process's own, over the seconds since start-up (:class:`CpuMeter`); elsewhere the 1-minute load
average, which lags: a neighbour that stopped a few seconds ago still counts there. Training
measures again as it goes (:func:`follow_free_cores`) and moves between 1 and N threads when the
others come or go. It warns once when no core looks free.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass

from .allocator import keep_freed_memory

log = logging.getLogger("agent")

_warned = False
IDLE_LOAD = 0.3  # load per core that still counts as idle


@dataclass(frozen=True)
class ThreadChoice:
    threads: int
    cpus: int  # CPUs this process may use
    load: float | None  # 1-minute load average (None where the OS has none)
    reason: str
    free: float | None = None  # cores the other processes left free, measured (CpuMeter)

    @property
    def oversubscribed(self) -> bool:
        """No core left to this process: the others fill every allowed CPU (measured), or the
        load average reaches them (where nothing was measured)."""
        if self.free is not None:
            return self.free + IDLE_LOAD < 1
        return self.load is not None and self.load >= self.cpus


@dataclass(frozen=True)
class CpuSample:
    at: float  # time.monotonic()
    cpus: int  # CPUs read
    busy_s: float  # CPU seconds this process's CPUs were busy, every process together
    own_s: float  # this process's CPU seconds, all its threads


def cpu_sample() -> CpuSample | None:
    """Busy time of the CPUs this process may run on, from ``/proc/stat`` (None without it:
    macOS, Windows). Busy is user + nice + system + irq + softirq + steal (a hypervisor's
    stolen time is a core we do not get)."""
    try:
        with open("/proc/stat") as f:
            lines = f.read().splitlines()
        allowed: set[int] | None = os.sched_getaffinity(0)
    except (OSError, AttributeError):
        return None
    ticks, cpus = 0, 0
    for line in lines:
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or not name[3:].isdigit():
            continue
        if allowed is not None and int(name[3:]) not in allowed:
            continue
        v = [int(x) for x in rest.split()[:8]]
        ticks += v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
        cpus += 1
    own = os.times()
    busy_s = ticks / os.sysconf("SC_CLK_TCK")
    return CpuSample(time.monotonic(), cpus, busy_s, own.user + own.system) if cpus else None


class CpuMeter:
    """How many of this process's CPUs other processes left free since the last reading: the
    CPUs, less their busy seconds minus this process's own over the elapsed seconds. The first
    window
    opens when this module is imported, so a training run's start-up (imports, config, env)
    is its measurement and costs no extra wait."""

    MIN_WINDOW_S = 0.25  # a shorter window holds too few 10 ms clock ticks
    MAX_AGE_S = 30.0  # an older first reading says little about now: take a fresh window

    def __init__(self) -> None:
        self.last = cpu_sample()

    def free_cores(self, max_age_s: float = MAX_AGE_S) -> float | None:
        now = cpu_sample()
        if now is None:
            return None
        if self.last is None or now.at - self.last.at > max_age_s:
            self.last = now
        if now.at - self.last.at < self.MIN_WINDOW_S:
            time.sleep(self.MIN_WINDOW_S - (now.at - self.last.at))
            now = cpu_sample()
            assert now is not None
        before, self.last = self.last, now
        others = (now.busy_s - before.busy_s) - (now.own_s - before.own_s)
        return now.cpus - max(0.0, others / (now.at - before.at))


METER = CpuMeter()


def threads_for(cpus: int, free: float) -> int:
    """One thread per free core, at least one and at most ``cpus``. floor: a half-free core is
    not a core a thread can have to itself; IDLE_LOAD forgives an idle machine's daemons."""
    return max(1, min(cpus, math.floor(free + IDLE_LOAD)))


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
    free: float | None = None,
) -> ThreadChoice:
    """``requested`` > 0 is used as given; 0 picks one thread per free allowed core (at least
    one), or exactly one with ``deterministic``: a count that followed the load could differ
    between a run and its resume, and CPU reductions split over threads round differently.
    ``cpus``, ``load`` and ``free`` (cores the others leave free) default to this machine's
    (arguments for tests; given a ``load`` and no ``free``, nothing is measured)."""
    measure = load is None and free is None
    cpus = allowed_cpus() if cpus is None else cpus
    load = load_average() if load is None else load
    if requested > 0:
        return ThreadChoice(requested, cpus, load, "torch_threads as configured")
    if deterministic:
        return ThreadChoice(1, cpus, load, "deterministic=true: one thread, whatever the load")
    if measure:
        free = METER.free_cores()
    if free is not None:
        reason = f"{cpus} allowed CPUs, {free:.1f} cores left free by other processes"
        return ThreadChoice(threads_for(cpus, free), cpus, load, reason, free)
    if load is None:
        return ThreadChoice(cpus, cpus, None, f"{cpus} allowed CPUs")
    # the load average counts other processes' runnable threads (and this one's)
    reason = f"{cpus} allowed CPUs, load {load:.1f}"
    return ThreadChoice(threads_for(cpus, cpus - load), cpus, load, reason)


def configure_torch_threads(
    requested: int = 0, *, deterministic: bool = False, warn: bool = True
) -> ThreadChoice:
    """Set ``torch.set_num_threads`` from :func:`choose_threads`; warn once per process when
    the machine looks oversubscribed (load average at or above the allowed CPUs), or, with
    ``warn=False``, keep the warning for :func:`warn_if_oversubscribed` (the trainer's, once
    its start-up checks passed: the note never precedes an error line). Every entry point
    passes here, so it also keeps freed tensor memory in the process
    (:func:`agent.core.allocator.keep_freed_memory`)."""
    import torch

    global _pending
    keep_freed_memory()
    choice = choose_threads(requested, deterministic=deterministic)
    torch.set_num_threads(choice.threads)
    _pending = choice
    if warn:
        warn_if_oversubscribed()
    return choice


_pending: ThreadChoice | None = None  # the last choice, not yet reported


def warn_if_oversubscribed() -> None:
    """Report the last thread choice (once per process: a warning when oversubscribed)."""
    global _warned, _pending
    choice, _pending = _pending, None
    if choice is None:
        return
    if choice.oversubscribed and not _warned:
        _warned = True
        log.warning(
            "machine looks oversubscribed (%s): using %d torch thread(s); timings will be "
            "slower than on an idle machine",
            choice.reason,
            choice.threads,
        )
    else:
        log.info("torch threads: %d (%s)", choice.threads, choice.reason)


class FreeCoreFollower:
    """Moves a training run's torch threads with the free cores while it runs: every
    ``every_s`` seconds the cores the others left free since the last look (:data:`METER`)
    give the count (:func:`threads_for`). Only for ``torch_threads=0`` without
    ``deterministic``, and only where the cores can be measured."""

    def __init__(self, requested: int, deterministic: bool, every_s: float = 5.0) -> None:
        self.active = requested == 0 and not deterministic and METER.last is not None
        self.every_s = every_s
        self.due = time.monotonic() + every_s

    def __call__(self) -> None:
        if not self.active or time.monotonic() < self.due:
            return
        import torch

        self.due = time.monotonic() + self.every_s
        free = METER.free_cores(max_age_s=math.inf)
        if free is None:
            return
        threads = threads_for(allowed_cpus(), free)
        if threads != torch.get_num_threads():
            log.info(
                "torch threads: %d → %d (%.1f cores left free by other processes)",
                torch.get_num_threads(),
                threads,
                free,
            )
            torch.set_num_threads(threads)
