"""Small building blocks shared by the blocks and the baselines: initialised linears and MLPs."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from adaptive_loop.model.dropout import Dropout
from adaptive_loop.model.model_config import DENSE_INITS


def normal_linear(d_in: int, d_out: int, std: float, bias: bool = True) -> nn.Linear:
    """y = x W^T + b with W ~ N(0, std^2), b = 0 (GPT-2 style init for transformer projections) [ours]."""
    layer = nn.Linear(d_in, d_out, bias=bias)
    nn.init.normal_(layer.weight, std=std)
    if bias:
        nn.init.zeros_(layer.bias)
    return layer


def hidden_layers(d_in: int, hidden: Sequence[int], dropout: float = 0.0, batch_norm: bool = False) -> list[nn.Module]:
    """The hidden part of a ReLU MLP: per width h, Linear -> [BatchNorm] -> ReLU -> [Dropout].

    The order is FuxiCTR's `MLP_Block` (batch norm between the linear map and the
    activation). Batch norm is what lets the baselines train from a tiny embedding init
    under a strong embedding penalty: without it the first layers see inputs of scale
    ~1e-4 and learn very slowly.
    """
    layers: list[nn.Module] = []
    width = d_in
    for h in hidden:
        layers.append(nn.Linear(width, int(h)))
        if batch_norm:
            layers.append(nn.BatchNorm1d(int(h)))
        layers.append(nn.ReLU())
        if dropout > 0:
            layers.append(Dropout(dropout))
        width = int(h)
    return layers


def init_linears(module: nn.Module, scheme: str) -> None:
    """Re-initialise every `nn.Linear` inside `module`: 'torch' keeps PyTorch's default
    (Kaiming-uniform), 'xavier_normal' sets W ~ Xavier-normal and b = 0 (FuxiCTR's
    `BaseModel.reset_parameters`)."""
    if scheme == "torch":
        return
    if scheme != "xavier_normal":
        raise ValueError(f"unknown dense init {scheme!r}; expected one of {DENSE_INITS}")
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class MLP(nn.Module):
    """ReLU MLP d_in -> hidden... -> d_out; no activation on the output.

    Hidden layers are Linear -> [BatchNorm] -> ReLU -> [Dropout] (see `hidden_layers`);
    linears use PyTorch's default init unless `init` says otherwise (`init_linears`).
    """

    def __init__(self, d_in: int, hidden: Sequence[int], d_out: int, dropout: float = 0.0,
                 batch_norm: bool = False, init: str = "torch") -> None:
        super().__init__()
        layers = hidden_layers(d_in, hidden, dropout, batch_norm)
        width = int(hidden[-1]) if len(hidden) else d_in
        layers.append(nn.Linear(width, d_out))
        self.net = nn.Sequential(*layers)
        init_linears(self.net, init)
        self.d_in = d_in
        self.d_out = d_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [..., d_in] -> [..., d_out] (with batch norm, x must be 2-D [B, d_in])."""
        return self.net(x)

    def flops(self) -> float:
        """Per-sample FLOPs of the matmuls (2 per multiply-add); batch norm folds into the linear at inference."""
        return float(sum(2 * m.in_features * m.out_features for m in self.net if isinstance(m, nn.Linear)))
