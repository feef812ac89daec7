"""The training loss: process supervision, a BCE at every depth 0..L plus the MoE balance term.

Supervising depth 0 is what makes zero-loop inference work; supervising every depth is what
lets one set of weights answer at any depth, which the oracle and controllers then exploit.
The paper weighs the depths uniformly; `train.depth_loss_weights` gives them weights w_l
(`depth_weight_tensor`). `sharded_process_supervised_loss` is the same loss for one DDP
rank's share of a global batch.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from adaptive_loop.errors import ConfigError


def depth_weight_tensor(weights: Sequence[float], train_loops: int, device: torch.device) -> torch.Tensor | None:
    """`train.depth_loss_weights` as a tensor [L+1] on `device`, or None (uniform mean) when empty.

    Raises `ConfigError` unless there is one weight per trained depth 0..L.
    """
    if not weights:
        return None
    depths = train_loops + 1
    if len(weights) != depths:
        raise ConfigError(
            f"train.depth_loss_weights has {len(weights)} weights but the model is trained at {depths} depths "
            f"(0..{train_loops}); give one weight per depth or leave it empty"
        )
    return torch.tensor(list(weights), dtype=torch.float32, device=device)


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
    global batch's balance loss (see `global_router_statistics`). `depth_weights` as in
    `process_supervised_loss`.
    """
    target = labels.unsqueeze(1).expand_as(logits)
    if depth_weights is None:
        bce_sum = F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / logits.shape[1]
    else:
        per_depth = F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(dim=0)
        bce_sum = (per_depth * depth_weights).sum() / depth_weights.sum()
    return bce_sum * (world_size / max(global_rows, 1)) + aux_weight * aux_loss, bce_sum
