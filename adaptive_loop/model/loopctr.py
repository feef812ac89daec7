"""LoopCTR and StackCTR: the Entry -> Loop^i -> Exit sandwich with one shared Exit.

    h0 = Entry(x);  H_0 = n copies of h0;  H_i = Loop(H_{i-1});  logit_i = Exit(readout(H_i))

LoopCTR applies one weight-shared Loop block i times (any i, also beyond the trained L);
StackCTR(L) has L unshared blocks, depth i runs blocks 1..i, so it stops at L. Both
implement `DepthModel`: an all-depths `forward` and the step-wise `enter` / `loop_step` /
`exit` / `summarize` on a row-subsettable `SandwichState`; both paths run the same
functions, so they give the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from adaptive_loop.data.batch import Batch
from adaptive_loop.data.spec import FeatureSpec
from adaptive_loop.errors import ConfigError
from adaptive_loop.model.api import DepthOutputs, FlopsBreakdown
from adaptive_loop.model.loopctr_config import LoopCTRConfig as ModelConfig
from adaptive_loop.model.embeddings import masked_mean
from adaptive_loop.model.entry import EntryBlock
from adaptive_loop.model.exit_block import ExitBlock
from adaptive_loop.model.flops import TokenGeometry, loopctr_flops
from adaptive_loop.model.hyper import expand_streams, read_out
from adaptive_loop.model.loop_block import LoopBlock
from adaptive_loop.model.moe import AuxCollector


@dataclass
class SandwichState:
    """Per-row state between loop steps.

    Attributes:
        streams: [B, T, n, d] residual streams (n = 1 without hyper-connections), tokens [seq, global].
        valid: [B, T] non-padding tokens.
        n_seq: number of sequence tokens (the first n_seq of T).
        depth: loop steps applied so far.
    """

    streams: torch.Tensor
    valid: torch.Tensor
    n_seq: int
    depth: int = 0

    def subset(self, rows: torch.Tensor) -> "SandwichState":
        """The state of `rows` only (an index or boolean tensor over the batch)."""
        return SandwichState(self.streams[rows], self.valid[rows], self.n_seq, self.depth)

    def __len__(self) -> int:
        return int(self.streams.shape[0])


class LoopCTR(nn.Module):
    """LoopCTR(i/L): Entry, one shared Loop block applied i times, one Exit for every depth."""

    shared_loop = True

    def __init__(self, config: ModelConfig, spec: FeatureSpec) -> None:
        super().__init__()
        self.config = config
        self.spec = spec
        self.train_loops = config.train_loops
        self.hidden_dim = config.d_model
        self.entry = EntryBlock(spec, config)
        tok = self.entry.tokenizer
        n_blocks = 1 if self.shared_loop else config.train_loops
        self.loops = nn.ModuleList(LoopBlock(config, layer_index=i) for i in range(n_blocks))
        self.exit_block = ExitBlock(config, tok.n_glb, has_seq=tok.n_seq > 0)
        self.geometry = TokenGeometry(
            n_seq=tok.n_seq,
            seq_len=tok.max_len,
            seq_in=tok.seq_in if tok.token_seqs else 0,
            glb_widths=tuple(tok.global_tokens.widths),
            compress=tok.compressor.m if tok.compressor is not None else 0,
            exit_cross=self.exit_block.cross is not None,
        )

    # ------------------------------------------------------------------ step-wise API
    def enter(self, batch: Batch) -> SandwichState:
        """Run the Entry block on `batch`: the state at depth 0 (`streams` [B, T, n, d])."""
        return self._enter(batch, None)

    def loop_step(self, state: SandwichState) -> SandwichState:
        """Apply one more Loop step (depth + 1); StackCTR raises `ConfigError` beyond its L blocks."""
        return self._loop(state, None)

    def exit(self, state: SandwichState) -> torch.Tensor:
        """Logit [B] of the state at its current depth."""
        return self._exit(state, None)

    def summarize(self, state: SandwichState) -> torch.Tensor:
        """Hidden summary [B, d]: mean of the global tokens ('mean_global') or of all valid tokens ('mean_all')."""
        h = read_out(state.streams, self.config.hc_readout)
        if self.config.summary == "mean_global":
            return h[:, state.n_seq :].mean(dim=1)
        return masked_mean(h, state.valid)

    # ------------------------------------------------------------------ all depths
    def forward(self, batch: Batch, depth: int | None = None, return_hidden: bool = False) -> DepthOutputs:
        """Logits [B, K+1] after 0..K loop steps (K = `depth`, default L), summaries, and the MoE aux loss.

        The aux loss averages the load-balancing loss over every router call that ran
        (Entry, each loop iteration, each Exit evaluation). Without gradients (`torch.no_grad`,
        `torch.inference_mode`) nothing can be trained with it, so the routers skip their
        balance statistics and the aux loss is 0.
        """
        depth = self.train_loops if depth is None else int(depth)
        self._check_depth(depth)
        aux = AuxCollector() if torch.is_grad_enabled() else None
        state = self._enter(batch, aux)
        logits = [self._exit(state, aux)]
        hidden = [self.summarize(state)] if return_hidden else []
        for _ in range(depth):
            state = self._loop(state, aux)
            logits.append(self._exit(state, aux))
            if return_hidden:
                hidden.append(self.summarize(state))
        return DepthOutputs(
            logits=torch.stack(logits, dim=1),
            hidden=torch.stack(hidden, dim=1) if return_hidden else None,
            aux_loss=(aux or AuxCollector()).loss(self.config.balance_loss, device=logits[0].device),
        )

    def flops(self) -> FlopsBreakdown:
        """Analytic FLOPs per sample (see `flops.py` for the counting convention)."""
        return loopctr_flops(self.config, self.geometry)

    # ------------------------------------------------------------------ internals
    def _enter(self, batch: Batch, aux: AuxCollector | None) -> SandwichState:
        h0, valid, n_seq = self.entry(batch, aux)
        return SandwichState(expand_streams(h0, self.config.streams), valid, n_seq, 0)

    def _loop(self, state: SandwichState, aux: AuxCollector | None) -> SandwichState:
        self._check_depth(state.depth + 1)
        block = self.loops[0] if self.shared_loop else self.loops[state.depth]
        streams = block(state.streams, state.valid, state.n_seq, aux)
        return SandwichState(streams, state.valid, state.n_seq, state.depth + 1)

    def _exit(self, state: SandwichState, aux: AuxCollector | None) -> torch.Tensor:
        h = read_out(state.streams, self.config.hc_readout)
        return self.exit_block(h, state.valid, state.n_seq, aux)

    def _check_depth(self, depth: int) -> None:
        if depth < 0:
            raise ConfigError(f"depth must be >= 0, got {depth}")


class StackCTR(LoopCTR):
    """StackCTR(L): the same sandwich with L unshared loop blocks; depth i runs blocks 1..i (i <= L)."""

    shared_loop = False

    def _check_depth(self, depth: int) -> None:
        super()._check_depth(depth)
        if depth > self.train_loops:
            raise ConfigError(
                f"StackCTR has train_loops={self.train_loops} unshared loop blocks and cannot run depth {depth}; "
                f"use depth <= {self.train_loops} (only the weight-shared LoopCTR runs beyond its trained depth)"
            )
