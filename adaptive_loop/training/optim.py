"""The optimiser a run trains with (`train.lr`, `train.weight_decay`).

One function so that every trainer (single process, DDP, model tuning) builds the same one.
"""

from __future__ import annotations

from typing import Iterable

import torch

from adaptive_loop.config import TrainConfig


def build_optimizer(parameters: Iterable[torch.nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW over `parameters` (the model's and, when enabled, the joint halting head's)."""
    return torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
