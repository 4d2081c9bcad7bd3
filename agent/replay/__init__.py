"""Replay buffers on the chosen device: vectors, and uint8 frames stored once."""
