"""Training depth models: the trainer loop and everything it is made of.

    trainer.py        `Trainer` (epochs, validation, DDP, streaming) and `train(config, run_dir)`
    losses.py         process supervision: BCE at every depth 0..L (optionally weighted) plus the MoE balance term
    optim.py          the optimiser (Adam / AdamW), explicit embedding / dense L2 penalties, LR cut on plateau
    oov_dropout.py    training-time OOV replacement of chosen fields' ids (`train.oov_dropout`)
    early_stopping.py the validation monitor (`train.monitor`) behind early stopping
    preflight.py      checks before the first epoch (AUC monitor on a single-class split, batch norm on 1 row)
    checkpoints.py    run-directory files, checkpoint format, what a resume must match
    history.py        `EpochRecord` (history.json) and `TrainResult`
    device.py         `resolve_device` (`train.device`: auto, cpu, cuda)
    joint_halting.py  the ACT halting head trained with the model (`train.halting`)
    per_depth.py      predictions and metrics at every depth (validation, evaluation, traces)
    model_tuning.py   Optuna tuning of L, width, learning rate and aux weight

Example::

    from adaptive_loop.config import load_config, resolve_config
    from adaptive_loop.training import train

    result = train(load_config(resolve_config("tiny")), "runs/tiny")
    print(result.best_epoch, result.best_monitor)
"""

from adaptive_loop.training.checkpoints import load_model_state
from adaptive_loop.training.device import resolve_device
from adaptive_loop.training.early_stopping import Monitor
from adaptive_loop.training.history import EpochRecord, TrainResult
from adaptive_loop.training.losses import process_supervised_loss, sharded_process_supervised_loss
from adaptive_loop.training.per_depth import DepthMetrics, format_depth_table, per_depth_metrics, predict_depths
from adaptive_loop.training.trainer import Trainer, train

__all__ = [
    "DepthMetrics",
    "EpochRecord",
    "Monitor",
    "TrainResult",
    "Trainer",
    "format_depth_table",
    "load_model_state",
    "per_depth_metrics",
    "predict_depths",
    "process_supervised_loss",
    "resolve_device",
    "sharded_process_supervised_loss",
    "train",
]
