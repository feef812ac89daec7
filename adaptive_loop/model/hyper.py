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

Layout. Model states hold the streams as [B, T, n, d] tensors, but their memory is laid out
stream-major ([n, B, T, d] permuted, see `expand_streams`), and this module works on that
stream-major view `Hs` [n, B, T, d]: each stream is then one contiguous [B, T, d] block and
the per-token n x n mixing becomes a few whole-block multiply-adds. The coefficients of
row i of the n x (n + 2) matrix [A_m | A_r | B] come out stream-major as well, C [n, B, T,
n + 2], from one matmul norm(Hs) [W_m | W_r | W_b]. The merge and the write are autograd
functions with hand-written backward passes: autograd through the broadcast products took
about twice as long on CPU (a LoopCTR training step spent ~19% of its time here).

FLOPs: the coefficient projection is a matmul. The merge A_m^T H (n d multiply-adds per
token) and the residual mix A_r^T H (n^2 d) are elementwise multiply-adds; they are counted
as the multiply-adds they are (`flops.hyper_connection_flops`) although FlopCounterMode does
not see them. The write-back B^T y is an outer product (n d multiplies, no additions; not
counted, as FlopCounterMode does not count it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


class HyperConnection(nn.Module):
    """The hyper-connection of one sub-layer: `merge` before it, `write` after it (stream-major tensors)."""

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

    def coefficients(self, Hs: torch.Tensor) -> torch.Tensor:
        """Hs [n, B, T, d] -> C [n, B, T, n + 2] (static: [n, 1, 1, n + 2]); C[i] = (A_m[i], A_r[i, :], B[i]) of each token.

        In training the dynamic coefficients are recomputed in the backward pass rather than
        keeping the normalised streams [n, B, T, d] of every call (`torch.utils.checkpoint`;
        the streams themselves are kept anyway): one norm and one skinny matmul more per
        call, about 10% less memory held by a LoopCTR training step.
        """
        if not self.dynamic:
            return self._static()[:, None, None, :]
        if torch.is_grad_enabled() and Hs.requires_grad:
            return checkpoint(self._dynamic, Hs, use_reentrant=False)
        return self._dynamic(Hs)

    def _static(self) -> torch.Tensor:
        return torch.cat([self.static_m.unsqueeze(-1), self.static_r, self.static_b.unsqueeze(-1)], dim=-1)

    def _dynamic(self, Hs: torch.Tensor) -> torch.Tensor:
        scale = torch.cat([self.scale_a.expand(self.n + 1), self.scale_b.reshape(1)])  # [s_a (n + 1 times), s_b]
        t = torch.tanh(self.norm(Hs) @ self.weight)  # [n, B, T, n + 2]; row i comes from stream i
        return torch.addcmul(self._static()[:, None, None, :], scale, t)

    @staticmethod
    def merge(Hs: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
        """h_in = A_m(H)^T H = sum_i C[i, .., 0] Hs[i]: [n, B, T, d] -> [B, T, d]."""
        if not torch.is_grad_enabled():  # inference: the same maths without an autograd node
            return _merge(Hs, C[..., 0])
        return _Merge.apply(Hs, C[..., 0])

    @staticmethod
    def write(Hs: torch.Tensor, y: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
        """H'[j] = B[j] y + sum_i A_r[i, j] H[i]: Hs [n, B, T, d], y [B, T, d] -> [n, B, T, d]."""
        n = Hs.shape[0]
        if not torch.is_grad_enabled():
            return _write(Hs, y, C[..., 1 : n + 1], C[..., n + 1])
        return _Write.apply(Hs, y, C[..., 1 : n + 1], C[..., n + 1])


def _merge(Hs: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """h = sum_i m[i] Hs[i], with m [n, B|1, T|1] broadcast over d."""
    h = Hs[0] * m[0].unsqueeze(-1)
    for i in range(1, Hs.shape[0]):
        h.addcmul_(Hs[i], m[i].unsqueeze(-1))
    return h


def _write(Hs: torch.Tensor, y: torch.Tensor, r: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """out[j] = b[j] y + sum_i r[i, .., j] Hs[i]; r [n, B|1, T|1, n], b [n, B|1, T|1]."""
    out = b.unsqueeze(-1) * y  # [n, B, T, d]
    r_by_out = r.movedim(-1, 0)  # [n_out, n_in, B|1, T|1]
    for i in range(Hs.shape[0]):
        out.addcmul_(Hs[i], r_by_out[:, i].unsqueeze(-1))
    return out


class _Merge(torch.autograd.Function):
    """h = sum_i m[i] Hs[i], with m [n, B|1, T|1] broadcast over d."""

    @staticmethod
    def forward(ctx, Hs: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(Hs, m)
        return _merge(Hs, m)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        Hs, m = ctx.saved_tensors
        d_hs = m.unsqueeze(-1) * g if ctx.needs_input_grad[0] else None
        d_m = (Hs * g).sum(-1).sum_to_size(m.shape) if ctx.needs_input_grad[1] else None
        return d_hs, d_m


class _Write(torch.autograd.Function):
    """out[j] = b[j] y + sum_i r[i, .., j] Hs[i]; r [n, B|1, T|1, n], b [n, B|1, T|1]."""

    @staticmethod
    def forward(ctx, Hs: torch.Tensor, y: torch.Tensor, r: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(Hs, y, r, b)
        return _write(Hs, y, r, b)

    @staticmethod
    def backward(ctx, G: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        Hs, y, r, b = ctx.saved_tensors
        need_hs, need_y, need_r, need_b = ctx.needs_input_grad
        d_hs = d_y = d_r = d_b = None
        if need_hs:  # dHs[i] = sum_j r[i, j] G[j]
            d_hs = r[..., 0].unsqueeze(-1) * G[0]
            for j in range(1, G.shape[0]):
                d_hs.addcmul_(G[j], r[..., j].unsqueeze(-1))
        if need_y:  # dy = sum_j b[j] G[j]
            d_y = (b.unsqueeze(-1) * G).sum(0)
        if need_r:  # dr[i, j] = <Hs[i], G[j]> over d
            d_r = (Hs.unsqueeze(1) * G).sum(-1).movedim(1, -1).sum_to_size(r.shape)
        if need_b:  # db[j] = <y, G[j]> over d
            d_b = (G * y).sum(-1).sum_to_size(b.shape)
        return d_hs, d_y, d_r, d_b


def stream_major(H: torch.Tensor) -> torch.Tensor:
    """The stream-major view [n, B, T, d] of states [B, T, n, d] (a copy only if memory is not laid out so)."""
    return H.permute(2, 0, 1, 3).contiguous()


def token_major(Hs: torch.Tensor) -> torch.Tensor:
    """Stream-major Hs [n, B, T, d] -> the state view [B, T, n, d] (no copy)."""
    return Hs.permute(1, 2, 0, 3)


def expand_streams(h: torch.Tensor, n: int) -> torch.Tensor:
    """Copy h [B, T, d] into n streams [B, T, n, d], laid out stream-major (done once, after Entry)."""
    return token_major(h.unsqueeze(0).expand(n, *h.shape).contiguous())


def read_out(H: torch.Tensor, mode: str) -> torch.Tensor:
    """Streams [B, T, n, d] -> one state [B, T, d]: 'mean' or 'sum' over the streams."""
    return H.mean(dim=-2) if mode == "mean" else H.sum(dim=-2)
