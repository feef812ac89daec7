"""What training produced: one record per epoch (`history.json`) and the run's outcome."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class EpochRecord:
    """What one epoch did: losses on train, per-depth metrics on validation."""

    epoch: int
    train_loss: float
    train_bce: float
    train_aux: float
    valid_auc: list[float]
    valid_logloss: list[float]
    monitor: float
    seconds: float
    samples_per_second: float
    steps: int
    lr: float = float("nan")  # learning rate used during the epoch (before any plateau cut after it)
    train_penalty: float = 0.0  # mean explicit L2 penalty per step (train.embedding_l2 / dense_l2)


@dataclass
class TrainResult:
    """Outcome of `train`."""

    run_dir: Path
    best_epoch: int
    best_monitor: float
    monitor: str
    history: list[EpochRecord] = field(default_factory=list)
    stopped_early: bool = False
