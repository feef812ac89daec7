"""Choosing the torch device of a run (`train.device`)."""

from __future__ import annotations

import torch

from adaptive_loop.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when available, else the CPU; an explicit CUDA request without CUDA is an error.

    The one place a device is chosen: training, evaluation, tracing and scoring all go
    through it (via `train.device`), so one config runs on a GPU machine and on a laptop.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"train.device={name!r} but CUDA is not available on this machine (use 'auto' or 'cpu')")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"train.device={name!r} is not a valid device (use 'auto', 'cpu', 'cuda' or 'cuda:<i>')") from None
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(
            f"train.device={name!r} but only {torch.cuda.device_count()} CUDA device(s) are visible "
            f"(use 'cuda' or an index below {torch.cuda.device_count()})"
        )
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"train.device={name!r}: only 'auto', 'cpu', 'cuda' and 'cuda:<i>' are supported")
    return device
