"""Loop block: one pre-norm transformer layer with prefix attention, applied to n residual streams.

Prefix attention (LoopCTR): sequence tokens attend only sequence tokens, global tokens
attend all tokens, padded keys are masked. So the sequence side never sees the candidate
and could be cached per user. With hyper-connections each sub-layer F is wrapped as

    h_in = A_m(H)^T H;  H <- B(H)^T F(h_in) + A_r(H)^T H          (see `hyper.py`)

without them (n = 1) it is the plain h <- h + F(h).
"""

from __future__ import annotations

import torch
from torch import nn

from adaptive_loop.model.attention import attention_mask, structure_mask
from adaptive_loop.model.hyper import HyperConnection, stream_major, token_major
from adaptive_loop.model.loopctr_config import LoopCTRConfig as ModelConfig
from adaptive_loop.model.moe import AuxCollector
from adaptive_loop.model.transformer import TransformerLayer


class LoopBlock(nn.Module):
    """Streams [B, T, n, d] -> [B, T, n, d]; `layer_index` sets the one-hot A_m init (e_{k mod n})."""

    def __init__(self, config: ModelConfig, layer_index: int = 0) -> None:
        super().__init__()
        self.layer = TransformerLayer(config)
        self.hyper = config.hyper_connections
        if self.hyper:
            d, n = config.d_model, config.hc_streams
            self.hc_attn = HyperConnection(d, n, 2 * layer_index, config.hc_dynamic, config.hc_scale_init)
            self.hc_ffn = HyperConnection(d, n, 2 * layer_index + 1, config.hc_dynamic, config.hc_scale_init)

    def forward(
        self, H: torch.Tensor, valid: torch.Tensor, n_seq: int, aux: AuxCollector | None = None
    ) -> torch.Tensor:
        """Streams H [B, T, n, d], valid [B, T] -> H [B, T, n, d].

        One prefix-attention transformer layer, through hyper-connections when they are on.
        """
        t = H.shape[1]
        mask = attention_mask(structure_mask(n_seq, t - n_seq, "prefix", H.device), valid)
        if not self.hyper:
            return self.layer(H.squeeze(-2), mask, valid, aux).unsqueeze(-2)
        Hs = stream_major(H)
        C = self.hc_attn.coefficients(Hs)
        y = self.layer.attention_sublayer(self.hc_attn.merge(Hs, C), mask, valid, aux)
        Hs = self.hc_attn.write(Hs, y, C)
        C = self.hc_ffn.coefficients(Hs)
        y = self.layer.ffn_sublayer(self.hc_ffn.merge(Hs, C), valid, aux)
        return token_major(self.hc_ffn.write(Hs, y, C))
