"""Device choice (``device=auto|cpu|cuda|cuda:N``)."""

from __future__ import annotations

import torch

from agent.errors import ConfigError


def resolve_device(choice: str) -> torch.device:
    """``auto`` picks CUDA when present; a CUDA device that is not there is a ConfigError."""
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(choice)
    except RuntimeError:
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got '{choice}'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={choice} but CUDA is not available here; use device=auto or cpu")
    return device
