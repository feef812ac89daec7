"""Process-supervised training of depth models, with early stopping and resumable checkpoints.

The loss is the paper's process supervision: the mean BCE over depths 0..L plus the
weighted auxiliary (MoE load-balancing) loss. Supervising depth 0 is what makes zero-loop
inference work; supervising every depth is what lets one set of weights answer at any
depth, which the oracle and controllers then exploit.

Reproducibility: the seed fixes initialisation (`torch.manual_seed` before the model is
built), the batch order (a generator seeded with (seed, epoch)) and dropout (torch's RNG
state, saved in every checkpoint). A run resumed from its last checkpoint therefore
continues exactly as an uninterrupted one.

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
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from adaptive_loop.config import RunConfig, config_to_yaml
from adaptive_loop.data.batch import EncodedData
from adaptive_loop.data.pipeline import PreparedData
from adaptive_loop.errors import CheckpointError, ConfigError
from adaptive_loop.evaluation import per_depth_metrics, predict_depths
from adaptive_loop.io import load_checkpoint, save_checkpoint, write_json, write_text
from adaptive_loop.model.factory import build_model

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
        values = aucs if self.metric == "auc" else loglosses
        return float(np.mean(values)) if self.depth is None else float(values[self.depth])

    def improved(self, new: float, best: float, min_delta: float) -> bool:
        if math.isnan(best):
            return True
        return new > best + min_delta if self.maximise else new < best - min_delta


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when available; an explicit CUDA request without CUDA is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"train.device={name!r} but CUDA is not available on this machine (use 'auto' or 'cpu')")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"train.device={name!r} is not a valid device") from None


def process_supervised_loss(
    logits: torch.Tensor, labels: torch.Tensor, aux_loss: torch.Tensor, aux_weight: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(total loss, mean BCE over depths): 1/(L+1) sum_l BCE(logit_l, y) + aux_weight * aux."""
    target = labels.unsqueeze(1).expand_as(logits)
    bce = F.binary_cross_entropy_with_logits(logits, target)
    return bce + aux_weight * aux_loss, bce


