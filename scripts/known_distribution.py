"""The known-distribution control: c and offset of tabular TD, trained agents and their
Monte-Carlo controls at every state of dopa/KnownChain-v0 against its exact return
distribution (issue 36 item 2).

    python scripts/known_distribution.py runs=RUN[,RUN...] out=DIR [tabular_seeds=3]

`--help` lists every key. The logic is `dopa_rl.cli.known_distribution`."""

import sys

from dopa_rl.cli.known_distribution import main

if __name__ == "__main__":
    sys.exit(main())
