"""Aggregate finished runs: `python scripts/aggregate.py runs=DIR [DIR...] [out=FILE]`.

Final scores (median, mean, IQM with bootstrap CIs; training-time or post-hoc, never mixed)
and learning curves across seeds. `--help` lists the keys. The logic is `dopa_rl.cli.aggregate`
(also the `dopa-aggregate` console script); the library is `dopa_rl.results.aggregate`.
"""

from __future__ import annotations

import sys

from dopa_rl.cli.aggregate import main  # noqa: F401  (tests import main from here)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