class Trainer:
    """Trains one model on prepared data into a run directory."""

    def __init__(self, config: RunConfig, data: PreparedData, run_dir: str | Path, progress: bool | None = None):
        self.config = config
        self.data = data
        self.run_dir = Path(run_dir)
        self.progress = config.train.progress if progress is None else progress
        self.device = resolve_device(config.train.device)
        self.monitor = Monitor.parse(config.train.monitor, config.model.train_loops)
        torch.set_num_threads(max(1, config.train.num_threads))
        torch.manual_seed(config.seed)
        self.model = build_model(config.model, data.spec).to(self.device)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=config.train.lr, weight_decay=config.train.weight_decay
        )
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
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if resume and self.last_checkpoint.exists():
            self._restore(load_checkpoint(self.last_checkpoint))
        else:
            self._write_run_files()
        stopped_early = False
        epochs = self.config.train.epochs
        if self.bad_epochs >= self.config.train.patience:
            return self._result(stopped_early=True)
        for epoch in range(self.start_epoch, epochs):
            record = self._run_epoch(epoch)
            self.history.append(record)
            improved = self.monitor.improved(record.monitor, self.best_monitor, self.config.train.min_delta)
            if improved:
                self.best_monitor, self.best_epoch, self.bad_epochs = record.monitor, epoch, 0
            else:
                self.bad_epochs += 1
            payload = self._checkpoint_payload(epoch + 1)
            if improved:
                save_checkpoint(self.best_checkpoint, payload)
            save_checkpoint(self.last_checkpoint, payload)
            write_json(self.run_dir / "history.json", [asdict(r) for r in self.history])
            self._report(epoch, record, improved)
            if self.bad_epochs >= self.config.train.patience and epoch + 1 < epochs:
                stopped_early = True
                break
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

    def _run_epoch(self, epoch: int) -> EpochRecord:
        cfg = self.config.train
        train = self.data.train
        self.model.train()
        order = np.random.default_rng([self.config.seed, epoch]).permutation(len(train))
        steps = math.ceil(len(train) / cfg.batch_size)
        if cfg.max_steps_per_epoch > 0:
            steps = min(steps, cfg.max_steps_per_epoch)
        aux_weight = float(getattr(self.config.model, "aux_weight", 0.0))
        totals = np.zeros(3)
        seen = 0
        started = time.perf_counter()
        bar = tqdm(range(steps), desc=f"epoch {epoch + 1}", disable=not self.progress, leave=False)
        for step in bar:
            rows = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            batch = train.to_batch(rows, device=self.device)
            out = self.model(batch)
            loss, bce = process_supervised_loss(out.logits, batch.labels, out.aux_loss, aux_weight)
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
            totals += np.array([loss.item(), bce.item(), float(out.aux_loss.detach())]) * len(rows)
            seen += len(rows)
            if step % 20 == 0:
                bar.set_postfix(loss=f"{loss.item():.4f}")
        seconds = time.perf_counter() - started
        aucs, loglosses = self.validate()
        return EpochRecord(
            epoch=epoch,
            train_loss=float(totals[0] / max(seen, 1)),
            train_bce=float(totals[1] / max(seen, 1)),
            train_aux=float(totals[2] / max(seen, 1)),
            valid_auc=aucs,
            valid_logloss=loglosses,
            monitor=self.monitor.value(aucs, loglosses),
            seconds=seconds,
            samples_per_second=seen / max(seconds, 1e-9),
            steps=steps,
        )

    def validate(self, data: EncodedData | None = None) -> tuple[list[float], list[float]]:
        """Per-depth AUC and logloss over depths 0..L on the validation split."""
        data = self.data.valid if data is None else data
        logits, _ = predict_depths(
            self.model, data, self.config.model.train_loops, self.config.train.eval_batch_size, device=self.device
        )
        rows = per_depth_metrics(data.labels, logits, self.model.flops())
        return [r.auc for r in rows], [r.logloss for r in rows]

    # ----------------------------------------------------------------- checkpoints
    def _write_run_files(self) -> None:
        write_text(self.run_dir / "config.yaml", config_to_yaml(self.config))
        write_json(self.run_dir / "spec.json", self.data.spec.to_dict())
        self.data.encoder.save(self.run_dir / "encoder.json")

    def _checkpoint_payload(self, epochs_done: int) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "epochs_done": epochs_done,
            "model_state": self.model.state_dict(),
            "optimizer_state": self.optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "best_monitor": self.best_monitor,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "history": [asdict(r) for r in self.history],
            "config": self.config.to_dict(),
            "spec": self.data.spec.to_dict(),
        }

    def _restore(self, payload: dict[str, Any]) -> None:
        if payload.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{self.last_checkpoint}: unsupported checkpoint format {payload.get('format')!r}")
        if payload.get("config", {}).get("model") != self.config.to_dict()["model"]:
            raise CheckpointError(
                f"{self.last_checkpoint} was written for another model config; resume with the run's own "
                f"config.yaml or start a new run directory"
            )
        load_model_state(self.model, payload["model_state"], str(self.last_checkpoint))
        self.optimizer.load_state_dict(payload["optimizer_state"])
        torch.set_rng_state(payload["torch_rng"])
        self.best_monitor = float(payload["best_monitor"])
        self.best_epoch = int(payload["best_epoch"])
        self.bad_epochs = int(payload["bad_epochs"])
        self.history = [EpochRecord(**r) for r in payload["history"]]
        self.start_epoch = int(payload["epochs_done"])


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


def train(config: RunConfig, run_dir: str | Path, resume: bool = False, data: PreparedData | None = None,
          progress: bool | None = None) -> TrainResult:
    """Prepare the data (unless given), train, and return the result."""
    from adaptive_loop.data.pipeline import prepare_data

    show = config.train.progress if progress is None else progress
    prepared = data if data is not None else prepare_data(config.data, seed=config.seed, show_progress=show)
    return Trainer(config, prepared, run_dir, progress=show).fit(resume=resume)
