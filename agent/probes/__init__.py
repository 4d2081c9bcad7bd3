"""Probes: treat units (or recorded neurons) as dopamine cells and run the paper's analysis."""
