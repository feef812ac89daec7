"""Training within a memory budget: a batch too large for `train.train_memory_mb` runs as micro-batches.

The activations autograd keeps for the backward pass grow with rows x tokens x width x
depths x streams x experts: about 0.8 MB per row for LoopCTR(L=3) at d_model 64 with a
30-event history, so a batch of 1,024 rows holds 0.8 GB before the backward pass starts and
about twice that at its peak. With a budget, the trainer measures the bytes one row adds to
the saved activations (`saved_bytes_per_row`: a forward pass of 64 and 128 rows of the first
batch, on a copy of the model, under `torch.autograd.graph.saved_tensors_hooks`; the slope
leaves out the weights every pass saves whatever its rows) and splits every larger batch
into near-equal micro-batches (`micro_batch_parts`). Each micro-batch's loss is weighted by
its share of the batch's rows and back-propagated at once; the optimiser steps once per
batch, so the per-row loss terms and their gradient are those of the whole batch.

Two batch statistics then come from each micro-batch instead of the whole batch: BatchNorm
normalises within a micro-batch (and updates its running statistics once per micro-batch),
and the MoE load-balancing loss (a product of batch means) is averaged over micro-batches.
Without a budget (the default) nothing changes. Measuring rather than estimating keeps one
mechanism for every model (LoopCTR, StackCTR, the field baselines, halting heads).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from adaptive_loop.data.batch import Batch

PROBE_ROWS = (64, 128)
MIN_MICRO_BATCH_ROWS = 2  # BatchNorm in training mode needs two rows


def saved_bytes(model: nn.Module, batch: Batch) -> int:
    """Bytes of the distinct tensor storages autograd saves for the backward pass of `model(batch)`."""
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(batch)
    return sum(storages.values())


def saved_bytes_per_row(model: nn.Module, batch: Batch) -> float:
    """The bytes one more row adds to a training forward pass's saved activations.

    Measured on a copy of `model` in training mode (its BatchNorm statistics and the random
    generators of the real run are left untouched) with the first rows of `batch`: the
    difference between two row counts, so the weights saved by every pass do not count.
    """
    small, large = (min(n, len(batch)) for n in PROBE_ROWS)
    if large <= small:
        small = max(1, large // 2)
    if large <= small:
        raise ValueError(f"a batch of {len(batch)} row(s) is too small to measure the activations per row")
    probe = copy.deepcopy(model).train()
    device = next(probe.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        sizes = [saved_bytes(probe, batch.subset(slice(0, n))) for n in (small, large)]
    return max((sizes[1] - sizes[0]) / (large - small), 1.0)


def micro_batch_rows(bytes_per_row: float, budget_mb: float | None) -> int | None:
    """Rows per micro-batch whose saved activations fit `budget_mb` (None: no budget, whole batches)."""
    if budget_mb is None:
        return None
    return max(MIN_MICRO_BATCH_ROWS, int(budget_mb * 2**20 // bytes_per_row))


def micro_batch_parts(batch: Batch, max_rows: int | None) -> list[Batch]:
    """`batch` itself when it fits `max_rows` (or without a limit), else near-equal consecutive parts.

    Near-equal parts (sizes differ by at most one row) never leave a 1-row remainder that
    BatchNorm could not normalise.
    """
    rows = len(batch)
    if max_rows is None or rows <= max_rows:
        return [batch]
    n_parts = math.ceil(rows / max_rows)
    bounds = [round(i * rows / n_parts) for i in range(n_parts + 1)]
    return [batch.subset(slice(lo, hi)) for lo, hi in zip(bounds[:-1], bounds[1:])]
