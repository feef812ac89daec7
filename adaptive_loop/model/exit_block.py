"""Exit block, shared by every depth: cross-attention to the sequence, then the task tower.

    G' = G + CrossAttn(Q = LN(G), K = V = LN(S))     (skipped without sequence tokens)
    logit = MLP(concat_j LN(G'_j))

The final per-token LayerNorm before the tower is the usual closing norm of a pre-norm
stack [ours]. An empty history gives a zero cross-attention output (G' = G).
"""

from __future__ import annotations

import torch
from torch import nn

from adaptive_loop.model.attention import Attention
from adaptive_loop.model.loopctr_config import LoopCTRConfig as ModelConfig
from adaptive_loop.model.layers import MLP
from adaptive_loop.model.moe import AuxCollector


class ExitBlock(nn.Module):
    """State [B, T, d] (tokens ordered [seq, global]) -> logit [B]."""

    def __init__(self, config: ModelConfig, n_glb: int, has_seq: bool) -> None:
        super().__init__()
        d = config.d_model
        self.cross: Attention | None = None
        if has_seq and config.exit_cross_attention:
            self.norm_q = nn.LayerNorm(d)
            self.norm_kv = nn.LayerNorm(d)
            self.cross = Attention(
                d,
                config.n_heads,
                moe=config.moe_attention,
                n_experts=config.n_experts,
                top_k=config.top_k,
                renormalize=config.router_renormalize,
                init_std=config.init_std,
                dropout=config.attention_dropout_rate,
            )
        self.final_norm = nn.LayerNorm(d)
        self.tower = MLP(n_glb * d, config.tower_hidden, 1, config.tower_dropout_rate,
                         batch_norm=config.batch_norm, init=config.dense_init)

    def forward(
        self, h: torch.Tensor, valid: torch.Tensor, n_seq: int, aux: AuxCollector | None = None
    ) -> torch.Tensor:
        """h [B, T, d] (tokens [seq, global]), valid [B, T] -> logit [B].

        The cross-attention to the sequence runs only when there are sequence tokens.
        """
        s, g = h[:, :n_seq], h[:, n_seq:]
        if self.cross is not None and n_seq > 0:
            s_valid = valid[:, :n_seq]
            g_valid = valid[:, n_seq:]
            mask = s_valid[:, None, None, :]
            g = g + self.cross(self.norm_q(g), self.norm_kv(s), mask, g_valid, s_valid, aux)
        return self.tower(self.final_norm(g).flatten(1)).squeeze(-1)
