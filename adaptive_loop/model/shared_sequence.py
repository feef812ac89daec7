"""Sequence-side sharing: compute a user's sequence tokens once for all of its candidates.

In LoopCTR the sequence tokens never see the candidate: the Entry's grouped attention
('seq_global', or 'prefix') and the Loop block's prefix attention let sequence tokens
attend sequence tokens only, every other part (hyper-connections, MoE routing, norms, FFN)
works per token, and the Exit only reads them as cross-attention keys. So rows whose
token-sequence inputs are *exactly equal* (one user scored against many candidates) have
identical sequence-side states at every depth, and the candidate only changes the global
tokens. `SharedSequenceModel` exploits that:

- `enter` groups the rows of a batch by their token-sequence ids (`torch.unique` over
  the id rows: rows share a state only when every id is equal), runs the sequence part of
  the tokenizer and the Entry layer once per distinct sequence and the global part per row;
- `loop_step` advances the distinct sequences with the Loop block on their own (their
  attention only ever sees sequence keys), computes their keys/values once, and lets every
  row's global tokens attend [its sequence's keys, its own global keys];
- `exit` computes the Exit's cross-attention keys/values once per distinct sequence.

It implements the step-wise `DepthModel` API (`enter`, `loop_step`, `exit`, `summarize`,
`flops`, row-subsettable states), so the engine drives it like the model itself. Results
equal the plain model's up to float rounding (different matmul shapes may round
differently in the last bit; `tests/test_engine_sharing.py` checks the difference is below
1e-5). `flops()` reports the model's per-row FLOPs: sharing only makes the real work
smaller than that figure (the sequence side is paid once per distinct sequence, not per row).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from adaptive_loop.data.batch import Batch
from adaptive_loop.errors import ConfigError
from adaptive_loop.model.api import FlopsBreakdown
from adaptive_loop.model.attention import KeyValues
from adaptive_loop.model.embeddings import masked_mean
from adaptive_loop.model.hyper import expand_streams, read_out, stream_major, token_major
from adaptive_loop.model.loopctr import LoopCTR
from adaptive_loop.model.transformer import TransformerLayer

SHAREABLE_ENTRY_GROUPS = ("seq_global", "prefix")


@dataclass
class SharedSequenceState:
    """Per-row global-token streams plus one sequence-token state per distinct sequence.

    Attributes:
        seq: [U, T_seq, n, d] streams of the U distinct sequences.
        seq_valid: [U, T_seq] non-padding sequence tokens.
        glb: [B, T_glb, n, d] streams of every row's global tokens.
        owner: [B] int64 index of each row's sequence in `seq`.
        depth: loop steps applied so far.
    """

    seq: torch.Tensor
    seq_valid: torch.Tensor
    glb: torch.Tensor
    owner: torch.Tensor
    depth: int = 0

    def subset(self, rows: torch.Tensor | slice) -> "SharedSequenceState":
        """The state of `rows` (index, boolean mask or slice); sequences no row uses are dropped."""
        glb, owner = self.glb[rows], self.owner[rows]
        used, remap = torch.unique(owner, return_inverse=True)
        if used.numel() == self.seq.shape[0]:
            return SharedSequenceState(self.seq, self.seq_valid, glb, owner, self.depth)
        return SharedSequenceState(self.seq[used], self.seq_valid[used], glb, remap, self.depth)

    @property
    def n_sequences(self) -> int:
        return int(self.seq.shape[0])

    def __len__(self) -> int:
        return int(self.glb.shape[0])


def sequence_key(model: LoopCTR, batch: Batch) -> torch.Tensor:
    """[B, L] int64: every token-sequence id of each row side by side (the sharing key)."""
    names = model.entry.tokenizer.token_seqs
    return torch.cat([batch.seq[name] for name in names], dim=1)


def group_rows(key: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(representative row of each distinct key [U], owner of each row [B]); exact comparison."""
    _, owner = torch.unique(key, dim=0, return_inverse=True)
    n_groups = int(owner.max().item()) + 1 if owner.numel() else 0
    rows = torch.arange(owner.numel(), device=key.device)
    first = torch.full((n_groups,), owner.numel(), dtype=torch.long, device=key.device)
    first = first.scatter_reduce(0, owner, rows, reduce="amin")
    return first, owner


