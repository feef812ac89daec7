"""Analytic FLOPs per sample of the code as it runs, and parameter counts.

Convention (as `torch.utils.flop_counter.FlopCounterMode`): only matrix products count,
a multiply-add is 2 FLOPs, biases, softmax, norms, activations, masking, gathers and
other elementwise ops are excluded. Counts use the padded token counts the code really
computes (T_seq = the sequence's max_len, or m with compression), the full T x T score
matrix even where the mask hides entries, exactly k experts per token for MoE layers
(there is no token dropping), and every router. The test suite checks these numbers
against FlopCounterMode for each part and for full forwards, exactly; it runs attention
through the math kernel there, because FlopCounterMode does not see the fused CPU kernel
the model uses by default (see `attention.py`).

The one exception is `summary`, which has no matmul: it counts the additions of the
stream read-out and the token mean, so controllers that use summaries see a non-zero cost.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from adaptive_loop.model.api import FlopsBreakdown
from adaptive_loop.model.loopctr_config import LoopCTRConfig


@dataclass(frozen=True)
class TokenGeometry:
    """Token counts and widths of a LoopCTR/StackCTR instance (fixed by its FeatureSpec and config)."""

    n_seq: int  # sequence tokens after compression (padded count)
    seq_len: int  # raw padded sequence length (max_len), 0 without token sequences
    seq_in: int  # input width of the shared sequence projection
    glb_widths: tuple[int, ...]  # input width of each global token's projection
    compress: int  # m (0 = off)
    exit_cross: bool  # the Exit block has cross-attention

    @property
    def n_glb(self) -> int:
        return len(self.glb_widths)

    @property
    def n_tokens(self) -> int:
        return self.n_seq + self.n_glb


def attention_flops(tq: int, tk: int, d: int, moe: bool, n_experts: int, top_k: int, self_attention: bool) -> float:
    """Q, K projections; scores Q K^T and weights @ V (all heads: 2 Tq Tk d each); V and O (k experts if MoE); routers."""
    k = top_k if moe else 1
    flops = 2 * tq * d * d + 2 * tk * d * d  # Q, K
    flops += 2 * (2 * tq * tk * d)  # scores, weighted sum of values
    flops += k * (2 * tk * d * d + 2 * tq * d * d)  # V, O
    if moe:
        flops += 2 * d * n_experts * (tk if self_attention else tq + tk)  # one router call per token set
    return float(flops)


def ffn_flops(t: int, d: int, hidden: int, moe: bool, n_experts: int, top_k: int) -> float:
    """Two matmuls per expert applied (k per token with MoE, 1 dense) plus the router."""
    k = top_k if moe else 1
    flops = k * 2 * (2 * t * d * hidden)
    if moe:
        flops += 2 * t * d * n_experts
    return float(flops)


def hyper_connection_flops(t: int, d: int, n: int, dynamic: bool) -> float:
    """Merge A_m^T H (2 n d), residual mix A_r^T H (2 n^2 d), dynamic coefficients norm(H)[W_m|W_r|W_b] (2 n d (n+2)).

    The merge and the mix run as elementwise multiply-adds, not matmuls (faster on CPU, see
    `hyper.py`); they are counted all the same, so FlopCounterMode sees less than this.
    """
    flops = 2 * n * d + 2 * n * n * d
    if dynamic:
        flops += 2 * n * d * (n + 2)
    return float(t * flops)


def layer_flops(config: LoopCTRConfig, t: int) -> float:
    """One pre-norm transformer layer (self-attention + FFN) over t tokens."""
    c = config
    return attention_flops(t, t, c.d_model, c.moe_attention, c.n_experts, c.top_k, True) + ffn_flops(
        t, c.d_model, c.ffn_hidden, c.moe, c.n_experts, c.top_k
    )


def loopctr_flops(config: LoopCTRConfig, geom: TokenGeometry) -> FlopsBreakdown:
    """FLOPs per sample of Entry, one Loop step, one Exit evaluation and one summary."""
    c, d = config, config.d_model
    tokens = 2.0 * d * sum(geom.glb_widths) + 2.0 * geom.seq_len * geom.seq_in * d
    if geom.compress:
        tokens += attention_flops(geom.compress, geom.seq_len, d, False, 1, 1, False)
    entry = tokens + layer_flops(c, geom.n_tokens)
    loop = layer_flops(c, geom.n_tokens)
    if c.hyper_connections:
        loop += 2 * hyper_connection_flops(geom.n_tokens, d, c.hc_streams, c.hc_dynamic)
    tower = [geom.n_glb * d, *c.tower_hidden, 1]
    exit_ = float(sum(2 * a * b for a, b in zip(tower[:-1], tower[1:])))
    if geom.exit_cross and geom.n_seq > 0:
        exit_ += attention_flops(geom.n_glb, geom.n_seq, d, c.moe_attention, c.n_experts, c.top_k, False)
    summary_tokens = geom.n_glb if c.summary == "mean_global" else geom.n_tokens
    summary = float(c.streams * geom.n_tokens * d + summary_tokens * d)
    return FlopsBreakdown(entry=float(entry), loop=float(loop), exit=exit_, summary=summary)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(dense, embedding) parameter counts; embedding = weights of `nn.Embedding` tables."""
    embedding_ids = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    dense = embedding = 0
    for p in model.parameters():
        if id(p) in embedding_ids:
            embedding += p.numel()
        else:
            dense += p.numel()
    return dense, embedding
