"""Device choice (``device=auto|cpu|cuda|cuda:N``), math backends and deterministic mode."""

from __future__ import annotations

import os
import sys
from typing import Any

import torch

from .config import PRECISIONS
from .errors import ConfigError


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


def configure_backends(device: torch.device, precision: str, deterministic: bool) -> str:
    """Set the process-wide math backends for training on ``device``; returns the precision
    used (``auto``: ``tf32`` on CUDA, ``fp32`` on the CPU).

    On CUDA: TF32 matmuls and convolutions unless ``fp32`` (the H200 benchmark's setting;
    about 1e-3 relative error in products, far below the noise of the updates), and
    ``cudnn.benchmark`` (fastest convolution per shape) unless ``deterministic``. ``bf16``
    also runs the torso under bfloat16 autocast (``Learner.use_bf16_torso``). The CPU path is
    untouched by ``auto``/``fp32``."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got '{precision}'")
    if precision == "auto":
        precision = "tf32" if device.type == "cuda" else "fp32"
    if device.type == "cuda":
        tf32 = precision != "fp32"
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cudnn.benchmark = not deterministic
    return precision


def use_deterministic_algorithms() -> None:
    """What ``torch.use_deterministic_algorithms(True)`` sets, without its import of
    TorchInductor's config, which loads ``torch._dynamo``: about 2.5 s of CPU at the start of
    every ``deterministic=true`` run (torch 2.13, 2-core VM), most runs never compiling.

    The same two switches: the kernels' flag (the C++ call torch makes), and Inductor's
    ``deterministic`` flag, set on its config when already imported, else through
    ``TORCHINDUCTOR_DETERMINISTIC``, which that config reads when it is first imported (a
    later ``torch.compile``)."""
    torch._C._set_deterministic_algorithms(True)
    inductor_config: Any = sys.modules.get("torch._inductor.config")  # a ConfigModule
    if inductor_config is not None:
        inductor_config.deterministic = True
    else:
        os.environ["TORCHINDUCTOR_DETERMINISTIC"] = "1"
