"""Process-supervised training of depth models, with early stopping and resumable checkpoints.

The loss is the paper's process supervision: the mean BCE over depths 0..L plus the
weighted auxiliary (MoE load-balancing) loss. Supervising depth 0 is what makes zero-loop
inference work; supervising every depth is what lets one set of weights answer at any
depth, which the oracle and controllers then exploit.

Reproducibility: the seed fixes initialisation (`torch.manual_seed` before the model is
built), the batch order (a generator seeded with (seed, epoch)) and dropout (torch's RNG
state, saved in every checkpoint). A run resumed from its last checkpoint therefore
continues exactly as an uninterrupted one; a run killed mid-epoch restarts that epoch
from its beginning and ends with the same weights.

Several processes: started by `torchrun`, training runs DistributedDataParallel (gloo on
CPU, NCCL on CUDA; see `adaptive_loop.distributed`). Each rank trains on its slice of every
global batch, the loss is scaled so that DDP's gradient average is the gradient of the
global batch mean, the MoE balance statistics are summed over ranks, validation
predictions are sharded and gathered, and only rank 0 writes files. The result equals
single-process training up to floating-point summation order.

Streaming: when the data is a `StreamingData` (parquet files read row group by row group,
`adaptive_loop.data.streaming`), each rank streams its own row groups, so training data
never has to fit in memory.

Run directory layout (all files written atomically):
    config.yaml         the resolved run config
    spec.json           the encoded feature layout the model was built for
    encoder.json        fitted encoders (reused to score new data)
    checkpoints/last.pt after every epoch (model, optimiser, RNG, history)
    checkpoints/best.pt at the best validation monitor so far
    history.json        per-epoch losses and validation metrics
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from adaptive_loop import distributed as dist_utils
from adaptive_loop.config import RunConfig, config_to_yaml
from adaptive_loop.data.batch import Batch, EncodedData
from adaptive_loop.data.pipeline import PreparedData
from adaptive_loop.data.streaming import ParquetSplit, StreamingData
from adaptive_loop.distributed import SINGLE, DistContext, ShardedBatchSampler
from adaptive_loop.errors import CheckpointError, ConfigError, DataError
from adaptive_loop.evaluation import per_depth_metrics, predict_depths
from adaptive_loop.io import load_checkpoint, remove_stale_temporaries, save_checkpoint, write_json, write_text
from adaptive_loop.model.factory import build_model
from adaptive_loop.model.moe import global_router_statistics
from adaptive_loop.augment import OOVDropout
from adaptive_loop.optim import PlateauSchedule, build_optimizer, current_lr, l2_penalty, split_parameters

CHECKPOINT_FORMAT = 1


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


@dataclass(frozen=True)
class Monitor:
    """A parsed `train.monitor` string."""

    metric: str  # "auc" or "logloss"
    depth: int | None  # None = mean over depths 0..L
    maximise: bool

    @classmethod
    def parse(cls, text: str, train_loops: int) -> "Monitor":
        """Parse 'auc@L', 'auc@<k>', 'mean_auc' or the same with logloss.

        Raises `ConfigError` for anything else or for k deeper than `train_loops`.
        """
        match = re.fullmatch(r"(auc|logloss)@(L|\d+)|mean_(auc|logloss)", text.strip())
        if not match:
            raise ConfigError(
                f"train.monitor {text!r} is not one of 'auc@L', 'auc@<k>', 'mean_auc', 'logloss@L', 'logloss@<k>', 'mean_logloss'"
            )
        if match.group(3):
            metric, depth = match.group(3), None
        else:
            metric = match.group(1)
            depth = train_loops if match.group(2) == "L" else int(match.group(2))
            if depth > train_loops:
                raise ConfigError(f"train.monitor {text!r} asks for depth {depth}, deeper than the {train_loops} trained loops")
        return cls(metric=metric, depth=depth, maximise=metric == "auc")

    def value(self, aucs: list[float], loglosses: list[float]) -> float:
        """The monitored number from per-depth validation AUCs and loglosses (one depth, or their mean)."""
        values = aucs if self.metric == "auc" else loglosses
        return float(np.mean(values)) if self.depth is None else float(values[self.depth])

    def improved(self, new: float, best: float, min_delta: float) -> bool:
        """Whether `new` beats `best` by more than `min_delta` (True while `best` is NaN)."""
        if math.isnan(best):
            return True
        return new > best + min_delta if self.maximise else new < best - min_delta


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


def process_supervised_loss(
    logits: torch.Tensor, labels: torch.Tensor, aux_loss: torch.Tensor, aux_weight: float,
    depth_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(total loss, BCE over depths): 1/(L+1) sum_l BCE(logit_l, y) + aux_weight * aux.

    With `depth_weights` [L+1] (`train.depth_loss_weights`) the BCE is the weighted mean
    sum_l w_l BCE_l / sum_l w_l instead of the uniform one.
    """
    target = labels.unsqueeze(1).expand_as(logits)
    if depth_weights is None:
        bce = F.binary_cross_entropy_with_logits(logits, target)
    else:
        per_depth = F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean(dim=0)
        bce = (per_depth * depth_weights).sum() / depth_weights.sum()
    return bce + aux_weight * aux_loss, bce


