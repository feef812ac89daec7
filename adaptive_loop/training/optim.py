"""Optimiser, explicit L2 penalties and the learning-rate schedule of a training run.

One module so that every trainer (single process, DDP, model tuning) builds the same
optimiser and applies the same penalties. Three mechanisms, each matching FuxiCTR's `BaseModel` (the library behind the BARS CTR
benchmark), so that the baselines can be trained with the recipe their published
numbers come from and LoopCTR can be tuned with the same tools:

- `build_optimizer`: Adam or AdamW (`train.optimizer`) over the model's parameters (and,
  when enabled, the joint halting head's), one parameter group in model order (so
  checkpoints of earlier runs still load). `train.weight_decay` is the
  optimiser's own decay on every parameter: decoupled for AdamW, added to the gradient
  (coupled L2) for Adam.
- `l2_penalty`: explicit penalties added to the training loss at every step,

      embedding_l2 / 2 * sum ||E||^2   over the whole of every embedding table
    + dense_l2 / 2     * sum ||W||^2   over every other parameter.

  This is the form of FuxiCTR's `regularization_loss` (v2, `rank_model.py`) and
  `add_regularization` (v1, `base_model.py`): `(lambda / p) * torch.norm(param, p) ** p`
  with p = 2, `embedding_regularizer` on the parameters of the embedding layers (DeepFM's
  first-order weights included, they are a 1-wide embedding table), `net_regularizer` on
  all others (biases and norm parameters included), added to the mean BCE. Whole tables
  are penalised, not only the rows in the batch: with Adam's per-coordinate scaling,
  rarely seen ids are pulled to zero quickly while frequent ids are held by their data
  gradient - a frequency-adaptive regulariser, unlike a small decoupled weight decay.
  Which parameters are embeddings: see `split_parameters`.
- `PlateauSchedule`: after every epoch whose validation monitor did not improve (the
  same test and `min_delta` that early stopping uses), multiply the learning rate by
  `lr_factor`, never below `min_lr`, and keep training: FuxiCTR's `reduce_lr_on_plateau`
  with `lr_decay(factor=0.1, min_lr=1e-6)`. Early stopping counts the same epochs, so
  `patience: 2` gives one cut and stops if the cut brought no gain. The learning rate
  lives in the optimiser's state (checkpointed); the schedule's own state (cuts so far)
  is checkpointed beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import torch
from torch import nn

from adaptive_loop.config import OPTIMIZERS, TrainConfig
from adaptive_loop.errors import ConfigError


@dataclass
class ParameterSplit:
    """A model's trainable parameters split into embeddings and everything else (dense)."""

    embedding: list[nn.Parameter] = field(default_factory=list)
    dense: list[nn.Parameter] = field(default_factory=list)
    embedding_names: list[str] = field(default_factory=list)


def split_parameters(model: nn.Module) -> ParameterSplit:
    """Embedding parameters: weights of every `nn.Embedding`, and every parameter of a module
    whose class sets `holds_embeddings = True` (`FeatureEmbeddings`, the baselines'
    `FieldEmbedder` with its numeric field vectors). Everything else is dense.

    This mirrors FuxiCTR, whose embedding regulariser covers the parameters of its
    embedding layers (tables and numeric-field embeddings) and nothing else.
    """
    embedding_ids: set[int] = set()
    for module in model.modules():
        if isinstance(module, nn.Embedding) or getattr(module, "holds_embeddings", False):
            embedding_ids.update(id(p) for p in module.parameters())
    split = ParameterSplit()
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if id(param) in embedding_ids:
            split.embedding.append(param)
            split.embedding_names.append(name)
        else:
            split.dense.append(param)
    return split


def squared_norm(params: Iterable[torch.Tensor]) -> torch.Tensor:
    """sum ||p||^2 over `params` (a 0-d tensor; zero when there is none)."""
    total: torch.Tensor | None = None
    for p in params:
        term = p.pow(2).sum()
        total = term if total is None else total + term
    return total if total is not None else torch.zeros(())


def l2_penalty(split: ParameterSplit, embedding_l2: float, dense_l2: float) -> torch.Tensor | None:
    """embedding_l2/2 * sum ||E||^2 + dense_l2/2 * sum ||W||^2 (FuxiCTR's form, see the module
    docstring), or None when both strengths are 0 (nothing to add to the loss)."""
    terms = []
    if embedding_l2 > 0 and split.embedding:
        terms.append(0.5 * embedding_l2 * squared_norm(split.embedding))
    if dense_l2 > 0 and split.dense:
        terms.append(0.5 * dense_l2 * squared_norm(split.dense))
    if not terms:
        return None
    return terms[0] if len(terms) == 1 else terms[0] + terms[1]


def build_optimizer(parameters: Iterable[nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    """`train.optimizer` (Adam or AdamW) over `parameters`, one group in the given order."""
    params = list(parameters)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    raise ConfigError(f"train.optimizer={config.optimizer!r} is not one of {', '.join(OPTIMIZERS)}")


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    """The learning rate of the optimiser's first parameter group."""
    return float(optimizer.param_groups[0]["lr"])


@dataclass
class PlateauSchedule:
    """Reduce-LR-on-plateau tied to the validation monitor (see the module docstring).

    With `mode='constant'` it never changes the learning rate.
    """

    mode: str = "constant"
    factor: float = 0.1
    min_lr: float = 1e-6
    cuts: int = 0

    def after_epoch(self, optimizer: torch.optim.Optimizer, improved: bool) -> bool:
        """Cut the learning rate if the epoch brought no monitor gain; True when it did cut."""
        if self.mode != "plateau" or improved:
            return False
        for group in optimizer.param_groups:
            group["lr"] = max(group["lr"] * self.factor, self.min_lr)
        self.cuts += 1
        return True

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint stores (the learning rate itself is in the optimiser's state)."""
        return {"mode": self.mode, "cuts": self.cuts}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `cuts` from a checkpoint (older checkpoints without a schedule leave it at 0)."""
        self.cuts = int(state.get("cuts", 0))
