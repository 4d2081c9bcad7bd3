"""Dopamine-cell probes of every member of a population run (the same as
``dopa-probe population=RUN``; ``--help`` lists every key).

    python scripts/probe_population.py run=POPULATION_DIR [baseline=POPULATION_DIR] [out=DIR]
                                       [trials=N] [noise=X] [splits=N] [seed=N] [device=cpu]
"""

import sys

from dopa_rl.cli.probe import main

if __name__ == "__main__":
    # run= is this script's older name for population=
    argv = ["population" + a[3:] if a.startswith("run=") else a for a in sys.argv[1:]]
    sys.exit(main(argv))
