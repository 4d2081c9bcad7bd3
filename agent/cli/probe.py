"""``dopa-probe``: the dopamine-cell probes (``python scripts/probe.py`` in a checkout); the
command line itself is ``agent.probes.cli``."""

from __future__ import annotations

import sys

from agent.cli.common import wants_help
from agent.probes import cli


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if wants_help(argv):
        print(str(cli.__doc__).strip())
        return 0
    return int(cli.main(argv) or 0)


def entry() -> None:
    sys.exit(main())
