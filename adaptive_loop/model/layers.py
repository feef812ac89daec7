"""Small building blocks shared by the blocks and the baselines: initialised linears and MLPs."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from adaptive_loop.model.dropout import Dropout


def normal_linear(d_in: int, d_out: int, std: float, bias: bool = True) -> nn.Linear:
    """y = x W^T + b with W ~ N(0, std^2), b = 0 (GPT-2 style init for transformer projections) [ours]."""
    layer = nn.Linear(d_in, d_out, bias=bias)
    nn.init.normal_(layer.weight, std=std)
    if bias:
        nn.init.zeros_(layer.bias)
    return layer


class MLP(nn.Module):
    """ReLU MLP d_in -> hidden... -> d_out (PyTorch's default Kaiming-uniform init); no activation on the output."""

    def __init__(self, d_in: int, hidden: Sequence[int], d_out: int, dropout: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = d_in
        for h in hidden:
            layers += [nn.Linear(width, int(h)), nn.ReLU()]
            if dropout > 0:
                layers.append(Dropout(dropout))
            width = int(h)
        layers.append(nn.Linear(width, d_out))
        self.net = nn.Sequential(*layers)
        self.d_in = d_in
        self.d_out = d_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [..., d_in] -> [..., d_out]."""
        return self.net(x)

    def flops(self) -> float:
        """Per-sample FLOPs of the matmuls (2 per multiply-add)."""
        return float(sum(2 * m.in_features * m.out_features for m in self.net if isinstance(m, nn.Linear)))
