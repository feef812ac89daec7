"""Standard CTR baselines on the same `FeatureSpec`: DeepFM and DCNv2, with the `DepthModel` API at K = 0.

Fields: one embedding per categorical field, every sequence (pooled or not) mean-pooled
over its non-padding ids as one more field, numeric fields either as scaled embeddings
v_f x_f ('embed') or as a dense MLP input ('dense'). `enter` computes the field
embeddings, `exit` the logit; there is no loop block, so `loop_step` raises and only
depth 0 exists (`train_loops = 0`).

- DeepFM (Guo et al. 2017): logit = w0 + sum_f w_f + 1/2 sum_e[(sum_f v_f)^2 - sum_f v_f^2] + MLP(concat v_f).
- DCNv2 (Wang et al. 2021): x_{l+1} = x0 * (W_l x_l + b_l) + x_l (W_l full or U_l V_l^T of
  rank r), with a deep MLP stacked after or parallel to the cross network.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from adaptive_loop.data.batch import Batch
from adaptive_loop.data.spec import FeatureSpec
from adaptive_loop.errors import ConfigError
from adaptive_loop.model.api import DepthOutputs, FlopsBreakdown
from adaptive_loop.model.config import ModelConfig
from adaptive_loop.model.embeddings import FeatureEmbeddings
from adaptive_loop.model.layers import MLP, hidden_layers, init_linears


@dataclass
class BaselineState:
    """Field embeddings [B, F, e], dense numeric input [B, n] (possibly n = 0) and first-order term [B]."""

    fields: torch.Tensor
    dense: torch.Tensor
    first: torch.Tensor
    depth: int = 0

    def subset(self, rows: torch.Tensor) -> "BaselineState":
        """The state of `rows` only (an index or boolean tensor over the batch)."""
        return BaselineState(self.fields[rows], self.dense[rows], self.first[rows], self.depth)

    def __len__(self) -> int:
        return int(self.fields.shape[0])


class FieldEmbedder(nn.Module):
    """Batch -> field embeddings [B, F, e] (+ dense numeric input in 'dense' mode).

    All its parameters (tables and numeric field vectors v_f) are embeddings for the
    training's embedding penalty (`adaptive_loop.optim.split_parameters`).
    """

    holds_embeddings = True

    def __init__(self, spec: FeatureSpec, config: ModelConfig) -> None:
        super().__init__()
        e = config.embed_dim
        self.embeddings = FeatureEmbeddings(spec, e, config.embed_init_std)
        self.seq_names = [s.name for s in spec.sequences]
        self.n_num = len(spec.numeric)
        self.embed_numeric = config.numeric_mode == "embed"
        if self.embed_numeric and self.n_num:
            self.numeric = nn.Parameter(torch.randn(self.n_num, e) * config.embed_init_std)  # v_f ~ N(0, std^2)
        self.n_fields = len(spec.categorical) + len(self.seq_names) + (self.n_num if self.embed_numeric else 0)
        self.dense_dim = 0 if self.embed_numeric else self.n_num
        if self.n_fields == 0:
            raise ConfigError("the feature spec has no field the baseline can embed")

    def forward(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch -> (field embeddings [B, F, e], dense numeric input [B, n_num]).

        The dense input is [B, 0] in 'embed' mode (numerics are then fields).
        """
        parts = [self.embeddings.categorical(batch.cat)]
        if self.seq_names:
            parts.append(torch.stack([self.embeddings.pooled(n, batch.seq[n]) for n in self.seq_names], dim=1))
        if self.embed_numeric and self.n_num:
            parts.append(batch.num.unsqueeze(-1) * self.numeric)
        dense = batch.num if not self.embed_numeric else batch.num[:, :0]
        return torch.cat(parts, dim=1), dense


class _Baseline(nn.Module):
    """Shared K = 0 `DepthModel` plumbing; subclasses define `_first`, `_exit_modules` and `exit`."""

    def __init__(self, config: ModelConfig, spec: FeatureSpec) -> None:
        super().__init__()
        self.config = config
        self.spec = spec
        self.train_loops = 0
        self.hidden_dim = config.embed_dim
        self.fields = FieldEmbedder(spec, config)
        self.input_dim = self.fields.n_fields * config.embed_dim + self.fields.dense_dim

    def enter(self, batch: Batch) -> BaselineState:
        """Field embeddings, dense input and first-order term of `batch` (the depth-0 state)."""
        fields, dense = self.fields(batch)
        return BaselineState(fields, dense, self._first(batch, fields), 0)

    def loop_step(self, state: BaselineState) -> BaselineState:
        """Always raises `ConfigError`: a baseline has no loop block, only depth 0 exists."""
        raise ConfigError(f"{type(self).__name__} has no loop block (train_loops = 0): only depth 0 exists")

    def summarize(self, state: BaselineState) -> torch.Tensor:
        """Mean of the field embeddings [B, e]."""
        return state.fields.mean(dim=1)

    def forward(self, batch: Batch, depth: int | None = None, return_hidden: bool = False) -> DepthOutputs:
        """Logits [B, 1] at depth 0, summaries [B, 1, e] with `return_hidden`, zero aux loss.

        Any `depth` other than None or 0 raises `ConfigError`.
        """
        if depth not in (None, 0):
            raise ConfigError(f"{type(self).__name__} has no loop block: depth must be 0, got {depth}")
        state = self.enter(batch)
        logits = self.exit(state).unsqueeze(1)
        hidden = self.summarize(state).unsqueeze(1) if return_hidden else None
        return DepthOutputs(logits=logits, hidden=hidden, aux_loss=torch.zeros((), device=logits.device))

    def flops(self) -> FlopsBreakdown:
        """Matmul FLOPs per sample (see `flops.py`); Entry is embedding lookups plus any first-order matmul."""
        return FlopsBreakdown(
            entry=_linear_flops(self._entry_modules()),
            loop=0.0,
            exit=_linear_flops(self._exit_modules()),
            summary=float(self.fields.n_fields * self.config.embed_dim),
        )

    def exit(self, state: BaselineState) -> torch.Tensor:
        """Logit [B] of `state`; defined by each baseline."""
        raise NotImplementedError

    def _first(self, batch: Batch, fields: torch.Tensor) -> torch.Tensor:
        return fields.new_zeros(fields.shape[0])

    def _entry_modules(self) -> list[nn.Module]:
        return []

    def _exit_modules(self) -> list[nn.Module]:
        raise NotImplementedError


