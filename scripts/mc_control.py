"""The supervised Monte-Carlo control of a trained agent (issue 36 item 2).

    python scripts/mc_control.py checkpoint=RUN out=DIR [episodes=100] [epochs=30] ...

`--help` lists every key. The logic is `dopa_rl.cli.mc_control` (agent/learn/mc_control.py)."""

import sys

from dopa_rl.cli.mc_control import main

if __name__ == "__main__":
    sys.exit(main())
