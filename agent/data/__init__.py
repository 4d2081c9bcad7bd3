"""Recorded-cell data: the tidy cell table and the Uchida-lab importer."""

from agent.data.tidy import PACKAGED_TABLE, load_cell_table, validate_table
from agent.data.uchida import import_file, import_folder

__all__ = ["PACKAGED_TABLE", "import_file", "import_folder", "load_cell_table", "validate_table"]
