"""Inverted dropout with a cheaper random mask (training only).

`torch.nn.Dropout` on a CPU draws one random number per element with `bernoulli_`; at
LoopCTR's sizes that draw was 6-12% of a whole training step (docs: the profiles in
`benchmarks/results/`). Here each 64-bit draw of the default generator gives four 16-bit
uniforms, one per element, and an element is dropped when its 16-bit value falls below
`round(p * 65536)` of the 65,536 possible values. So the drop probability is p rounded to
a multiple of 1/65,536 (0.1 becomes 0.100006), and kept elements are scaled by
1 / (1 - that probability), which keeps every element's expectation exactly unchanged.
Seeding `torch.manual_seed` fixes the masks as before; they are different masks from
`nn.Dropout`'s, drawn from the same distribution up to that rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_LEVELS = 1 << 16


def dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """Training-mode dropout of `x` with drop probability p (rounded to a multiple of 2^-16, see module docstring)."""
    dropped = round(p * _LEVELS)
    if dropped <= 0:
        return x
    if dropped >= _LEVELS:  # p within 2^-17 of 1: keep nn's semantics rather than divide by ~0
        return F.dropout(x, p, True)
    n = x.numel()
    bits = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device).random_(-(1 << 63), None)
    uniform16 = bits.view(torch.int16)[:n].view(x.shape)  # uniform over [-32768, 32767]
    keep = uniform16 >= (dropped - (1 << 15))
    return x * keep.to(x.dtype).mul_(_LEVELS / (_LEVELS - dropped))


class Dropout(nn.Dropout):
    """`nn.Dropout(p)` with the cheaper draw of `dropout` above.

    A subclass, so code that finds dropout layers by type (MC-dropout null traces,
    `adaptive_loop.null_traces.dropout_modules`) sees these layers too.
    """

    def __init__(self, p: float = 0.0) -> None:
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        super().__init__(float(p))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x unchanged in eval mode or with p = 0; else x times a scaled random keep mask."""
        if not self.training or self.p == 0.0:
            return x
        return dropout(x, self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"
