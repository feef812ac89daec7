"""Pre-norm transformer layer whose two sub-layers can also be called one at a time.

    h <- h + Attn(LN(h))      (masked self-attention, MoE V/O optional)
    h <- h + FFN(LN(h))       (dense or top-k MoE FFN)

The Entry block uses `forward` (plain residuals); the Loop block calls the sub-layers
through hyper-connections instead.
"""

from __future__ import annotations

import torch
from torch import nn

from adaptive_loop.model.attention import Attention
from adaptive_loop.model.dropout import Dropout
from adaptive_loop.model.ffn import FeedForward
from adaptive_loop.model.loopctr_config import LoopCTRConfig as ModelConfig
from adaptive_loop.model.moe import AuxCollector


class TransformerLayer(nn.Module):
    """Attention and FFN sub-layers y = F(LN(h)), each with its own LayerNorm (weight 1, bias 0)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        d = config.d_model
        self.attn_norm = nn.LayerNorm(d)
        self.attn = Attention(
            d,
            config.n_heads,
            moe=config.moe_attention,
            n_experts=config.n_experts,
            top_k=config.top_k,
            renormalize=config.router_renormalize,
            init_std=config.init_std,
            dropout=config.attention_dropout_rate,
        )
        self.ffn_norm = nn.LayerNorm(d)
        self.ffn = FeedForward(
            d,
            config.ffn_hidden,
            moe=config.moe,
            n_experts=config.n_experts,
            top_k=config.top_k,
            renormalize=config.router_renormalize,
            init_std=config.init_std,
        )
        self.drop = Dropout(config.sublayer_dropout_rate)

    def attention_sublayer(
        self, h: torch.Tensor, mask: torch.Tensor, valid: torch.Tensor, aux: AuxCollector | None
    ) -> torch.Tensor:
        """Attn(LN(h)) with dropout, without the residual: h [B, T, d], mask [B, 1, T, T] -> [B, T, d]."""
        return self.drop(self.attn(self.attn_norm(h), None, mask, valid, valid, aux))

    def ffn_sublayer(self, h: torch.Tensor, valid: torch.Tensor, aux: AuxCollector | None) -> torch.Tensor:
        """FFN(LN(h)) with dropout, without the residual: h [B, T, d] -> [B, T, d]."""
        return self.drop(self.ffn(self.ffn_norm(h), valid, aux))

    def forward(
        self, h: torch.Tensor, mask: torch.Tensor, valid: torch.Tensor, aux: AuxCollector | None = None
    ) -> torch.Tensor:
        """h [B, T, d], mask [B, 1, T, T], valid [B, T] -> [B, T, d] with both residual sub-layers."""
        h = h + self.attention_sublayer(h, mask, valid, aux)
        return h + self.ffn_sublayer(h, valid, aux)
