"""The tidy cell table: one row per trial with `cell`, `magnitude`, `response` (+ `cued`, `trial`).

`load_cell_table` reads a CSV or Parquet table, or a folder (or single file) of Uchida-lab
`.mat` recordings, and `validate_table` checks it; both raise `DataError` with one clear line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..core.errors import DataError

REQUIRED_COLUMNS = ("cell", "magnitude", "response")
OPTIONAL_COLUMNS = ("cued", "trial", "baseline")  # baseline: pre-stimulus rate

#: The committed table derived from the 40 recorded cells (see scripts/make_cell_table.py).
PACKAGED_TABLE = Path(__file__).with_name("dabney2020_variable_magnitude.csv")
#: Data sets shipped with the package, by the name a command line may give instead of a path.
NAMED_TABLES = {"dabney2020": PACKAGED_TABLE}


#: Largest |value| of a number column: squares and sums of squares of thousands of trials stay
#: finite in float64 (1e300-scaled responses overflowed into the reported numbers).
MAX_ABS_VALUE = 1e100
#: Trials a cell needs at each of its magnitudes: the split-half analysis puts at least one in
#: each half; with one trial a "split-half r" and a reversal point are noise read as signal.
MIN_TRIALS_PER_MAGNITUDE = 2
#: Cells a population analysis needs (a τ–reversal-point correlation of fewer is meaningless).
MIN_CELLS = 3


def screen_cells(
    table: pd.DataFrame, source: str = "cell table", min_trials: int = MIN_TRIALS_PER_MAGNITUDE
) -> tuple[pd.DataFrame, list[dict[str, str]]]:
    """Keep the cells that can support the analysis: recorded at two magnitudes or more, with at
    least ``min_trials`` trials at each. Returns the kept rows and, for every dropped cell,
    why; raises DataError when fewer than MIN_CELLS cells remain."""
    counts = table.groupby(["cell", "magnitude"], sort=False).size()
    dropped: list[dict[str, str]] = []
    bad: set[object] = set()
    for cell, per_magnitude in counts.groupby(level=0, sort=False):
        few = per_magnitude[per_magnitude < min_trials]
        if len(per_magnitude) < 2:
            why = f"recorded at {len(per_magnitude)} magnitude(s); a reversal point needs two"
        elif len(few):
            magnitude = few.index[0][1]
            why = (
                f"{int(few.iloc[0])} trial(s) at magnitude {magnitude:g}; needs >= {min_trials} "
                "at each magnitude for split halves"
            )
        else:
            continue
        bad.add(cell)
        dropped.append({"cell": str(cell), "why": why})
    kept = table[~table["cell"].isin(bad)] if bad else table
    remaining = kept["cell"].nunique()
    if remaining < MIN_CELLS:
        example = f" (e.g. cell {dropped[0]['cell']}: {dropped[0]['why']})" if dropped else ""
        raise DataError(
            f"{source}: {remaining} cell(s) can support the analysis, it needs >= {MIN_CELLS}; "
            f"{len(dropped)} dropped{example}"
        )
    return kept.reset_index(drop=True), dropped


def resolve_table(name_or_path: str | Path) -> Path:
    """A shipped data set's name (``dabney2020``) → its file; anything else is a path."""
    return NAMED_TABLES.get(str(name_or_path), Path(name_or_path))


def _numeric(table: pd.DataFrame, column: str, source: str) -> pd.Series:
    values = pd.to_numeric(table[column], errors="coerce")
    bad = ~np.isfinite(values.to_numpy(dtype=float))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{source}: column '{column}' must be finite numbers; row {row} holds "
            f"{table[column].iloc[row]!r}"
        )
    return values.astype(float)


def validate_table(table: pd.DataFrame, source: str = "cell table") -> pd.DataFrame:
    """Check a tidy cell table and return a clean copy (numeric columns as float, bool `cued`)."""
    if not isinstance(table, pd.DataFrame):
        raise DataError(f"{source}: expected a pandas DataFrame, got {type(table).__name__}")
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(
            f"{source}: missing column(s) {', '.join(missing)} "
            f"(need {', '.join(REQUIRED_COLUMNS)}; optional {', '.join(OPTIONAL_COLUMNS)})"
        )
    if len(table) == 0:
        raise DataError(f"{source}: the table has no rows")
    out = table.copy()
    out["magnitude"] = _numeric(out, "magnitude", source)
    out["response"] = _numeric(out, "response", source)
    cell = out["cell"]
    blank = cell.isna() | (cell.astype(str).str.strip() == "")
    if blank.any():
        raise DataError(f"{source}: row {int(np.flatnonzero(blank)[0])} has an empty cell id")
    if isinstance(cell.dtype, pd.CategoricalDtype):
        # A category with no rows is a declared cell without trials.
        empty = sorted(set(cell.cat.categories) - set(cell.unique()), key=str)
        if empty:
            raise DataError(f"{source}: cell {empty[0]!r} has no trials")
        out["cell"] = cell.astype(object)
    if "cued" in out.columns and out["cued"].dtype != bool:
        # CSV round trips give strings or 0/1; accept the usual spellings, nothing else.
        truth = {"true": True, "1": True, "1.0": True, "false": False, "0": False, "0.0": False}
        mapped = out["cued"].astype(str).str.strip().str.lower().map(truth)
        if mapped.isna().any():
            row = int(np.flatnonzero(mapped.isna())[0])
            raise DataError(
                f"{source}: column 'cued' must be true/false; row {row} holds "
                f"{out['cued'].iloc[row]!r}"
            )
        out["cued"] = mapped.astype(bool)
    if "baseline" in out.columns:
        out["baseline"] = _numeric(out, "baseline", source)
    if "trial" in out.columns:
        out["trial"] = _numeric(out, "trial", source).astype(int)
    for column in ("magnitude", "response", *(["baseline"] if "baseline" in out.columns else [])):
        largest = float(out[column].abs().max())
        if largest > MAX_ABS_VALUE:
            raise DataError(
                f"{source}: column '{column}' reaches {largest:.3g}, beyond the {MAX_ABS_VALUE:g} "
                "the analysis computes with in float64 without overflow; rescale it (spikes/s, µl)"
            )
    n_mag = out["magnitude"].nunique()
    if n_mag < 2:
        raise DataError(
            f"{source}: need at least two reward magnitudes to find reversal points, found {n_mag}"
        )
    return out


def load_cell_table(path: str | Path) -> pd.DataFrame:
    """Read and validate a tidy cell table: .csv, .parquet, a .mat file, a folder of .mat, or a
    shipped data set by name (``dabney2020``)."""
    path = resolve_table(path)
    if not path.exists():
        known = ", ".join(NAMED_TABLES)
        raise DataError(f"cell table not found: {path} (shipped data sets by name: {known})")
    if path.is_dir():
        from .uchida import import_folder

        return validate_table(import_folder(path), str(path))
    suffix = path.suffix.lower()
    if suffix == ".mat":
        from .uchida import import_file

        return validate_table(import_file(path), str(path))
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    if suffix in (".parquet", ".pq"):
        try:
            table = pd.read_parquet(path)
        except ImportError as exc:
            raise DataError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from exc
        except Exception as exc:  # pyarrow raises its own types for corrupt files
            raise DataError(f"{path}: not a readable Parquet file ({exc})") from exc
    elif suffix in (".csv", ".txt", ".tsv"):
        try:
            table = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
        except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: not a readable CSV table ({exc})") from exc
    else:
        raise DataError(f"{path}: unknown table format '{suffix}' (expected .csv, .parquet, .mat)")
    return validate_table(table, str(path))
