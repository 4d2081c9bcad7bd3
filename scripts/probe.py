"""Dopamine-cell probe of a trained agent or of recorded cells → probe.json and figures.

    python scripts/probe.py checkpoint=RUN_DIR [baseline=OTHER_RUN_DIR] [out=DIR] ...
    python scripts/probe.py data=dabney2020|PATH [out=DIR] ...

`--help` lists every key. The logic is `dopa_rl.cli.probe` (also the `dopa-probe` console
script)."""

import sys

from dopa_rl.cli.probe import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
