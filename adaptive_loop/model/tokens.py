"""From a `Batch` to tokens: global tokens by heterogeneous projection, sequence tokens, padding masks.

Global token j (HiFormer / OneTrans / HHFT "heterogeneous feature projection"):

    g_j = W_j concat(e_f for f in group j) + b_j,   W_j ~ Xavier-uniform, b_j = 0 [ours]

where a categorical field contributes its embedding, a pooled sequence the mean of its
non-padding embeddings, and a numeric field its (standardised) scalar value. Default
groups [ours]: one token per categorical field, all numeric fields together as one token,
one token per pooled sequence; `spec.token_groups` overrides that for the fields it names.
Tokens with equal input width share one batched matmul (bmm over tokens).

Sequence token t (one per history event) [ours]:

    s_t = W_s concat(e of every token sequence at event t) + b_s + p_t,   p_t ~ N(0, init_std^2)

Optionally m learned queries compress the sequence by cross-attention (q_i ~ N(0, init_std^2)),
giving m sequence tokens that are valid iff the history has at least one event.
Token order is [sequence tokens, global tokens]; `valid` is False at padding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from adaptive_loop.data.batch import Batch
from adaptive_loop.data.spec import PAD_ID, FeatureSpec
from adaptive_loop.errors import ConfigError
from adaptive_loop.model.attention import Attention
from adaptive_loop.model.loopctr_config import LoopCTRConfig as ModelConfig
from adaptive_loop.model.embeddings import FeatureEmbeddings

Part = tuple[str, int]  # ("cat", column) | ("num", column) | ("pool", index into spec.pooled_sequences)


@dataclass
class Tokens:
    """Tokens of a batch: `x` [B, T, d] ordered [sequence, global], `valid` [B, T] bool."""

    x: torch.Tensor
    valid: torch.Tensor
    n_seq: int


def resolve_groups(spec: FeatureSpec, use_spec_groups: bool = True) -> list[list[Part]]:
    """Field groups of the global tokens (see module docstring); ConfigError on unknown or repeated names.

    `use_spec_groups=False` (config `token_groups: per_field`) ignores `spec.token_groups`:
    one token per categorical field and per pooled sequence, the numerics together.
    """
    where: dict[str, Part] = {}
    for i, f in enumerate(spec.categorical):
        where[f.name] = ("cat", i)
    for i, f in enumerate(spec.numeric):
        where[f.name] = ("num", i)
    for i, s in enumerate(spec.pooled_sequences):
        where[s.name] = ("pool", i)
    token_seqs = {s.name for s in spec.token_sequences}
    groups: list[list[Part]] = []
    used: set[str] = set()
    for group in (spec.token_groups or ()) if use_spec_groups else ():
        parts = []
        for name in group:
            if name in token_seqs:
                raise ConfigError(f"token_groups: {name!r} is a token sequence (pooled=False); it forms the sequence tokens, not a global token")
            if name not in where:
                raise ConfigError(f"token_groups: unknown field {name!r}; fields: {', '.join(where)}")
            if name in used:
                raise ConfigError(f"token_groups: field {name!r} appears in more than one group")
            used.add(name)
            parts.append(where[name])
        if parts:
            groups.append(parts)
    groups += [[where[f.name]] for f in spec.categorical if f.name not in used]
    numeric = [where[f.name] for f in spec.numeric if f.name not in used]
    if numeric:
        groups.append(numeric)
    groups += [[where[s.name]] for s in spec.pooled_sequences if s.name not in used]
    if not groups:
        raise ConfigError("the feature spec has no categorical, numeric or pooled sequence field: no global token to predict from")
    return groups


class GlobalTokens(nn.Module):
    """Heterogeneous projection g_j = W_j concat(e_f) + b_j, batched over tokens of equal input width."""

    def __init__(self, spec: FeatureSpec, embed_dim: int, d: int, use_spec_groups: bool = True) -> None:
        super().__init__()
        self.groups = resolve_groups(spec, use_spec_groups)
        self.pooled_names = [s.name for s in spec.pooled_sequences]
        widths = [sum(1 if kind == "num" else embed_dim for kind, _ in g) for g in self.groups]
        buckets: dict[int, list[int]] = {}
        for j, w in enumerate(widths):
            buckets.setdefault(w, []).append(j)
        self.buckets = list(buckets.items())  # (width, token indices); output order = bucket order
        self.widths = widths
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for w, members in self.buckets:
            bound = math.sqrt(6.0 / (w + d))  # Xavier-uniform per token
            self.weights.append(nn.Parameter(torch.empty(len(members), w, d).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.zeros(len(members), d)))
        self.n_tokens = len(self.groups)

    def forward(self, cat_emb: torch.Tensor, num: torch.Tensor, pooled: list[torch.Tensor]) -> torch.Tensor:
        """cat_emb [B, n_cat, e], num [B, n_num], pooled: [B, e] per pooled sequence -> [B, T_glb, d]."""
        out = []
        for (w, members), weight, bias in zip(self.buckets, self.weights, self.biases):
            inputs = torch.stack([self._input(self.groups[j], cat_emb, num, pooled) for j in members], dim=0)
            out.append((torch.bmm(inputs, weight) + bias.unsqueeze(1)).transpose(0, 1))  # [B, n_b, d]
        return torch.cat(out, dim=1)

    @staticmethod
    def _input(group: list[Part], cat_emb: torch.Tensor, num: torch.Tensor, pooled: list[torch.Tensor]) -> torch.Tensor:
        parts = []
        for kind, i in group:
            if kind == "cat":
                parts.append(cat_emb[:, i])
            elif kind == "num":
                parts.append(num[:, i : i + 1])
            else:
                parts.append(pooled[i])
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)

    def flops(self, d: int) -> float:
        """FLOPs per sample of the global-token projections into width `d` (2 * input width * d per token)."""
        return float(sum(2 * w * d for w in self.widths))


class SequenceCompressor(nn.Module):
    """m learned queries cross-attend the sequence tokens: m output tokens per sample."""

    def __init__(self, m: int, config: ModelConfig) -> None:
        super().__init__()
        d = config.d_model
        self.queries = nn.Parameter(torch.randn(m, d) * config.init_std)
        self.norm = nn.LayerNorm(d)
        self.attn = Attention(d, config.n_heads, moe=False, n_experts=1, top_k=1, renormalize=True, init_std=config.init_std)
        self.m = m

    def forward(self, s: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """s [B, T_seq, d], valid [B, T_seq] -> (tokens [B, m, d], validity [B, m]).

        The m outputs are invalid for rows with an empty sequence.
        """
        b = s.shape[0]
        # repeat, not expand: a view of a parameter made under no_grad trips FlopCounterMode's module hooks
        queries = self.queries.unsqueeze(0).repeat(b, 1, 1)
        mask = valid[:, None, None, :]
        q_valid = valid.any(dim=1, keepdim=True).expand(b, self.m)
        return self.attn(queries, self.norm(s), mask, q_valid, valid), q_valid


class Tokenizer(nn.Module):
    """Embeddings -> tokens [B, T_seq + T_glb, d] with validity mask."""

    def __init__(self, spec: FeatureSpec, config: ModelConfig) -> None:
        super().__init__()
        e, d = config.embed_dim, config.d_model
        self.embeddings = FeatureEmbeddings(spec, e, config.embed_init_std)
        self.global_tokens = GlobalTokens(spec, e, d, use_spec_groups=config.token_groups == "schema")
        self.token_seqs = [s.name for s in spec.token_sequences]
        self.pooled_seqs = [s.name for s in spec.pooled_sequences]
        lengths = {s.max_len for s in spec.token_sequences}
        if len(lengths) > 1:
            raise ConfigError(
                "token sequences must be aligned event by event and share max_len; got "
                + ", ".join(f"{s.name}={s.max_len}" for s in spec.token_sequences)
            )
        self.max_len = lengths.pop() if lengths else 0
        self.seq_in = len(self.token_seqs) * e
        if self.token_seqs:
            self.seq_proj = nn.Linear(self.seq_in, d)  # W_s: Xavier-uniform, b_s = 0 [ours]
            nn.init.xavier_uniform_(self.seq_proj.weight)
            nn.init.zeros_(self.seq_proj.bias)
            self.positions = nn.Parameter(torch.randn(self.max_len, d) * config.init_std)
        m = config.seq_compress_queries
        self.compressor = SequenceCompressor(m, config) if (m > 0 and self.token_seqs) else None
        self.n_glb = self.global_tokens.n_tokens
        self.n_seq = (m if self.compressor is not None else self.max_len) if self.token_seqs else 0

    def forward(self, batch: Batch) -> Tokens:
        """Batch -> `Tokens`: x [B, T_seq + T_glb, d] ordered [sequence, global], valid [B, T], n_seq."""
        g = self.global_part(batch)
        b = g.shape[0]
        g_valid = torch.ones(b, g.shape[1], dtype=torch.bool, device=g.device)
        if not self.token_seqs:
            return Tokens(g, g_valid, 0)
        s, valid = self.sequence_part(batch)
        return Tokens(torch.cat([s, g], dim=1), torch.cat([valid, g_valid], dim=1), s.shape[1])

    def global_part(self, batch: Batch) -> torch.Tensor:
        """Global tokens [B, T_glb, d] (categorical fields, numerics, pooled sequences)."""
        emb = self.embeddings
        cat_emb = emb.categorical(batch.cat)
        pooled = [emb.pooled(name, batch.seq[name]) for name in self.pooled_seqs]
        return self.global_tokens(cat_emb, batch.num, pooled)

    def sequence_part(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Sequence tokens [B, T_seq, d] and their validity [B, T_seq]; they read only the token
        sequences, never the candidate (needs at least one token sequence)."""
        emb = self.embeddings
        ids = [batch.seq[name] for name in self.token_seqs]
        length = ids[0].shape[1]
        if length > self.max_len:
            raise ConfigError(f"sequence {self.token_seqs[0]!r} has {length} columns, more than its max_len {self.max_len}")
        valid = torch.stack([i != PAD_ID for i in ids]).any(dim=0)  # [B, len]
        events = torch.cat([emb.sequence(name, i) for name, i in zip(self.token_seqs, ids)], dim=-1)
        s = self.seq_proj(events) + self.positions[:length]
        if self.compressor is not None:
            s, valid = self.compressor(s, valid)
        return s, valid
