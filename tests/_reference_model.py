"""A plain re-statement of LoopCTR's forward maths, for checking the optimised model code against.

Every formula is written the direct way, with the parameters of a given `LoopCTR` (or
StackCTR): attention as softmax(Q K^T / sqrt(d_h), masked) V with explicit matmuls, MoE
layers by running every expert on every token and combining the router's top-k choices,
hyper-connections by the broadcast formulas of the paper. Eval mode only (no dropout).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from adaptive_loop.model.attention import Attention, attention_mask, structure_mask
from adaptive_loop.model.hyper import HyperConnection
from adaptive_loop.model.moe import ExpertFFN, ExpertLinear, Router
from adaptive_loop.model.transformer import TransformerLayer


def route(router: Router, x: torch.Tensor) -> torch.Tensor:
    """Dense [N, E] combination weights: the (renormalised) top-k router probabilities, 0 elsewhere."""
    probs = torch.softmax(x @ router.proj.weight.T, dim=-1)
    top_p, experts = probs.topk(router.top_k, dim=-1)
    weights = top_p / top_p.sum(-1, keepdim=True) if router.renormalize else top_p
    return torch.zeros_like(probs).scatter(1, experts, weights)


def expert_linear(layer: ExpertLinear, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    every = torch.einsum("nd,edo->neo", x, layer.weight) + layer.bias  # every expert on every token
    return (every * w.unsqueeze(-1)).sum(1)


def expert_ffn(layer: ExpertFFN, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    hidden = F.gelu(torch.einsum("nd,edh->neh", x, layer.w1) + layer.b1)
    every = torch.einsum("neh,ehd->ned", hidden, layer.w2) + layer.b2
    return (every * w.unsqueeze(-1)).sum(1)


def attention(attn: Attention, x_q: torch.Tensor, x_kv: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax attention with explicit matmuls; masked keys get weight 0, rows without keys output 0 (before O)."""
    b, tq, d = x_q.shape
    tk = x_kv.shape[1]
    h, dh = attn.n_heads, d // attn.n_heads
    fq, fkv = x_q.reshape(b * tq, d), x_kv.reshape(b * tk, d)
    if attn.moe:
        w_kv, w_q = route(attn.router, fkv), route(attn.router, fq)
        v = expert_linear(attn.v, fkv, w_kv)
    else:
        v = attn.v(fkv)
    q = attn.q(fq).reshape(b, tq, h, dh).transpose(1, 2)
    k = attn.k(fkv).reshape(b, tk, h, dh).transpose(1, 2)
    v = v.reshape(b, tk, h, dh).transpose(1, 2)
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(dh)
    scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.nan_to_num(torch.softmax(scores, dim=-1), nan=0.0)  # a row with no visible key -> 0
    out = (weights @ v).transpose(1, 2).reshape(b * tq, d)
    out = expert_linear(attn.o, out, w_q) if attn.moe else attn.o(out)
    return out.reshape(b, tq, d)


def ffn(layer: TransformerLayer, x: torch.Tensor) -> torch.Tensor:
    f = layer.ffn
    b, t, d = x.shape
    if not f.moe:
        return f.fc2(F.gelu(f.fc1(x)))
    flat = x.reshape(b * t, d)
    return expert_ffn(f.experts, flat, route(f.router, flat)).reshape(b, t, d)


def attention_sublayer(layer: TransformerLayer, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    x = layer.attn_norm(h)
    return attention(layer.attn, x, x, mask)


def ffn_sublayer(layer: TransformerLayer, h: torch.Tensor) -> torch.Tensor:
    return ffn(layer, layer.ffn_norm(h))


def hyper_coefficients(hc: HyperConnection, H: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """H [B, T, n, d] -> A_m [B, T, n], A_r [B, T, n, n], B [B, T, n] (the paper's formulas, token-major)."""
    if not hc.dynamic:
        return hc.static_m, hc.static_r, hc.static_b
    t = torch.tanh(F.layer_norm(H, H.shape[-1:], hc.norm.weight, hc.norm.bias, hc.norm.eps) @ hc.weight)
    n = hc.n
    return hc.static_m + hc.scale_a * t[..., 0], hc.static_r + hc.scale_a * t[..., 1 : n + 1], hc.static_b + hc.scale_b * t[..., n + 1]


def hyper_sublayer(hc: HyperConnection, H: torch.Tensor, sublayer) -> torch.Tensor:
    a_m, a_r, b = hyper_coefficients(hc, H)
    y = sublayer((a_m.unsqueeze(-1) * H).sum(dim=-2))
    mixed = (a_r.unsqueeze(-1) * H.unsqueeze(-2)).sum(dim=-3)
    return b.unsqueeze(-1) * y.unsqueeze(-2) + mixed


def loop_block(block, H: torch.Tensor, valid: torch.Tensor, n_seq: int) -> torch.Tensor:
    t = H.shape[1]
    mask = attention_mask(structure_mask(n_seq, t - n_seq, "prefix"), valid)
    layer = block.layer
    if not block.hyper:
        h = H.squeeze(-2)
        h = h + attention_sublayer(layer, h, mask)
        return (h + ffn_sublayer(layer, h)).unsqueeze(-2)
    H = hyper_sublayer(block.hc_attn, H, lambda x: attention_sublayer(layer, x, mask))
    return hyper_sublayer(block.hc_ffn, H, lambda x: ffn_sublayer(layer, x))


def exit_logit(model, h: torch.Tensor, valid: torch.Tensor, n_seq: int) -> torch.Tensor:
    block = model.exit_block
    s, g = h[:, :n_seq], h[:, n_seq:]
    if block.cross is not None and n_seq > 0:
        mask = valid[:, :n_seq][:, None, None, :]
        g = g + attention(block.cross, block.norm_q(g), block.norm_kv(s), mask)
    return block.tower(block.final_norm(g).flatten(1)).squeeze(-1)


def reference_forward(model, batch, depth: int) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """(logits [B, depth + 1], summaries [B, depth + 1, d], streams [B, T, n, d] per depth) of an eval-mode model."""
    config = model.config
    tokens = model.entry.tokenizer(batch)
    t = tokens.x.shape[1]
    layer = model.entry.layer
    mask = attention_mask(structure_mask(tokens.n_seq, t - tokens.n_seq, model.entry.groups), tokens.valid)
    h = tokens.x + attention_sublayer(layer, tokens.x, mask)
    h = h + ffn_sublayer(layer, h)
    H = h.unsqueeze(-2).expand(*h.shape[:-1], config.streams, h.shape[-1])
    logits, summaries, states = [], [], []
    for step in range(depth + 1):
        if step:
            block = model.loops[0] if model.shared_loop else model.loops[step - 1]
            H = loop_block(block, H, tokens.valid, tokens.n_seq)
        read = H.mean(-2) if config.hc_readout == "mean" else H.sum(-2)
        logits.append(exit_logit(model, read, tokens.valid, tokens.n_seq))
        if config.summary == "mean_global":
            summaries.append(read[:, tokens.n_seq :].mean(1))
        else:
            w = tokens.valid.to(read.dtype).unsqueeze(-1)
            summaries.append((read * w).sum(1) / w.sum(1).clamp_min(1.0))
        states.append(H)
    return torch.stack(logits, 1), torch.stack(summaries, 1), states
