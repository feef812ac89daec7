"""Position-wise feed-forward sub-layer: one dense FFN, or a top-k mixture of expert FFNs.

    dense: FFN(x) = GELU(x W1 + b1) W2 + b2
    MoE:   FFN(x) = sum_{e in topk(x)} w_e(x) FFN_e(x)      (LoopCTR: MoE in every block)

With `moe` off the single FFN has the width of one expert, so "MoE off" keeps the per-token
FLOPs of a top-1 model (our choice for the ablation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from adaptive_loop.model.layers import normal_linear
from adaptive_loop.model.moe import AuxCollector, ExpertFFN, Router


class FeedForward(nn.Module):
    """Dense or MoE FFN over tokens [B, T, d]; weights ~ N(0, init_std^2), biases 0."""

    def __init__(
        self,
        d: int,
        hidden: int,
        *,
        moe: bool,
        n_experts: int,
        top_k: int,
        renormalize: bool,
        init_std: float,
    ) -> None:
        super().__init__()
        self.moe = moe
        if moe:
            self.router = Router(d, n_experts, top_k, renormalize, init_std)
            self.experts = ExpertFFN(n_experts, d, hidden, init_std)
        else:
            self.fc1 = normal_linear(d, hidden, init_std)
            self.fc2 = normal_linear(hidden, d, init_std)

    def forward(self, x: torch.Tensor, valid: torch.Tensor, aux: AuxCollector | None = None) -> torch.Tensor:
        """x [B, T, d] -> [B, T, d].

        `valid` [B, T] keeps padding tokens out of the MoE balance statistics collected in `aux`.
        """
        if not self.moe:
            return self.fc2(F.gelu(self.fc1(x)))
        b, t, d = x.shape
        flat = x.reshape(b * t, d)
        routing = self.router(flat, valid.reshape(-1), aux)
        return self.experts(flat, routing).reshape(b, t, d)
