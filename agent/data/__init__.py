"""Recorded-cell data: the tidy cell table and the Uchida-lab importer."""

from .tidy import (
    NAMED_TABLES,
    PACKAGED_TABLE,
    load_cell_table,
    resolve_table,
    validate_table,
)
from .uchida import import_file, import_folder

__all__ = [
    "NAMED_TABLES",
    "PACKAGED_TABLE",
    "import_file",
    "import_folder",
    "load_cell_table",
    "resolve_table",
    "validate_table",
]
