"""Across runs: aggregate scores and curves, the demo study."""
