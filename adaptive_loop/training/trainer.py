"""Process-supervised training of depth models: the trainer loop, with early stopping and resume.

The loss (`training.losses`) is the paper's process supervision: the mean BCE over depths
0..L (or a weighted mean, `train.depth_loss_weights`) plus the weighted auxiliary (MoE
load-balancing) loss, plus the explicit L2 penalties. The optimiser, the penalties and the
learning-rate schedule come from `training.optim`, training-time OOV dropout from
`training.oov_dropout`, the validation monitor from `training.early_stopping`, the checks
made before the first epoch from `training.preflight`, the device from `training.device`,
and the run directory layout and resume checks from `training.checkpoints`.

Reproducibility: the seed fixes initialisation (`torch.manual_seed` before the model is
built), the batch order (a generator seeded with (seed, epoch)) and dropout (torch's RNG
state, saved in every checkpoint, as are the optimiser's learning rate and the plateau
schedule's state). A run resumed from its last checkpoint therefore
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
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from adaptive_loop import distributed as dist_utils
from adaptive_loop.config import RunConfig
from adaptive_loop.data.batch import Batch, EncodedData
from adaptive_loop.data.pipeline import PreparedData
from adaptive_loop.data.streaming import ParquetSplit, StreamingData
from adaptive_loop.distributed import SINGLE, DistContext, ShardedBatchSampler
from adaptive_loop.errors import CheckpointError, ConfigError
from adaptive_loop.io import load_checkpoint, remove_stale_temporaries, save_checkpoint, write_json
from adaptive_loop.model import build_model
from adaptive_loop.model.moe import global_router_statistics
from adaptive_loop.training.checkpoints import CHECKPOINT_FORMAT, check_resumable, load_model_state, write_run_files
from adaptive_loop.training.device import resolve_device
from adaptive_loop.training.early_stopping import Monitor
from adaptive_loop.training.history import EpochRecord, TrainResult
from adaptive_loop.training.joint_halting import build_joint_halting
from adaptive_loop.training.losses import depth_weight_tensor, process_supervised_loss, sharded_process_supervised_loss
from adaptive_loop.training.micro_batches import micro_batch_parts, micro_batch_rows, saved_bytes_per_row
from adaptive_loop.training.oov_dropout import OOVDropout
from adaptive_loop.training.optim import PlateauSchedule, build_optimizer, current_lr, l2_penalty, split_parameters
from adaptive_loop.training.per_depth import per_depth_metrics, predict_depths
from adaptive_loop.training.preflight import check_batch_norm_batches, check_monitor_defined
from adaptive_loop.training.routing import build_joint_routing


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
        # --- hooks: joint ACT halting head (train.halting, training.joint_halting) and per-epoch callbacks
        #     (called as callback(epoch, record) after each epoch's checkpoint; Optuna pruning uses them) ---
        if config.train.halting.enabled and dist.enabled:
            raise ConfigError("train.halting.enabled runs in a single process only (the head is not synchronised across ranks)")
        self.halting = build_joint_halting(config.train.halting, self.model, self.device)
        # hook: depth routing trained with the model (train.routing, training.routing)
        if config.train.routing.enabled and (dist.enabled or config.train.halting.enabled):
            raise ConfigError("train.routing runs in a single process and without train.halting (one depth mechanism per run)")
        self.routing = build_joint_routing(config.train.routing, self.model, config.train.batch_size, self.device)
        if self.routing is not None and isinstance(data.valid, ParquetSplit):
            raise ConfigError("train.routing validates in memory (the router reads every row's summaries); "
                              "streamed validation splits are not supported")
        if self.routing is not None and config.train.routing.monitor and not self.monitor.maximise:
            raise ConfigError(f"train.routing.monitor follows the routed validation AUC (maximised) but train.monitor="
                              f"{config.train.monitor!r} is minimised; use an AUC monitor or train.routing.monitor=false")
        # hook: memory budget for training activations (train.train_memory_mb, training.micro_batches)
        if config.train.train_memory_mb is not None and (dist.enabled or config.train.routing.enabled):
            raise ConfigError("train.train_memory_mb (micro-batches) runs in a single process and without train.routing "
                              "(the routed loss picks each depth's rows within the whole batch); lower train.batch_size instead")
        self.micro_rows: int | None = None  # rows per micro-batch, measured on the first batch when there is a budget
        self.epoch_callbacks = list(epoch_callbacks or [])
        head_params = self.halting.parameters() if self.halting is not None else []
        head_params += self.routing.parameters() if self.routing is not None else []
        # --- end hooks ---
        # --- hooks: training recipe (training.optim, losses, oov_dropout): optimiser, explicit L2
        #     penalties, LR schedule, per-depth loss weights, OOV dropout ---
        cfg = config.train
        self.optimizer = build_optimizer(list(self.model.parameters()) + head_params, cfg)
        self.param_split = split_parameters(self.model)
        self.schedule = PlateauSchedule(cfg.lr_schedule, cfg.lr_factor, cfg.min_lr)
        self.depth_weights = depth_weight_tensor(cfg.depth_loss_weights, self.model.train_loops, self.device)
        self.oov_dropout = OOVDropout(cfg.oov_dropout, data.spec)
        if not isinstance(data.train, ParquetSplit):
            check_batch_norm_batches(self.model, len(data.train), cfg)
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
            write_run_files(self.run_dir, self.config, self.data)
        stopped_early = False
        epochs = self.config.train.epochs
        if self.bad_epochs >= self.config.train.patience:
            return self._result(stopped_early=True)
        if not isinstance(self.data.valid, ParquetSplit):  # streamed: checked on each epoch's predictions
            check_monitor_defined(self.data.valid.labels, self.monitor, self.config.train.monitor, "validation")
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
            routed = self.routing is not None and self.config.train.routing.monitor
            label = "routed valid AUC" if routed else self.config.train.monitor  # hook: train.routing
            tqdm.write(
                f"epoch {epoch + 1}/{self.config.train.epochs}: loss {record.train_loss:.4f}  "
                f"valid AUC by depth [{aucs}]  {label}={record.monitor:.4f}"
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
        if self.routing is not None:  # hook: routed loss (exit-depth BCE + auxiliary terms)
            with global_router_statistics(reduce):
                routed = self.routing.step_loss(self.model, batch, aux_weight)
            return routed.loss, float(routed.exit_bce.detach()) * len(batch), float(routed.aux.detach())
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

    def _optimizer_step(self, batch: Batch, global_rows: int, aux_weight: float,
                        epoch: int, step: int) -> tuple[torch.Tensor, float, np.ndarray]:
        """One optimiser step on `batch`: (its loss, its L2 penalty, [summed BCE, aux x rows, rows]).

        Under train.train_memory_mb the batch runs as micro-batches, each loss weighted by the
        part's share of the rows and back-propagated at once, so the gradients add up to the
        batch's before the single optimiser step; the penalty joins the last part's loss.
        """
        cfg = self.config.train
        self.optimizer.zero_grad(set_to_none=True)
        parts = micro_batch_parts(batch, self._micro_batch_rows(batch))
        step_loss, penalty_value, counts = torch.zeros(()), 0.0, np.zeros(3)
        for index, part in enumerate(parts):
            loss, bce_total, aux = self._step_loss(part, global_rows, aux_weight)
            if len(parts) > 1:
                loss = loss * (len(part) / len(batch))
            # hook: explicit L2 penalties; every rank adds the same penalty of the same (synchronised)
            # weights, so DDP's gradient average leaves its gradient as in a single process
            penalty = l2_penalty(self.param_split, cfg.embedding_l2, cfg.dense_l2) if index == len(parts) - 1 else None
            if penalty is not None:
                loss = loss + penalty
                penalty_value = float(penalty.detach())
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"training loss became {loss.item()} at epoch {epoch + 1}, step {step + 1}; lower train.lr or "
                    f"check the data for extreme values"
                )
            loss.backward()
            step_loss = step_loss + loss.detach().cpu()
            counts += np.array([bce_total, aux * len(part), len(part)])
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        return step_loss, penalty_value, counts

    def _micro_batch_rows(self, batch: Batch) -> int | None:
        """Rows per micro-batch under train.train_memory_mb (None: whole batches), measured once on `batch`."""
        budget = self.config.train.train_memory_mb
        if budget is None or len(batch) < 2:
            return None
        if self.micro_rows is None:
            self.micro_rows = micro_batch_rows(saved_bytes_per_row(self.model, batch), budget)
        return self.micro_rows

    def _run_epoch(self, epoch: int) -> EpochRecord:
        cfg = self.config.train
        self.model.train()
        aux_weight = float(getattr(self.config.model, "aux_weight", 0.0))
        totals = np.zeros(3)  # summed BCE, aux x rows, rows (this rank)
        penalty_sum, lr = 0.0, current_lr(self.optimizer)
        started = time.perf_counter()
        steps, batches = self._epoch_batches(epoch)
        bar = tqdm(batches, total=steps, desc=f"epoch {epoch + 1}", disable=not self.progress, leave=False)
        for step, (batch, global_rows) in enumerate(bar):
            loss, penalty, counts = self._optimizer_step(batch, global_rows, aux_weight, epoch, step)
            penalty_sum += penalty
            totals += counts
            if step % 20 == 0:
                bar.set_postfix(loss=f"{float(loss):.4f}")
        seconds = time.perf_counter() - started
        bce_sum, aux_sum, seen = (float(v) for v in dist_utils.all_reduce_sum(totals, self.dist, self.device))
        seconds = dist_utils.all_reduce_max(seconds, self.dist, self.device)
        routed_auc = None
        if self.routing is not None:  # hook: routed validation AUC (the monitor with train.routing.monitor)
            aucs, loglosses, routed_auc = self.validate_routed()
        else:
            aucs, loglosses = self.validate()
        bce_mean, aux_mean = bce_sum / max(seen, 1), aux_sum / max(seen, 1)
        monitor = routed_auc if routed_auc is not None and cfg.routing.monitor else self.monitor.value(aucs, loglosses)
        return EpochRecord(
            epoch=epoch,
            train_loss=float(bce_mean + aux_weight * aux_mean),
            train_bce=float(bce_mean),
            train_aux=float(aux_mean),
            valid_auc=aucs,
            valid_logloss=loglosses,
            monitor=monitor,
            seconds=seconds,
            samples_per_second=seen / max(seconds, 1e-9),
            steps=int(steps),
            lr=lr,
            train_penalty=penalty_sum / max(int(steps), 1),
            valid_routed_auc=routed_auc,
        )

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

    def validate_routed(self) -> tuple[list[float], list[float], float]:
        """`validate`'s per-depth AUC and logloss plus the AUC of every row at the depth the router sends it to.

        One pass with hidden summaries (the router reads them); train.routing only.
        """
        data = self.data.valid  # in memory: checked when the trainer was built
        logits, hidden = predict_depths(self.model, data, self.model.train_loops, self.config.train.eval_batch_size,
                                        hidden=True, device=self.device)
        check_monitor_defined(data.labels, self.monitor, self.config.train.monitor, "validation")
        rows = per_depth_metrics(data.labels, logits, self.model.flops())
        routed_auc = self.routing.routed_auc(data.labels, logits, hidden)[0]
        return [r.auc for r in rows], [r.logloss for r in rows], routed_auc

    def predict(self, data: EncodedData | ParquetSplit, max_depth: int) -> tuple[np.ndarray, np.ndarray]:
        """(labels, logits [n, K+1]) of a whole split; each rank predicts a shard and the shards are gathered."""
        batch_size, memory_mb = self.config.train.eval_batch_size, self.config.train.eval_memory_mb
        if isinstance(data, ParquetSplit):
            labels_parts, logits_parts = [], []
            for part in data.iter_encoded(batch_size, rank=self.dist.rank, world_size=self.dist.world_size):
                logits, _ = predict_depths(self.model, part, max_depth, batch_size, device=self.device, memory_mb=memory_mb)
                labels_parts.append(part.labels)
                logits_parts.append(logits)
            labels = np.concatenate(labels_parts) if labels_parts else np.zeros(0, np.float32)
            logits = np.concatenate(logits_parts) if logits_parts else np.zeros((0, max_depth + 1), np.float32)
        else:
            start, end = dist_utils.shard_bounds(len(data), self.dist.rank, self.dist.world_size)
            shard = data if not self.dist.enabled else data.subset(slice(start, end))
            labels = shard.labels
            logits, _ = predict_depths(self.model, shard, max_depth, batch_size, device=self.device, memory_mb=memory_mb)
        labels = dist_utils.all_gather_rows(np.ascontiguousarray(labels, dtype=np.float32), self.dist, self.device)
        logits = dist_utils.all_gather_rows(np.ascontiguousarray(logits, dtype=np.float32), self.dist, self.device)
        return labels, logits

    # ----------------------------------------------------------------- checkpoints
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
        if self.routing is not None:  # hook: depth router
            payload["routing"] = self.routing.payload()
        return payload

    def _restore(self, payload: dict[str, Any]) -> None:
        check_resumable(payload, self.config, self.last_checkpoint)
        load_model_state(self.model, payload["model_state"], str(self.last_checkpoint))
        if (self.halting is not None) != ("halting" in payload):  # hook: joint ACT halting head
            raise CheckpointError(f"{self.last_checkpoint}: train.halting.enabled differs from the run being resumed")
        if self.halting is not None:
            self.halting.restore(payload["halting"])
        if (self.routing is not None) != ("routing" in payload):  # hook: depth router
            raise CheckpointError(f"{self.last_checkpoint}: train.routing.mode differs from the run being resumed")
        if self.routing is not None:
            self.routing.restore(payload["routing"])
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
