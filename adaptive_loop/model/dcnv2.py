"""DCNv2 (Wang et al. 2021) on the shared field embeddings, with the `DepthModel` API at K = 0.

x_{l+1} = x0 * (W_l x_l + b_l) + x_l (W_l full or U_l V_l^T of rank r), with a deep MLP
stacked after or parallel to the cross network, then a linear head.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from adaptive_loop.data.spec import FeatureSpec
from adaptive_loop.errors import ConfigError
from adaptive_loop.model.field_baseline import BaselineState, FieldBaseline, FieldBaselineConfig
from adaptive_loop.model.layers import hidden_layers, init_linears
from adaptive_loop.model.model_config import check_choice, check_widths

DCN_STRUCTURES = ("stacked", "parallel")


@dataclass
class DCNv2Config(FieldBaselineConfig):
    """Architecture of DCNv2 (`model.name: dcnv2`)."""

    name: str = field(default="dcnv2", metadata={"help": "Model: 'dcnv2' (a baseline without a loop, depth 0 only)."})
    dcn_cross_layers: int = field(default=3, metadata={"help": "DCNv2 cross layers."})
    dcn_low_rank: int = field(default=0, metadata={"help": "DCNv2 cross-layer rank: 0 = full matrix W, r > 0 = U V^T of rank r."})
    dcn_hidden: tuple[int, ...] = field(default=(256, 128), metadata={"help": "DCNv2 deep-part hidden widths."})
    dcn_structure: str = field(default="stacked", metadata={"help": "DCNv2: 'stacked' (cross then deep) or 'parallel' (both on x0, concatenated)."})

    TINY: ClassVar[dict[str, Any]] = {"embed_dim": 4, "dcn_hidden": (32,), "dcn_cross_layers": 2}

    def __post_init__(self) -> None:
        self.dcn_hidden = tuple(self.dcn_hidden)
        super().__post_init__()

    def validate(self) -> None:
        """Raise `ConfigError` naming the first invalid key and value."""
        super().validate()
        check_choice("dcn_structure", self.dcn_structure, DCN_STRUCTURES)
        for key in ("dcn_cross_layers", "dcn_low_rank"):
            if getattr(self, key) < 0:
                raise ConfigError(f"model.{key} must be >= 0, got {getattr(self, key)!r}")
        check_widths(self, "dcn_hidden")


class CrossLayer(nn.Module):
    """x_{l+1} = x0 * (W x_l + b) + x_l; W full or low rank U V^T (init: `model.dense_init`)."""

    def __init__(self, dim: int, rank: int) -> None:
        super().__init__()
        self.proj: nn.Module = nn.Linear(dim, dim) if rank == 0 else nn.Sequential(nn.Linear(dim, rank, bias=False), nn.Linear(rank, dim))

    def forward(self, x0: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """x0, x [B, D] -> x0 * (W x + b) + x: [B, D]."""
        return x0 * self.proj(x) + x


class DCNv2(FieldBaseline):
    """DCNv2: cross network and deep MLP, stacked or parallel, then a linear head."""

    def __init__(self, config: DCNv2Config, spec: FeatureSpec) -> None:
        super().__init__(config, spec)
        dim = self.input_dim
        self.cross = nn.ModuleList(CrossLayer(dim, config.dcn_low_rank) for _ in range(config.dcn_cross_layers))
        self.deep = nn.Sequential(*hidden_layers(dim, config.dcn_hidden, config.dropout, config.batch_norm))
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
