"""Entry block: heterogeneous projection into tokens + one grouped self-attention layer.

    tokens = Tokenizer(x);  h0 = TransformerLayer(tokens, mask = group structure & key padding)

The group structure (config `entry_groups`, default block-diagonal 'seq_global') keeps the
sequence tokens independent of the candidate item, as the Loop block's prefix mask does.
"""

from __future__ import annotations

import torch
from torch import nn

from adaptive_loop.data.batch import Batch
from adaptive_loop.data.spec import FeatureSpec
from adaptive_loop.model.attention import attention_mask, structure_mask
from adaptive_loop.model.loopctr_config import LoopCTRConfig as ModelConfig
from adaptive_loop.model.moe import AuxCollector
from adaptive_loop.model.tokens import Tokenizer
from adaptive_loop.model.transformer import TransformerLayer


class EntryBlock(nn.Module):
    """Batch -> (h0 [B, T, d], valid [B, T], n_seq)."""

    def __init__(self, spec: FeatureSpec, config: ModelConfig) -> None:
        super().__init__()
        self.tokenizer = Tokenizer(spec, config)
        self.layer = TransformerLayer(config)
        self.groups = config.entry_groups

    def forward(self, batch: Batch, aux: AuxCollector | None = None) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Batch -> (h0 [B, T, d], valid [B, T], n_seq).

        Tokens after one self-attention layer masked by `entry_groups` and key padding.
        """
        tokens = self.tokenizer(batch)
        n_glb = tokens.x.shape[1] - tokens.n_seq
        mask = attention_mask(structure_mask(tokens.n_seq, n_glb, self.groups, tokens.x.device), tokens.valid)
        return self.layer(tokens.x, mask, tokens.valid, aux), tokens.valid, tokens.n_seq
