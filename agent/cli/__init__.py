"""Console scripts (``dopa-train``, ``dopa-evaluate``, ``dopa-probe``, ``dopa-aggregate``) and
the command-line logic that ``scripts/*.py`` share with them. Each module here is a thin layer
over the library: parse, call, print."""

# imported first by every command: the CPU meter's first window (the free cores that pick the
# torch threads, agent/core/threads.py) opens at the process's start, so start-up is measured
from ..core import threads as _threads  # noqa: F401, E402