class DeepFM(_Baseline):
    """DeepFM: first-order + FM second-order + deep MLP, summed into one logit."""

    def __init__(self, config: ModelConfig, spec: FeatureSpec) -> None:
        super().__init__(config, spec)
        self.first_order = FeatureEmbeddings(spec, 1, config.embed_init_std)  # w_f per id
        self.numeric_first = nn.Linear(len(spec.numeric), 1) if spec.numeric else None
        self.deep = MLP(self.input_dim, config.deepfm_hidden, 1, config.tower_dropout_rate,
                        batch_norm=config.batch_norm, init=config.dense_init)

    def _first(self, batch: Batch, fields: torch.Tensor) -> torch.Tensor:
        first = self.first_order.categorical(batch.cat).sum(dim=(1, 2))
        for name in self.fields.seq_names:
            first = first + self.first_order.pooled(name, batch.seq[name]).squeeze(-1)
        if self.numeric_first is not None:
            first = first + self.numeric_first(batch.num).squeeze(-1)
        return first

    def exit(self, state: BaselineState) -> torch.Tensor:
        """Logit [B]: first-order term + FM pairwise term + deep MLP over the concatenated embeddings."""
        v = state.fields
        fm = 0.5 * (v.sum(dim=1).pow(2) - v.pow(2).sum(dim=1)).sum(dim=-1)
        deep = self.deep(torch.cat([v.flatten(1), state.dense], dim=1)).squeeze(-1)
        return state.first + fm + deep

    def _entry_modules(self) -> list[nn.Module]:
        return [self.numeric_first] if self.numeric_first is not None else []

    def _exit_modules(self) -> list[nn.Module]:
        return [self.deep]


class CrossLayer(nn.Module):
    """x_{l+1} = x0 * (W x_l + b) + x_l; W full (PyTorch default init) or low rank U V^T."""

    def __init__(self, dim: int, rank: int) -> None:
        super().__init__()
        self.proj: nn.Module = nn.Linear(dim, dim) if rank == 0 else nn.Sequential(nn.Linear(dim, rank, bias=False), nn.Linear(rank, dim))

    def forward(self, x0: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """x0, x [B, D] -> x0 * (W x + b) + x: [B, D]."""
        return x0 * self.proj(x) + x


class DCNv2(_Baseline):
    """DCNv2: cross network and deep MLP, stacked or parallel, then a linear head."""

    def __init__(self, config: ModelConfig, spec: FeatureSpec) -> None:
        super().__init__(config, spec)
        dim = self.input_dim
        self.cross = nn.ModuleList(CrossLayer(dim, config.dcn_low_rank) for _ in range(config.dcn_cross_layers))
        self.deep = nn.Sequential(*hidden_layers(dim, config.dcn_hidden, config.tower_dropout_rate, config.batch_norm))
        width = int(config.dcn_hidden[-1]) if config.dcn_hidden else dim
        self.parallel = config.dcn_structure == "parallel"
        self.head = nn.Linear(width + (dim if self.parallel else 0), 1)
        for module in (self.cross, self.deep, self.head):
            init_linears(module, config.dense_init)

    def exit(self, state: BaselineState) -> torch.Tensor:
        """Logit [B]: cross network and deep MLP (stacked or parallel) on the fields, then the head."""
        x0 = torch.cat([state.fields.flatten(1), state.dense], dim=1)
        x = x0
        for layer in self.cross:
            x = layer(x0, x)
        z = torch.cat([x, self.deep(x0)], dim=1) if self.parallel else self.deep(x)
        return self.head(z).squeeze(-1)

    def _exit_modules(self) -> list[nn.Module]:
        return [self.cross, self.deep, self.head]


def _linear_flops(modules: list[nn.Module]) -> float:
    """2 * in * out per sample for every `nn.Linear` inside `modules` (each applied once per sample)."""
    return float(
        sum(2 * m.in_features * m.out_features for mod in modules for m in mod.modules() if isinstance(m, nn.Linear))
    )