def sharded_process_supervised_loss(
    logits: torch.Tensor, labels: torch.Tensor, aux_loss: torch.Tensor, aux_weight: float,
    global_rows: int, world_size: int, depth_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss one DDP rank backpropagates, and its summed per-row BCE (for logging).

    A rank holds n_r of the N rows of the global batch. Its BCE sum is scaled by W / N, so
    that DDP's gradient average (1/W) sum_r equals the gradient of the global mean BCE
    whatever the shard sizes (an empty shard contributes 0). `aux_loss` is already the
    global batch's balance loss (see `global_router_statistics`).
    """
    target = labels.unsqueeze(1).expand_as(logits)
    if depth_weights is None:
        bce_sum = F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / logits.shape[1]
    else:
        per_depth = F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(dim=0)
        bce_sum = (per_depth * depth_weights).sum() / depth_weights.sum()
    return bce_sum * (world_size / max(global_rows, 1)) + aux_weight * aux_loss, bce_sum


class Trainer:
    """Trains one model on prepared (in-memory) or streamed data into a run directory.

    `dist` and `device` come from `train()`, which joins the torchrun process group; the
    defaults are a single process on the configured device.
    """

    def __init__(self, config: RunConfig, data: PreparedData | StreamingData, run_dir: str | Path,
                 progress: bool | None = None, dist: DistContext = SINGLE, device: torch.device | None = None,
                 epoch_callbacks: list[Callable[[int, "EpochRecord"], None]] | None = None):
        self.config = config
        self.data = data
        self.run_dir = Path(run_dir)
        self.dist = dist
        self.progress = (config.train.progress if progress is None else progress) and dist.is_main
        self.device = resolve_device(config.train.device) if device is None else device
        self.monitor = Monitor.parse(config.train.monitor, config.model.train_loops)
        torch.set_num_threads(max(1, config.train.num_threads))
        torch.manual_seed(config.seed)
        self.model = build_model(config.model, data.spec).to(self.device)
        self.net: torch.nn.Module = self.model  # what the training forward runs (DDP-wrapped when distributed)
        if dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            self.net = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        # --- hooks: joint ACT halting head (train.halting, adaptive_loop.halting) and per-epoch callbacks
        #     (called as callback(epoch, record) after each epoch's checkpoint; Optuna pruning uses them) ---
        from adaptive_loop.halting import build_joint_halting

        if config.train.halting.enabled and dist.enabled:
            raise ConfigError("train.halting.enabled runs in a single process only (the head is not synchronised across ranks)")
        self.halting = build_joint_halting(config.train.halting, self.model, self.device)
        self.epoch_callbacks = list(epoch_callbacks or [])
        head_params = self.halting.parameters() if self.halting is not None else []
        # --- end hooks ---
        # --- hooks: training recipe (adaptive_loop.optim): optimiser, explicit L2 penalties, LR schedule ---
        cfg = config.train
        self.optimizer = build_optimizer(cfg.optimizer, list(self.model.parameters()) + head_params, cfg.lr, cfg.weight_decay)
        self.param_split = split_parameters(self.model)
        self.schedule = PlateauSchedule(cfg.lr_schedule, cfg.lr_factor, cfg.min_lr)
        self.depth_weights = self._depth_weights()
        self.oov_dropout = OOVDropout(cfg.oov_dropout, data.spec)
        self._check_batch_norm_batches()
        # --- end hooks ---
        self.history: list[EpochRecord] = []
        self.best_monitor = float("nan")
        self.best_epoch = -1
        self.bad_epochs = 0
        self.start_epoch = 0

    # ----------------------------------------------------------------- paths
    @property
    def last_checkpoint(self) -> Path:
        return self.run_dir / "checkpoints" / "last.pt"

    @property
    def best_checkpoint(self) -> Path:
        return self.run_dir / "checkpoints" / "best.pt"

    # ----------------------------------------------------------------- main loop
    def fit(self, resume: bool = False) -> TrainResult:
        """Train until `epochs` or early stopping; with `resume`, continue from `last.pt`."""
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            # a killed run may leave temporaries of atomic writes behind; the real files are intact
            remove_stale_temporaries(self.run_dir)
            remove_stale_temporaries(self.last_checkpoint.parent)
        if resume and self.last_checkpoint.exists():
            self._restore(load_checkpoint(self.last_checkpoint))
        elif self.dist.is_main:
            self._write_run_files()
        stopped_early = False
        epochs = self.config.train.epochs
        if self.bad_epochs >= self.config.train.patience:
            return self._result(stopped_early=True)
        self._check_monitor_defined()
        for epoch in range(self.start_epoch, epochs):
            record = self._run_epoch(epoch)
            self.history.append(record)
            improved = self.monitor.improved(record.monitor, self.best_monitor, self.config.train.min_delta)
            if improved:
                self.best_monitor, self.best_epoch, self.bad_epochs = record.monitor, epoch, 0
            else:
                self.bad_epochs += 1
            self.schedule.after_epoch(self.optimizer, improved)  # hook: LR cut on plateau (checkpointed below)
            if self.dist.is_main:
                payload = self._checkpoint_payload(epoch + 1)
                if improved:
                    save_checkpoint(self.best_checkpoint, payload)
                save_checkpoint(self.last_checkpoint, payload)
                write_json(self.run_dir / "history.json", [asdict(r) for r in self.history])
            self._report(epoch, record, improved)
            for callback in self.epoch_callbacks:  # hook: may raise (e.g. optuna.TrialPruned) to stop
                callback(epoch, record)
            if self.bad_epochs >= self.config.train.patience and epoch + 1 < epochs:
                stopped_early = True
                break
        dist_utils.barrier(self.dist)  # every rank returns only once rank 0's files exist
        return self._result(stopped_early)

    def _report(self, epoch: int, record: EpochRecord, improved: bool) -> None:
        if self.progress:
            aucs = " ".join(f"{a:.4f}" for a in record.valid_auc)
            tqdm.write(
                f"epoch {epoch + 1}/{self.config.train.epochs}: loss {record.train_loss:.4f}  "
                f"valid AUC by depth [{aucs}]  {self.config.train.monitor}={record.monitor:.4f}"
                f"{'  (best)' if improved else ''}  {record.samples_per_second:,.0f} samples/s"
            )

    def _result(self, stopped_early: bool) -> TrainResult:
        return TrainResult(
            run_dir=self.run_dir,
            best_epoch=self.best_epoch,
            best_monitor=self.best_monitor,
            monitor=self.config.train.monitor,
            history=list(self.history),
            stopped_early=stopped_early,
        )

    # ----------------------------------------------------------------- one epoch
    def _epoch_batches(self, epoch: int) -> tuple[int, Iterator[tuple[Batch, int]]]:
        """(steps, iterator of (this rank's batch, global batch rows)) for `epoch`.

        In memory, the global batches are those of a single-process run and each rank takes
        its slice of every one; streamed, each rank reads its own row groups and the global
        batch size is summed over ranks.
        """
        cfg = self.config.train
        train = self.data.train
        if isinstance(train, ParquetSplit):
            plan = train.epoch_plan(epoch, cfg.batch_size, self.dist.rank, self.dist.world_size, cfg.max_steps_per_epoch)

            def streamed() -> Iterator[tuple[Batch, int]]:
                for part in plan:
                    n_global = int(dist_utils.all_reduce_sum(np.array([len(part)]), self.dist, self.device)[0])
                    yield part.to_batch(device=self.device), n_global

            return len(plan), streamed()
        sampler = ShardedBatchSampler(len(train), cfg.batch_size, self.config.seed, self.dist.rank,
                                      self.dist.world_size, cfg.max_steps_per_epoch)
        steps = sampler.epoch(epoch)
        return len(steps), ((train.to_batch(rows, device=self.device), n) for rows, n in steps)

    def _step_loss(self, batch: Batch, global_rows: int, aux_weight: float) -> tuple[torch.Tensor, float, float]:
        """Forward one batch: (loss to backpropagate, summed per-row BCE, aux loss of the global batch)."""
        reduce = dist_utils.differentiable_sum(self.dist)
        batch = self.oov_dropout(batch)  # hook: training-time OOV replacement (train.oov_dropout)
        with global_router_statistics(reduce):
            out = self.net(batch, return_hidden=self.halting is not None)
        if self.dist.enabled:
            loss, bce_sum = sharded_process_supervised_loss(
                out.logits, batch.labels, out.aux_loss, aux_weight, global_rows, self.dist.world_size, self.depth_weights
            )
            bce_total = float(bce_sum.detach())
        else:
            loss, bce = process_supervised_loss(out.logits, batch.labels, out.aux_loss, aux_weight, self.depth_weights)
            bce_total = float(bce.detach()) * len(batch)
        if self.halting is not None:  # hook: joint ACT halting term
            loss = loss + self.halting.loss(out, batch.labels)
        return loss, bce_total, float(out.aux_loss.detach())

    def _penalty(self) -> torch.Tensor | None:
        """The explicit L2 penalty of this step (None when train.embedding_l2 = dense_l2 = 0).

        Every rank adds the same penalty of the same (synchronised) weights, so DDP's
        gradient average leaves its gradient unchanged: as in a single process.
        """
        return l2_penalty(self.param_split, self.config.train.embedding_l2, self.config.train.dense_l2)

    def _run_epoch(self, epoch: int) -> EpochRecord:
        cfg = self.config.train
        self.model.train()
        aux_weight = float(getattr(self.config.model, "aux_weight", 0.0))
        totals = np.zeros(3)  # summed BCE, aux x rows, rows (this rank)
        penalty_sum = 0.0
        lr = current_lr(self.optimizer)
        started = time.perf_counter()
        steps, batches = self._epoch_batches(epoch)
        bar = tqdm(batches, total=steps, desc=f"epoch {epoch + 1}", disable=not self.progress, leave=False)
        for step, (batch, global_rows) in enumerate(bar):
            loss, bce_total, aux = self._step_loss(batch, global_rows, aux_weight)
            penalty = self._penalty()
            if penalty is not None:
                loss = loss + penalty
                penalty_sum += float(penalty.detach())
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"training loss became {loss.item()} at epoch {epoch + 1}, step {step + 1}; lower train.lr or "
                    f"check the data for extreme values"
                )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            self.optimizer.step()
            totals += np.array([bce_total, aux * len(batch), len(batch)])
            if step % 20 == 0:
                bar.set_postfix(loss=f"{loss.item():.4f}")
        seconds = time.perf_counter() - started
        bce_sum, aux_sum, seen = (float(v) for v in dist_utils.all_reduce_sum(totals, self.dist, self.device))
        seconds = dist_utils.all_reduce_max(seconds, self.dist, self.device)
        aucs, loglosses = self.validate()
        bce_mean, aux_mean = bce_sum / max(seen, 1), aux_sum / max(seen, 1)
        return EpochRecord(
            epoch=epoch,
            train_loss=float(bce_mean + aux_weight * aux_mean),
            train_bce=float(bce_mean),
            train_aux=float(aux_mean),
            valid_auc=aucs,
            valid_logloss=loglosses,
            monitor=self.monitor.value(aucs, loglosses),
            seconds=seconds,
            samples_per_second=seen / max(seconds, 1e-9),
            steps=int(steps),
            lr=lr,
            train_penalty=penalty_sum / max(int(steps), 1),
        )

    # ----------------------------------------------------------------- recipe checks
    def _depth_weights(self) -> torch.Tensor | None:
        """`train.depth_loss_weights` as a tensor on the device (None = uniform mean); one weight per depth 0..L."""
        weights = self.config.train.depth_loss_weights
        if not weights:
            return None
        depths = self.model.train_loops + 1
        if len(weights) != depths:
            raise ConfigError(
                f"train.depth_loss_weights has {len(weights)} weights but the model is trained at {depths} depths "
                f"(0..{self.model.train_loops}); give one weight per depth or leave it empty"
            )
        return torch.tensor(weights, dtype=torch.float32, device=self.device)

    def _check_batch_norm_batches(self) -> None:
        """Batch norm cannot train on a one-row batch: refuse a batch size that leaves one row at the end of every epoch."""
        if not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in self.model.modules()):
            return
        train = self.data.train
        if isinstance(train, ParquetSplit):
            return
        cfg = self.config.train
        n, size = len(train), cfg.batch_size
        last = n % size
        if last == 1 and (cfg.max_steps_per_epoch == 0 or cfg.max_steps_per_epoch * size >= n):
            raise ConfigError(
                f"model.batch_norm is on and the {n:,} training rows leave a last batch of 1 row with "
                f"train.batch_size={size}; batch norm cannot train on one row: choose another batch size"
            )

    def _check_monitor_defined(self) -> None:
        """Fail before the first epoch when the validation split makes the monitor undefined (in-memory data)."""
        valid = self.data.valid
        if not isinstance(valid, ParquetSplit):
            check_monitor_defined(valid.labels, self.monitor, self.config.train.monitor, "validation")

    # ----------------------------------------------------------------- validation
    def validate(self, data: EncodedData | ParquetSplit | None = None) -> tuple[list[float], list[float]]:
        """Per-depth AUC and logloss over depths 0..L on the validation split (every rank gets the same).

        Raises `DataError` when the monitor is an AUC and the split holds a single class
        (AUC undefined), instead of reporting NaN as the best epoch.
        """
        labels, logits = self.predict(self.data.valid if data is None else data, self.config.model.train_loops)
        check_monitor_defined(labels, self.monitor, self.config.train.monitor, "validation")
        rows = per_depth_metrics(labels, logits, self.model.flops())
        return [r.auc for r in rows], [r.logloss for r in rows]

    def predict(self, data: EncodedData | ParquetSplit, max_depth: int) -> tuple[np.ndarray, np.ndarray]:
        """(labels, logits [n, K+1]) of a whole split; each rank predicts a shard and the shards are gathered."""
        batch_size = self.config.train.eval_batch_size
        if isinstance(data, ParquetSplit):
            labels_parts, logits_parts = [], []
            for part in data.iter_encoded(batch_size, rank=self.dist.rank, world_size=self.dist.world_size):
                logits, _ = predict_depths(self.model, part, max_depth, batch_size, device=self.device)
                labels_parts.append(part.labels)
                logits_parts.append(logits)
            labels = np.concatenate(labels_parts) if labels_parts else np.zeros(0, np.float32)
            logits = np.concatenate(logits_parts) if logits_parts else np.zeros((0, max_depth + 1), np.float32)
        else:
            start, end = dist_utils.shard_bounds(len(data), self.dist.rank, self.dist.world_size)
            shard = data if not self.dist.enabled else data.subset(slice(start, end))
            labels = shard.labels
            logits, _ = predict_depths(self.model, shard, max_depth, batch_size, device=self.device)
        labels = dist_utils.all_gather_rows(np.ascontiguousarray(labels, dtype=np.float32), self.dist, self.device)
        logits = dist_utils.all_gather_rows(np.ascontiguousarray(logits, dtype=np.float32), self.dist, self.device)
        return labels, logits

    # ----------------------------------------------------------------- checkpoints
    def _write_run_files(self) -> None:
        write_text(self.run_dir / "config.yaml", config_to_yaml(self.config))
        write_json(self.run_dir / "spec.json", self.data.spec.to_dict())
        self.data.encoder.save(self.run_dir / "encoder.json")

    def _checkpoint_payload(self, epochs_done: int) -> dict[str, Any]:
        payload = {
            "format": CHECKPOINT_FORMAT,
            "epochs_done": epochs_done,
            "model_state": self.model.state_dict(),
            "optimizer_state": self.optimizer.state_dict(),
            "schedule_state": self.schedule.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "best_monitor": self.best_monitor,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "history": [asdict(r) for r in self.history],
            "config": self.config.to_dict(),
            "spec": self.data.spec.to_dict(),
        }
        if self.device.type == "cuda":
            payload["cuda_rng"] = torch.cuda.get_rng_state_all()
        if self.halting is not None:  # hook: joint ACT halting head
            payload["halting"] = self.halting.payload()
        return payload

    def _restore(self, payload: dict[str, Any]) -> None:
        if payload.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{self.last_checkpoint}: unsupported checkpoint format {payload.get('format')!r}")
        saved = with_current_defaults(payload.get("config", {}))
        differences = config_differences(saved, self.config.to_dict(), RESUME_MUST_MATCH)
        if differences:
            raise CheckpointError(
                f"{self.last_checkpoint} was written for another config ({'; '.join(differences[:3])}"
                f"{'; ...' if len(differences) > 3 else ''}); resume with the run's own config.yaml "
                f"(only train.epochs, train.patience and other train.* keys may change) or start a new run directory"
            )
        load_model_state(self.model, payload["model_state"], str(self.last_checkpoint))
        if (self.halting is not None) != ("halting" in payload):  # hook: joint ACT halting head
            raise CheckpointError(f"{self.last_checkpoint}: train.halting.enabled differs from the run being resumed")
        if self.halting is not None:
            self.halting.restore(payload["halting"])
        self.optimizer.load_state_dict(payload["optimizer_state"])  # includes the (possibly cut) learning rate
        self.schedule.load_state_dict(payload.get("schedule_state", {}))
        torch.set_rng_state(payload["torch_rng"])
        if "cuda_rng" in payload and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(payload["cuda_rng"])
        self.best_monitor = float(payload["best_monitor"])
        self.best_epoch = int(payload["best_epoch"])
        self.bad_epochs = int(payload["bad_epochs"])
        self.history = [EpochRecord(**r) for r in payload["history"]]
        self.start_epoch = int(payload["epochs_done"])


def single_class(labels: np.ndarray) -> float | None:
    """The one label value of a split that has a single class (or no row), else None."""
    values = np.unique(np.asarray(labels).reshape(-1) > 0.5)
    return None if len(values) == 2 else (float(values[0]) if len(values) else float("nan"))


def check_monitor_defined(labels: np.ndarray, monitor: Monitor, monitor_text: str, split: str) -> None:
    """Raise `DataError` when `monitor` is an AUC and `labels` hold a single class (AUC is then undefined).

    Training on would select epochs by NaN; a logloss monitor stays defined, so it is the
    suggested way out when such a split is intended.
    """
    if monitor.metric != "auc":
        return
    value = single_class(labels)
    if value is None:
        return
    n = int(np.asarray(labels).size)
    what = "no rows" if n == 0 else f"a single class (all {n:,} labels are {int(value)})"
    raise DataError(
        f"the {split} split has {what}: AUC is undefined, so train.monitor={monitor_text!r} cannot pick the best "
        f"epoch; use a {split} split with both classes, or monitor logloss (train.monitor=logloss@L)"
    )


# Config sections a resumed run must share with its checkpoint: other weights, other data or
# another seed (batch order) would silently continue a different experiment.
RESUME_MUST_MATCH = ("seed", "data", "model")


def with_current_defaults(saved: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's config with keys added since it was written set to their defaults.

    So a run checkpointed before a new option existed still resumes, as long as the option
    keeps its default. A config that no longer parses is compared as saved.
    """
    from adaptive_loop.config import RunConfig
    from adaptive_loop.config_loading import from_dict

    try:
        return from_dict(RunConfig, saved).to_dict()
    except ConfigError:
        return saved


def config_differences(old: dict[str, Any], new: dict[str, Any], sections: tuple[str, ...]) -> list[str]:
    """Dotted keys under `sections` whose values differ, as 'key: old -> new' strings."""
    out: list[str] = []

    def walk(a: Any, b: Any, key: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b), key=str):
                walk(a.get(k), b.get(k), f"{key}.{k}")
        elif _normalise(a) != _normalise(b):
            out.append(f"{key}: {a!r} in the checkpoint, {b!r} now")

    for section in sections:
        walk(old.get(section), new.get(section), section)
    return out


def _normalise(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    return value


def load_model_state(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load a state dict, turning key or shape mismatches into one clear `CheckpointError`."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or mismatched:
        details = []
        if missing:
            details.append(f"missing {missing[:3]}{'...' if len(missing) > 3 else ''}")
        if unexpected:
            details.append(f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''}")
        if mismatched:
            k = mismatched[0]
            details.append(f"shape of {k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}")
        raise CheckpointError(
            f"checkpoint {source} does not fit this model config ({'; '.join(details)}); it was written for "
            f"another config or dataset"
        )
    model.load_state_dict(state)


def train(config: RunConfig, run_dir: str | Path, resume: bool = False,
          data: PreparedData | StreamingData | None = None, progress: bool | None = None,
          epoch_callbacks: list[Callable[[int, EpochRecord], None]] | None = None) -> TrainResult:
    """Prepare the data (unless given), train, and return the result.

    Under torchrun (WORLD_SIZE > 1) this joins the process group first (gloo on CPU, NCCL
    on CUDA) and leaves it at the end; every rank returns the same `TrainResult`.
    """
    from adaptive_loop.data.pipeline import prepare_data

    show = config.train.progress if progress is None else progress
    ctx, device, created = dist_utils.init_distributed(resolve_device(config.train.device))
    try:
        prepared = data if data is not None else prepare_data(
            config.data, seed=config.seed, show_progress=show and ctx.is_main
        )
        return Trainer(config, prepared, run_dir, progress=show, dist=ctx, device=device,
                       epoch_callbacks=epoch_callbacks).fit(resume=resume)
    finally:
        dist_utils.shutdown(created)
