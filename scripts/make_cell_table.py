"""Regenerate agent/data/dabney2020_variable_magnitude.csv from the 40 recorded-cell files.

Usage: python scripts/make_cell_table.py [RAW_FOLDER] [OUT_CSV]
(defaults: ../shared/data/dabney2020/variable_magnitude beside the checkout, and the packaged
table). Responses are pooled as the authors did (every uncued response shifted by one
population-wide constant, docs/science.md §3) and rounded to 4 decimals; ``baseline`` is each
trial's pre-stimulus rate (spikes/s).
"""

from __future__ import annotations

import sys
from pathlib import Path

from dopa_rl.core.errors import UserError
from dopa_rl.data.tidy import PACKAGED_TABLE
from dopa_rl.data.uchida import import_folder

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RAW = ROOT.parent / "shared" / "data" / "dabney2020" / "variable_magnitude"
COLUMNS = ["cell", "magnitude", "cued", "trial", "response", "baseline"]


def main(argv: list[str]) -> int:
    raw = Path(argv[0]) if argv else DEFAULT_RAW
    out = Path(argv[1]) if len(argv) > 1 else PACKAGED_TABLE
    try:
        table = import_folder(raw)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    shift = table.attrs.get("uncued_shift", 0.0)
    table = table[COLUMNS].assign(
        response=table["response"].round(4), baseline=table["baseline"].round(4)
    )
    table.to_csv(out, index=False)
    print(
        f"wrote {len(table)} trials of {table['cell'].nunique()} cells to {out} "
        f"(uncued responses shifted by one population constant, {shift:+.4f} spikes/s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
