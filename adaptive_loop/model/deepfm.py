"""DeepFM (Guo et al. 2017) on the shared field embeddings, with the `DepthModel` API at K = 0.

logit = w0 + sum_f w_f + 1/2 sum_e[(sum_f v_f)^2 - sum_f v_f^2] + MLP(concat v_f).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from adaptive_loop.data.batch import Batch
from adaptive_loop.data.spec import FeatureSpec
from adaptive_loop.model.embeddings import FeatureEmbeddings
from adaptive_loop.model.field_baseline import BaselineState, FieldBaseline, FieldBaselineConfig
from adaptive_loop.model.layers import MLP
from adaptive_loop.model.model_config import check_widths


@dataclass
class DeepFMConfig(FieldBaselineConfig):
    """Architecture of DeepFM (`model.name: deepfm`)."""

    name: str = field(default="deepfm", metadata={"help": "Model: 'deepfm' (a baseline without a loop, depth 0 only)."})
    deepfm_hidden: tuple[int, ...] = field(default=(256, 128), metadata={"help": "DeepFM deep-part hidden widths."})

    TINY: ClassVar[dict[str, Any]] = {"embed_dim": 4, "deepfm_hidden": (32,)}

    def __post_init__(self) -> None:
        self.deepfm_hidden = tuple(self.deepfm_hidden)
        super().__post_init__()

    def validate(self) -> None:
        """Raise `ConfigError` naming the first invalid key and value."""
        super().validate()
        check_widths(self, "deepfm_hidden")


class DeepFM(FieldBaseline):
    """DeepFM: first-order + FM second-order + deep MLP, summed into one logit."""

    def __init__(self, config: DeepFMConfig, spec: FeatureSpec) -> None:
        super().__init__(config, spec)
        self.first_order = FeatureEmbeddings(spec, 1, config.embed_init_std)  # w_f per id
        self.numeric_first = nn.Linear(len(spec.numeric), 1) if spec.numeric else None
        self.deep = MLP(self.input_dim, config.deepfm_hidden, 1, config.dropout,
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
