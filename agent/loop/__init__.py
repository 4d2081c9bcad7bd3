"""The training loop and its side jobs (hooks), logging."""
