"""The shared body of the CTR baselines: field embeddings and the `DepthModel` API at K = 0.

Fields: one embedding per categorical field, every sequence (pooled or not) mean-pooled
over its non-padding ids as one more field, numeric fields either as scaled embeddings
v_f x_f ('embed') or as a dense MLP input ('dense'). `enter` computes the field
embeddings, `exit` the logit; there is no loop block, so `loop_step` raises and only
depth 0 exists (`train_loops = 0`). Each baseline is its own file (`deepfm.py`,
`dcnv2.py`) with its config, a `FieldBaselineConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from adaptive_loop.data.batch import Batch
from adaptive_loop.data.spec import FeatureSpec
from adaptive_loop.errors import ConfigError
from adaptive_loop.model.api import DepthOutputs, FlopsBreakdown
from adaptive_loop.model.embeddings import FeatureEmbeddings
from adaptive_loop.model.model_config import ModelConfig, check_choice

NUMERIC_MODES = ("embed", "dense")


@dataclass
class FieldBaselineConfig(ModelConfig):
    """Keys every field-embedding baseline has (no loop block: `train_loops` is 0)."""

    train_loops: int = field(default=0, metadata={"help": "Always 0: a baseline has no loop block, only depth 0 exists."})
    dropout: float = field(
        default=0.0,
        metadata={"help": "Dropout after each hidden layer of the deep part (training only) [ours]; BARS tunes it per "
                  "model (Frappe_x1: DeepFM 0.2, DCNv2 0.4)."},
    )
    numeric_mode: str = field(
        default="embed",
        metadata={"help": "Numeric fields as scaled embeddings v_f * x_f ('embed') or as a dense MLP input ('dense')."},
    )

    TINY: ClassVar[dict[str, Any]] = {"embed_dim": 4}

    def validate(self) -> None:
        """Raise `ConfigError` naming the first invalid key and value."""
        super().validate()
        check_choice("numeric_mode", self.numeric_mode, NUMERIC_MODES)
        if self.train_loops != 0:
            raise ConfigError(f"model.train_loops must be 0 for model {self.name!r} (it has no loop block), got {self.train_loops!r}")


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
    training's embedding penalty (`adaptive_loop.training.optim.split_parameters`).
    """

    holds_embeddings = True

    def __init__(self, spec: FeatureSpec, config: FieldBaselineConfig) -> None:
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


class FieldBaseline(nn.Module):
    """Shared K = 0 `DepthModel` plumbing; subclasses define `_first`, `_exit_modules` and `exit`."""

    def __init__(self, config: FieldBaselineConfig, spec: FeatureSpec) -> None:
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
            entry=linear_flops(self._entry_modules()),
            loop=0.0,
            exit=linear_flops(self._exit_modules()),
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


def linear_flops(modules: list[nn.Module]) -> float:
    """2 * in * out per sample for every `nn.Linear` inside `modules` (each applied once per sample)."""
    return float(
        sum(2 * m.in_features * m.out_features for mod in modules for m in mod.modules() if isinstance(m, nn.Linear))
    )
