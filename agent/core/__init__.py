"""The lowest layer: config schema, errors, device and thread choice."""
