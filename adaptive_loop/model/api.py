"""The model API every downstream consumer uses (trainer, trace writer, engine, controllers).

A depth model answers after 0, 1, ..., K loop steps with one shared Exit block:

- all depths at once: `model(batch, depth=K, return_hidden=True) -> DepthOutputs` with
  logits [B, K+1] and hidden summaries [B, K+1, h]; K may exceed the trained L.
- step-wise: `state = model.enter(batch)`; `state = model.loop_step(state)`;
  `logit = model.exit(state)`; `summary = model.summarize(state)`. A `LoopState` can be
  subset by row index (`state.subset(rows)`), so a controller can continue only some rows.
  Step-wise results equal the all-depths results.
- `model.flops()` gives analytic FLOPs per sample of Entry, one Loop step and one Exit.

Baselines without a loop (DeepFM, DCNv2) implement the same API with K = 0 only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

from adaptive_loop.data.batch import Batch


@dataclass
class DepthOutputs:
    """Outputs of a forward pass over depths 0..K.

    Attributes:
        logits: [B, K+1] logit after k loop steps.
        hidden: [B, K+1, h] hidden summary after k loop steps, or None if not asked for.
        aux_loss: scalar auxiliary loss of this pass (MoE load balancing); 0 when none, and 0 in
            passes without gradients (no_grad / inference_mode), which skip the balance statistics.
    """

    logits: torch.Tensor
    hidden: torch.Tensor | None
    aux_loss: torch.Tensor


@dataclass(frozen=True)
class FlopsBreakdown:
    """Per-sample FLOPs (multiply-add = 2) of each model part, as the code really runs it.

    `summary` is the cost of computing one hidden summary (counted only by controllers that
    use summaries at inference).
    """

    entry: float
    loop: float
    exit: float
    summary: float = 0.0

    def at_depth(self, depth: int) -> float:
        """FLOPs of a plain fixed-depth prediction: Entry + depth * Loop + one Exit."""
        return self.entry + depth * self.loop + self.exit


@runtime_checkable
class LoopState(Protocol):
    """Per-row state between loop steps; row-subsettable."""

    depth: int

    def subset(self, rows: torch.Tensor) -> "LoopState":
        """The state of `rows` only (an index or boolean tensor over the batch), at the same depth."""

    def __len__(self) -> int: ...


@runtime_checkable
class DepthModel(Protocol):
    """What the trainer, trace writer and engine rely on."""

    train_loops: int  # L: loops used in training (0 for baselines)
    hidden_dim: int  # h: width of the hidden summary

    def __call__(self, batch: Batch, depth: int | None = None, return_hidden: bool = False) -> DepthOutputs:
        """All depths at once: logits [B, K+1] for K = `depth` (default L), summaries with `return_hidden`."""

    def enter(self, batch: Batch) -> LoopState:
        """Run the Entry block on `batch`: the state at depth 0."""

    def loop_step(self, state: LoopState) -> LoopState:
        """Apply one more Loop step to every row of `state` (depth + 1)."""

    def exit(self, state: LoopState) -> torch.Tensor:
        """Logit [B] of `state` at its current depth (one Exit evaluation)."""

    def summarize(self, state: LoopState) -> torch.Tensor:
        """Hidden summary [B, h] of `state` at its current depth (the controllers' hidden features)."""

    def flops(self) -> FlopsBreakdown:
        """Analytic FLOPs per sample of Entry, one Loop step, one Exit and one summary."""
