"""How much memory this process may still take: the smaller of the kernel's ``MemAvailable``
and the room left under its cgroup's limit (a container's or a SLURM job's ``--mem``).

``agent.learn.resources`` compares a run's estimated memory with this before allocating; the
CPUs come from ``agent.core.threads.allowed_cpus``."""

from __future__ import annotations

from pathlib import Path

GIB = 1 << 30


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max" (cgroup v2): no limit


def mem_available() -> int | None:
    """``MemAvailable`` of /proc/meminfo in bytes (Linux), else None."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_dirs() -> list[tuple[Path, str, str]]:
    """(folder, limit file, usage file) of this process's memory cgroup, v2 then v1."""
    found: list[tuple[Path, str, str]] = []
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, rel = parts
        rel = rel.lstrip("/")
        if controllers == "":  # cgroup v2 unified hierarchy
            found.append((Path("/sys/fs/cgroup") / rel, "memory.max", "memory.current"))
        elif "memory" in controllers.split(","):
            base = Path("/sys/fs/cgroup/memory")
            found.append((base / rel, "memory.limit_in_bytes", "memory.usage_in_bytes"))
            found.append((base, "memory.limit_in_bytes", "memory.usage_in_bytes"))
    return found


def cgroup_room() -> int | None:
    """Bytes left under this process's cgroup memory limit (None: no limit found). A limit
    of v1's "unlimited" (close to 2**63) counts as none."""
    for folder, limit_name, usage_name in _cgroup_dirs():
        limit = _read_int(folder / limit_name)
        if limit is None or limit >= 1 << 60:
            continue
        usage = _read_int(folder / usage_name) or 0
        return max(limit - usage, 0)
    return None


def memory_room() -> tuple[int | None, str]:
    """The memory this process may still allocate and where that figure comes from."""
    options = []
    available = mem_available()
    if available is not None:
        options.append((available, "MemAvailable"))
    room = cgroup_room()
    if room is not None:
        options.append((room, "the cgroup limit's room"))
    if not options:
        return None, "unknown"
    return min(options)


def gib(n: float) -> str:
    """Bytes as GiB for a message: '0.004 GiB', '23.6 GiB', '1.1e+06 GiB'."""
    value = n / GIB
    if value >= 1e5:
        return f"{value:.2g} GiB"
    return f"{value:.3g} GiB"
