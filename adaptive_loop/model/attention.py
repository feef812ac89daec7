"""Multi-head attention with fused scaled-dot-product kernels, optional MoE value/output projections, and masks.

    Attn(Q, K, V) = softmax(Q K^T / sqrt(d_h) + mask) V          (per head)

The score/softmax/weighted-sum core runs in `torch.nn.functional.scaled_dot_product_attention`
(on CPU a fused flash-attention kernel, forward and backward), which was 1.5x faster than
separate matmul, mask, softmax and dropout ops on LoopCTR's [B, heads, T, T] maps and holds
no such map in memory. `FlopCounterMode` does not count that fused kernel on CPU; inside
`torch.nn.attention.sdpa_kernel(SDPBackend.MATH)` the same call decomposes into matmuls it
does count (the FLOP tests run that way). Dropout on the attention probabilities is off
by default (`model.attention_dropout: 0`; dropout acts on the sub-layer output instead, see
`transformer.py`); when set it goes through the kernel's `dropout_p`, which on CPU is slower.

A query with no visible key (an empty history) gets a zero output, not NaN: the kernel
returns zeros for fully masked rows (the tests check it for both kernels).

With `moe_attention` (LoopCTR: MoE in attention) the value and output projections are
top-k expert linears and one router decides, per token, which experts give that token's
value and which project that token's attention output; Q and K stay dense. In
cross-attention the key/value tokens and the query tokens are routed by the same router,
each token set on its own. The Q, K and router projections of one token set are one
matmul with the three weight matrices side by side (fewer, larger matmuls; the skinny
d x E router matmul alone was slow on CPU).

`forward` is `keys_values` (K, V and the key tokens' routing) followed by `attend` (queries
against those keys). The two halves are public so that keys computed once can serve many
query sets: the inference engine computes a user's sequence-side keys once and lets every
candidate's global tokens attend them (`adaptive_loop.model.shared_sequence`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
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
        self.dropout = float(dropout)
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
        if x_kv is not None:
            kv = self.keys_values(x_kv, valid_kv, aux)
            return self.attend(x_q, kv, mask, valid_q, aux)
        b, t, d = x_q.shape
        flat = x_q.reshape(b * t, d)
        q, k, logits = self._project(flat, (self.q, self.k))
        routing = self.router.route(logits, valid_kv.reshape(-1), aux) if self.moe else None
        v = self.v(flat, routing) if self.moe else self.v(flat)
        return self._attend_heads(q, self._heads(k, b, t), self._heads(v, b, t), mask, routing, b, t)

    def keys_values(self, x_kv: torch.Tensor, valid_kv: torch.Tensor, aux: AuxCollector | None = None) -> KeyValues:
        """Keys and values [B, h, Tk, d_h] of the tokens `x_kv` [B, Tk, d] (and their routing with MoE)."""
        b, tk, d = x_kv.shape
        flat = x_kv.reshape(b * tk, d)
        k, logits = self._project(flat, (self.k,))
        routing = self.router.route(logits, valid_kv.reshape(-1), aux) if self.moe else None
        v = self.v(flat, routing) if self.moe else self.v(flat)
        return KeyValues(self._heads(k, b, tk), self._heads(v, b, tk), routing)

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
        flat = x_q.reshape(b * tq, d)
        if self.moe and route_q is None:
            q, logits = self._project(flat, (self.q,))
            route_q = self.router.route(logits, valid_q.reshape(-1), aux)
        else:
            q = self.q(flat)
        return self._attend_heads(q, kv.k, kv.v, mask, route_q, b, tq)

    def _project(self, flat: torch.Tensor, linears: tuple[nn.Linear, ...]) -> tuple[torch.Tensor, ...]:
        """`flat` [N, d] through the given dense linears and, with MoE, the router: one matmul.

        Returns each linear's output [N, d] and then the router logits [N, E] (or None).
        """
        weights = [lin.weight for lin in linears]
        biases = [lin.bias for lin in linears]
        if self.moe:
            weights.append(self.router.proj.weight)
            biases.append(flat.new_zeros(self.router.n_experts))
        if len(weights) == 1:
            return F.linear(flat, weights[0], biases[0]), None
        out = F.linear(flat, torch.cat(weights), torch.cat(biases))
        parts = out.split([w.shape[0] for w in weights], dim=1)
        return (*parts, None) if not self.moe else parts

    def _attend_heads(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, route: Routing | None, b: int, tq: int
    ) -> torch.Tensor:
        """Fused attention of queries q [B*Tq, d] on per-head k, v; then the output projection -> [B, Tq, d]."""
        p = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(self._heads(q, b, tq), k, v, attn_mask=mask, dropout_p=p)  # [B, h, Tq, d_h]
        out = out.transpose(1, 2).reshape(b * tq, self.d)
        out = self.o(out, route) if self.moe else self.o(out)
        return out.reshape(b, tq, self.d)

    def _heads(self, x: torch.Tensor, b: int, t: int) -> torch.Tensor:
        return x.reshape(b, t, self.n_heads, self.d // self.n_heads).transpose(1, 2)


def structure_mask(n_seq: int, n_glb: int, mode: str, device: torch.device | None = None) -> torch.Tensor:
    """[T, T] bool: which token (row = query) may attend which (column = key), tokens ordered [seq, global].

    - 'seq_global': block-diagonal, each group attends only within itself (Entry's grouped attention).
    - 'seq_self': as 'seq_global', but a sequence token attends only itself (no lookup among events).
    - 'prefix': sequence tokens attend sequence tokens; global tokens attend all (Loop block).
    - 'full': everything attends everything.

    The masks are built once per shape and kept (every loop step and Exit asks for the same
    one; at small batches the few ops that build it are a visible share of a step). The
    returned tensor is shared: do not modify it in place.
    """
    if mode not in ("full", "seq_global", "seq_self", "prefix"):
        raise ValueError(f"unknown attention mask mode {mode!r}")
    return _structure_mask(n_seq, n_glb, mode, torch.device("cpu") if device is None else torch.device(device))


@functools.lru_cache(maxsize=64)
def _structure_mask(n_seq: int, n_glb: int, mode: str, device: torch.device) -> torch.Tensor:
    with torch.inference_mode(False):  # a normal tensor, usable in training even if first built in inference mode
        t = n_seq + n_glb
        is_seq = torch.arange(t, device=device) < n_seq
        if mode == "full":
            return torch.ones(t, t, dtype=torch.bool, device=device)
        if mode == "seq_global":
            return is_seq[:, None] == is_seq[None, :]
        if mode == "seq_self":
            same_group = is_seq[:, None] == is_seq[None, :]
            return same_group & (~is_seq[:, None] | torch.eye(t, dtype=torch.bool, device=device))
        return ~is_seq[:, None] | is_seq[None, :]


def attention_mask(structure: torch.Tensor, valid_kv: torch.Tensor) -> torch.Tensor:
    """Combine a [Tq, Tk] structure with key padding `valid_kv` [B, Tk] -> [B, 1, Tq, Tk]."""
    return structure[None, None] & valid_kv[:, None, None, :]
