"""What a run keeps on disk: checkpoint format and schema, restore, run-dir lock."""
