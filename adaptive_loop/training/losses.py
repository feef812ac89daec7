"""The training loss: process supervision, a BCE at every depth 0..L plus the MoE balance term.

Supervising depth 0 is what makes zero-loop inference work; supervising every depth is what
lets one set of weights answer at any depth, which the oracle and controllers then exploit.
`sharded_process_supervised_loss` is the same loss for one DDP rank's share of a global batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def process_supervised_loss(
    logits: torch.Tensor, labels: torch.Tensor, aux_loss: torch.Tensor, aux_weight: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(total loss, mean BCE over depths): 1/(L+1) sum_l BCE(logit_l, y) + aux_weight * aux."""
    target = labels.unsqueeze(1).expand_as(logits)
    bce = F.binary_cross_entropy_with_logits(logits, target)
    return bce + aux_weight * aux_loss, bce


def sharded_process_supervised_loss(
    logits: torch.Tensor, labels: torch.Tensor, aux_loss: torch.Tensor, aux_weight: float,
    global_rows: int, world_size: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss one DDP rank backpropagates, and its summed per-row BCE (for logging).

    A rank holds n_r of the N rows of the global batch. Its BCE sum is scaled by W / N, so
    that DDP's gradient average (1/W) sum_r equals the gradient of the global mean BCE
    whatever the shard sizes (an empty shard contributes 0). `aux_loss` is already the
    global batch's balance loss (see `global_router_statistics`).
    """
    target = labels.unsqueeze(1).expand_as(logits)
    bce_sum = F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / logits.shape[1]
    return bce_sum * (world_size / max(global_rows, 1)) + aux_weight * aux_loss, bce_sum
