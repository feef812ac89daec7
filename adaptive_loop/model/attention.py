"""Multi-head attention with plain matmuls, optional MoE value/output projections, and masks.

    Attn(Q, K, V) = softmax(Q K^T / sqrt(d_h) + mask) V          (per head)

Written as `q @ k^T`, softmax, `@ v` rather than `scaled_dot_product_attention`, so
`FlopCounterMode` counts it. With `moe_attention` (LoopCTR: MoE in attention) the value
and output projections are top-k expert linears and one router decides, per token, which
experts give that token's value and which project that token's attention output; Q and K
stay dense. In cross-attention the key/value tokens and the query tokens are routed by the
same router, each token set on its own.

Masked keys get the most negative float before the softmax and the weights are multiplied
by the mask after it, so a query with no visible key (an empty history) gets a zero output
instead of NaN.

`forward` is `keys_values` (K, V and the key tokens' routing) followed by `attend` (queries
against those keys). The two halves are public so that keys computed once can serve many
query sets: the inference engine computes a user's sequence-side keys once and lets every
candidate's global tokens attend them (`adaptive_loop.model.shared_sequence`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from adaptive_loop.model.layers import normal_linear
from adaptive_loop.model.moe import AuxCollector, ExpertLinear, Router, Routing


@dataclass
class KeyValues:
    """Per-head keys and values of a token set, and its routing (MoE attention only).

    Attributes:
        k: [B, h, Tk, d_h] keys.
        v: [B, h, Tk, d_h] values.
        routing: router decisions of the key tokens (None without MoE); in self-attention the
            same routing projects the outputs.
    """

    k: torch.Tensor
    v: torch.Tensor
    routing: Routing | None = None


class Attention(nn.Module):
    """Multi-head (self or cross) attention; Q, K dense, V and O dense or MoE with a shared router."""

    def __init__(
        self,
        d: int,
        n_heads: int,
        *,
        moe: bool,
        n_experts: int,
        top_k: int,
        renormalize: bool,
        init_std: float,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.d = d
        self.n_heads = n_heads
        self.moe = moe
        self.q = normal_linear(d, d, init_std)
        self.k = normal_linear(d, d, init_std)
        if moe:
            self.router = Router(d, n_experts, top_k, renormalize, init_std)
            self.v: nn.Module = ExpertLinear(n_experts, d, d, init_std)
            self.o: nn.Module = ExpertLinear(n_experts, d, d, init_std)
        else:
            self.v = normal_linear(d, d, init_std)
            self.o = normal_linear(d, d, init_std)
        self.drop = nn.Dropout(dropout)

    def forward(
        self,
        x_q: torch.Tensor,
        x_kv: torch.Tensor | None,
        mask: torch.Tensor,
        valid_q: torch.Tensor,
        valid_kv: torch.Tensor,
        aux: AuxCollector | None = None,
    ) -> torch.Tensor:
        """Attend from `x_q` [B, Tq, d] to `x_kv` [B, Tk, d] (None = self-attention on `x_q`).

        `mask` [B or 1, 1, Tq, Tk] is True where a query may see a key; `valid_*` [B, T]
        mark non-padding tokens (router balance statistics only).
        """
        self_attn = x_kv is None
        kv = self.keys_values(x_q if self_attn else x_kv, valid_kv, aux)
        return self.attend(x_q, kv, mask, valid_q, aux, route_q=kv.routing if self_attn else None)

    def keys_values(self, x_kv: torch.Tensor, valid_kv: torch.Tensor, aux: AuxCollector | None = None) -> KeyValues:
        """Keys and values [B, h, Tk, d_h] of the tokens `x_kv` [B, Tk, d] (and their routing with MoE)."""
        b, tk, d = x_kv.shape
        flat_kv = x_kv.reshape(b * tk, d)
        route_kv = None
        if self.moe:
            route_kv = self.router(flat_kv, valid_kv.reshape(-1), aux)
            v = self.v(flat_kv, route_kv)
        else:
            v = self.v(flat_kv)
        return KeyValues(self._heads(self.k(x_kv), b, tk), self._heads(v, b, tk), route_kv)

    def attend(
        self,
        x_q: torch.Tensor,
        kv: KeyValues,
        mask: torch.Tensor,
        valid_q: torch.Tensor,
        aux: AuxCollector | None = None,
        route_q: Routing | None = None,
    ) -> torch.Tensor:
        """Queries `x_q` [B, Tq, d] against precomputed keys/values -> [B, Tq, d].

        With MoE the output projection is routed by `route_q`, or by a router call on the
        query tokens when it is None (cross-attention; per token the same decisions).
        """
        b, tq, d = x_q.shape
        if self.moe and route_q is None:
            route_q = self.router(x_q.reshape(b * tq, d), valid_q.reshape(-1), aux)
        q = self._heads(self.q(x_q), b, tq) * (1.0 / math.sqrt(self.d // self.n_heads))
        scores = q @ kv.k.transpose(-1, -2)  # [B, h, Tq, Tk]
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=-1) * mask  # rows without a visible key become 0
        out = self.drop(weights) @ kv.v  # [B, h, Tq, d_h]
        out = out.transpose(1, 2).reshape(b * tq, d)
        out = self.o(out, route_q) if self.moe else self.o(out)
        return out.reshape(b, tq, d)

    def _heads(self, x: torch.Tensor, b: int, t: int) -> torch.Tensor:
        return x.reshape(b, t, self.n_heads, self.d // self.n_heads).transpose(1, 2)


def structure_mask(n_seq: int, n_glb: int, mode: str, device: torch.device | None = None) -> torch.Tensor:
    """[T, T] bool: which token (row = query) may attend which (column = key), tokens ordered [seq, global].

    - 'seq_global': block-diagonal, each group attends only within itself (Entry's grouped attention).
    - 'prefix': sequence tokens attend sequence tokens; global tokens attend all (Loop block).
    - 'full': everything attends everything.
    """
    t = n_seq + n_glb
    is_seq = torch.arange(t, device=device) < n_seq
    if mode == "full":
        return torch.ones(t, t, dtype=torch.bool, device=device)
    if mode == "seq_global":
        return is_seq[:, None] == is_seq[None, :]
    if mode == "prefix":
        return ~is_seq[:, None] | is_seq[None, :]
    raise ValueError(f"unknown attention mask mode {mode!r}")


def attention_mask(structure: torch.Tensor, valid_kv: torch.Tensor) -> torch.Tensor:
    """Combine a [Tq, Tk] structure with key padding `valid_kv` [B, Tk] -> [B, 1, Tq, Tk]."""
    return structure[None, None] & valid_kv[:, None, None, :]