class SharedSequenceModel:
    """Step-wise API of a `LoopCTR` computing the sequence side once per distinct sequence.

    Raises `ConfigError` for models where sharing would change results: no token
    sequence, an Entry whose sequence tokens see the candidate (`entry_groups='full'`),
    or a model that is not a LoopCTR/StackCTR sandwich.
    """

    def __init__(self, model: LoopCTR) -> None:
        if not isinstance(model, LoopCTR):
            raise ConfigError(f"sequence sharing needs a LoopCTR or StackCTR model, got {type(model).__name__}")
        tok = model.entry.tokenizer
        if not tok.token_seqs:
            raise ConfigError("sequence sharing needs a model with sequence tokens (a token sequence in the schema)")
        if model.entry.groups not in SHAREABLE_ENTRY_GROUPS:
            raise ConfigError(
                f"sequence sharing needs model.entry_groups in {SHAREABLE_ENTRY_GROUPS} (the sequence side must not "
                f"see the candidate); this model uses {model.entry.groups!r}"
            )
        self.model = model
        self.train_loops = model.train_loops
        self.hidden_dim = model.hidden_dim
        self.config = model.config

    # ------------------------------------------------------------------ DepthModel API
    def flops(self) -> FlopsBreakdown:
        """The wrapped model's per-row FLOPs (an upper bound on the work sharing really does)."""
        return self.model.flops()

    def enter(self, batch: Batch) -> SharedSequenceState:
        """Depth-0 state of `batch`.

        The Entry runs once per distinct token sequence, and per row for the global tokens.
        """
        model = self.model
        tok = model.entry.tokenizer
        first, owner = group_rows(sequence_key(model, batch))
        s, s_valid = tok.sequence_part(batch.subset(first))
        g = tok.global_part(batch)
        glb_sees_seq = model.entry.groups == "prefix"
        hs, hg = _split_layer(model.entry.layer, s, s_valid, g, owner, glb_sees_seq)
        n = model.config.streams
        return SharedSequenceState(expand_streams(hs, n), s_valid, expand_streams(hg, n), owner, 0)

    def loop_step(self, state: SharedSequenceState) -> SharedSequenceState:
        """One more Loop step (depth + 1), the sequence side computed once per distinct sequence."""
        model = self.model
        model._check_depth(state.depth + 1)
        block = model.loops[0] if model.shared_loop else model.loops[state.depth]
        seq, glb = state.seq, state.glb
        if not block.hyper:
            hs, hg = _split_layer(block.layer, seq.squeeze(-2), state.seq_valid, glb.squeeze(-2), state.owner, True)
            return SharedSequenceState(hs.unsqueeze(-2), state.seq_valid, hg.unsqueeze(-2), state.owner, state.depth + 1)
        hc = block.hc_attn
        seq, glb = stream_major(seq), stream_major(glb)
        cs, cg = hc.coefficients(seq), hc.coefficients(glb)
        ys, yg = _split_attention(block.layer, hc.merge(seq, cs), state.seq_valid, hc.merge(glb, cg), state.owner, True)
        seq, glb = hc.write(seq, ys, cs), hc.write(glb, yg, cg)
        seq = token_major(_ffn_hyper(block, seq, state.seq_valid))
        glb = token_major(_ffn_hyper(block, glb, _ones(glb[0])))
        return SharedSequenceState(seq, state.seq_valid, glb, state.owner, state.depth + 1)

    def exit(self, state: SharedSequenceState) -> torch.Tensor:
        """Logit [B]; the Exit's cross-attention keys are computed once per distinct sequence."""
        model = self.model
        block = model.exit_block
        g = read_out(state.glb, model.config.hc_readout)
        if block.cross is not None:
            s = read_out(state.seq, model.config.hc_readout)
            kv = block.cross.keys_values(block.norm_kv(s), state.seq_valid)
            owner = state.owner
            mask = state.seq_valid[owner][:, None, None, :]
            g = g + block.cross.attend(block.norm_q(g), KeyValues(kv.k[owner], kv.v[owner]), mask, _ones(g))
        return block.tower(block.final_norm(g).flatten(1)).squeeze(-1)

    def summarize(self, state: SharedSequenceState) -> torch.Tensor:
        """Hidden summary [B, d], as `LoopCTR.summarize`."""
        readout = self.model.config.hc_readout
        g = read_out(state.glb, readout)
        if self.model.config.summary == "mean_global":
            return g.mean(dim=1)
        s = read_out(state.seq, readout)[state.owner]
        valid = torch.cat([state.seq_valid[state.owner], _ones(g)], dim=1)
        return masked_mean(torch.cat([s, g], dim=1), valid)


# ---------------------------------------------------------------------- split computations
def _ones(x: torch.Tensor) -> torch.Tensor:
    """All-valid mask [B, T] for global tokens."""
    return torch.ones(x.shape[0], x.shape[1], dtype=torch.bool, device=x.device)


def _split_attention(
    layer: TransformerLayer, xs: torch.Tensor, s_valid: torch.Tensor, xg: torch.Tensor, owner: torch.Tensor,
    glb_sees_seq: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The attention sub-layer y = Attn(LN(x)) for sequence tokens [U, S, d] and global tokens [B, G, d].

    Sequence queries attend their own sequence; global queries attend [their row's sequence
    (when `glb_sees_seq`), the row's global tokens], in that key order, as in the full mask.
    """
    attn = layer.attn
    ns, ng = layer.attn_norm(xs), layer.attn_norm(xg)
    g_valid = _ones(xg)
    kv_s = attn.keys_values(ns, s_valid)
    kv_g = attn.keys_values(ng, g_valid)
    ys = layer.drop(attn.attend(ns, kv_s, s_valid[:, None, None, :], s_valid, route_q=kv_s.routing))
    if glb_sees_seq:
        keys = KeyValues(torch.cat([kv_s.k[owner], kv_g.k], dim=2), torch.cat([kv_s.v[owner], kv_g.v], dim=2))
        valid = torch.cat([s_valid[owner], g_valid], dim=1)
    else:
        keys, valid = KeyValues(kv_g.k, kv_g.v), g_valid
    yg = layer.drop(attn.attend(ng, keys, valid[:, None, None, :], g_valid, route_q=kv_g.routing))
    return ys, yg


def _split_layer(
    layer: TransformerLayer, hs: torch.Tensor, s_valid: torch.Tensor, hg: torch.Tensor, owner: torch.Tensor,
    glb_sees_seq: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A plain pre-norm layer (h + Attn, then + FFN) on split sequence/global tokens."""
    ys, yg = _split_attention(layer, hs, s_valid, hg, owner, glb_sees_seq)
    hs, hg = hs + ys, hg + yg
    return hs + layer.ffn_sublayer(hs, s_valid, None), hg + layer.ffn_sublayer(hg, _ones(hg), None)


def _ffn_hyper(block, Hs: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """The FFN sub-layer of a hyper-connected Loop block on stream-major Hs [n, B, T, d] (per token: no split)."""
    hc = block.hc_ffn
    C = hc.coefficients(Hs)
    return hc.write(Hs, block.layer.ffn_sublayer(hc.merge(Hs, C), valid, None), C)
