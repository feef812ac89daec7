"""Checks that a run can train as configured, made before it spends an epoch.

- An AUC monitor needs both classes in the validation split: with one class the AUC is
  undefined, and training on would pick the "best" epoch by NaN (`check_monitor_defined`;
  the trainer also applies it to every epoch's predictions, which covers streamed splits).
- Batch norm cannot train on a one-row batch: a batch size that leaves one row at the end
  of every epoch is refused (`check_batch_norm_batches`).
"""

from __future__ import annotations

import numpy as np
from torch import nn

from adaptive_loop.config import TrainConfig
from adaptive_loop.errors import ConfigError, DataError
from adaptive_loop.training.early_stopping import Monitor
from adaptive_loop.training.per_depth import undefined_auc_reason


def check_monitor_defined(labels: np.ndarray, monitor: Monitor, monitor_text: str, split: str) -> None:
    """Raise `DataError` when `monitor` is an AUC and `labels` hold a single class (AUC is then undefined).

    A logloss monitor stays defined, so it is the suggested way out when such a split is intended.
    """
    if monitor.metric != "auc":
        return
    reason = undefined_auc_reason(labels)
    if reason is None:
        return
    raise DataError(
        f"the {split} split has {reason}: AUC is undefined, so train.monitor={monitor_text!r} cannot pick the best "
        f"epoch; use a {split} split with both classes, or monitor logloss (train.monitor=logloss@L)"
    )


def check_batch_norm_batches(model: nn.Module, train_rows: int, config: TrainConfig) -> None:
    """Raise `ConfigError` when `model` has batch norm and the last training batch of an epoch would hold 1 row."""
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return
    size = config.batch_size
    reaches_last_batch = config.max_steps_per_epoch == 0 or config.max_steps_per_epoch * size >= train_rows
    if train_rows % size == 1 and reaches_last_batch:
        raise ConfigError(
            f"model.batch_norm is on and the {train_rows:,} training rows leave a last batch of 1 row with "
            f"train.batch_size={size}; batch norm cannot train on one row: choose another batch size"
        )
