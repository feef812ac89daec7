"""Dynamic hyper-connections (Zhu et al. 2024, arXiv 2409.19606) with n residual streams.

Each token carries H in R^{n x d}. Around a sub-layer F (pre-norm inside F):

    h_in = A_m(H)^T H                       merge the streams into the sub-layer input
    y    = F(h_in)
    H'   = B(H)^T y + A_r(H)^T H            write back + residual mix
    A_m(H) = A_m + s_a tanh(norm(H) W_m)    [n x 1]
    A_r(H) = A_r + s_a tanh(norm(H) W_r)    [n x n]
    B(H)   = B   + s_b tanh(norm(H) W_b)^T  [1 x n]

Init (paper): W_* = 0, s_a = s_b = `scale_init` (0.01), A_m = one-hot e_{layer mod n},
A_r = I_n, B = ones. With all n streams equal to h (h0 is copied into every stream after
Entry), the init block gives h_in = h and every stream becomes h + F(h): each stream, and
so the stream mean, equals a plain pre-norm residual block. The stream *sum* is n times
that, which is why the default read-out is the mean (config `hc_readout`).

FLOPs: the coefficient projection norm(H) [W_m|W_r|W_b] is a matmul. The merge A_m^T H
(n d multiply-adds per token) and the residual mix A_r^T H (n^2 d) are per-token n x n
products: written as batched matmuls they become B*T tiny GEMMs, which on a CPU took ~11%
of a LoopCTR training step on frappe_x1 (n = 2), so they are computed as broadcast
multiply-and-sum instead (same arithmetic, about half the time). They are still counted as
the multiply-adds they are (`flops.hyper_connection_flops`), although FlopCounterMode no
longer sees them. The write-back B^T y is an outer product done elementwise (n d
multiplies, no additions; not counted, as FlopCounterMode does not count it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class HyperConnection(nn.Module):
    """The hyper-connection of one sub-layer: `merge` before it, `write` after it."""

    def __init__(self, d: int, n: int, layer_index: int, dynamic: bool, scale_init: float) -> None:
        super().__init__()
        self.n = n
        self.dynamic = dynamic
        self.static_m = nn.Parameter(F.one_hot(torch.tensor(layer_index % n), n).float())  # A_m = e_{k mod n}
        self.static_r = nn.Parameter(torch.eye(n))  # A_r = I_n
        self.static_b = nn.Parameter(torch.ones(n))  # B = ones
        if dynamic:
            self.norm = nn.LayerNorm(d)
            self.weight = nn.Parameter(torch.zeros(d, n + 2))  # [W_m | W_r | W_b] = 0
            self.scale_a = nn.Parameter(torch.tensor(float(scale_init)))  # s_a
            self.scale_b = nn.Parameter(torch.tensor(float(scale_init)))  # s_b

    def coefficients(self, H: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """H [B, T, n, d] -> A_m(H) [B, T, n], A_r(H) [B, T, n, n], B(H) [B, T, n]."""
        if not self.dynamic:
            return self.static_m, self.static_r, self.static_b
        t = torch.tanh(self.norm(H) @ self.weight)  # [B, T, n, n+2]; row i comes from stream i
        a_m = self.static_m + self.scale_a * t[..., 0]
        a_r = self.static_r + self.scale_a * t[..., 1 : self.n + 1]
        b = self.static_b + self.scale_b * t[..., self.n + 1]
        return a_m, a_r, b

    @staticmethod
    def merge(H: torch.Tensor, a_m: torch.Tensor) -> torch.Tensor:
        """h_in = A_m(H)^T H = sum_i a_m[i] H[i]: [B, T, n, d] -> [B, T, d] (broadcast, see module docstring)."""
        return (a_m.unsqueeze(-1) * H).sum(dim=-2)

    @staticmethod
    def write(H: torch.Tensor, y: torch.Tensor, a_r: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """H' = B(H)^T y + A_r(H)^T H, i.e. H'[j] = b[j] y + sum_i a_r[i, j] H[i]: [B, T, n, d]."""
        mixed = (a_r.unsqueeze(-1) * H.unsqueeze(-2)).sum(dim=-3)  # [.., i, j, d] summed over i
        return b.unsqueeze(-1) * y.unsqueeze(-2) + mixed


def expand_streams(h: torch.Tensor, n: int) -> torch.Tensor:
    """Copy h [B, T, d] into n streams [B, T, n, d] (done once, after Entry)."""
    return h.unsqueeze(-2).expand(*h.shape[:-1], n, h.shape[-1]).contiguous()


def read_out(H: torch.Tensor, mode: str) -> torch.Tensor:
    """Streams [B, T, n, d] -> one state [B, T, d]: 'mean' or 'sum' over the streams."""
    return H.mean(dim=-2) if mode == "mean" else H.sum(dim=-2)
