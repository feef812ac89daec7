"""Top-k mixture of experts: router, batched expert layers and load-balancing losses.

Routing (Shazeer et al. 2017; Switch, Fedus et al. 2021): p(x) = softmax(x W_r) over E
experts, the token goes to the k experts with the largest p and its output is
y = sum_{e in topk} w_e f_e(x), with w = p_topk / sum(p_topk) when `renormalize`
(our choice) or the raw probabilities otherwise.

Experts run as batched tensor ops: the (token, expert) assignments are sorted by expert,
the tokens gathered once, each expert multiplies its contiguous slice (a loop over the E
experts, never over rows) and `index_add` scatters the weighted results back. There is
no capacity limit and no token dropping, so a token's output depends only on that token:
rows are independent, and exactly k experts' FLOPs are spent per token.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class Routing:
    """Routing decisions of N tokens.

    Attributes:
        probs: [N, E] router softmax.
        weights: [N, k] combination weight of each selected expert.
        tokens: [N*k] token index of each assignment, sorted by expert (ascending, stable).
        assign_weights: [N*k] weights in the same order.
        counts: assignments per expert (python ints, sum N*k).
    """

    probs: torch.Tensor
    experts: torch.Tensor
    weights: torch.Tensor
    tokens: torch.Tensor
    assign_weights: torch.Tensor
    counts: list[int]


@dataclass
class RouterStats:
    """What one router call contributes to the load-balancing loss.

    `probs_mean` is P_e (mean router probability over valid tokens), `frac` is f_e (share of
    the valid tokens' k assignments that went to expert e); `key` identifies the router so
    the entropy loss can average P over the loop iterations of one shared router.
    """

    key: int
    probs_mean: torch.Tensor
    frac: torch.Tensor


class AuxCollector:
    """Collects `RouterStats` over every MoE call of one forward pass."""

    def __init__(self) -> None:
        self.stats: list[RouterStats] = []

    def add(self, stats: RouterStats) -> None:
        """Record the statistics of one router call."""
        self.stats.append(stats)

    def loss(self, kind: str, device: torch.device | None = None) -> torch.Tensor:
        """Load-balancing loss of the collected calls (`kind`: see `balance_loss`); 0 if none ran."""
        return balance_loss(self.stats, kind, device)


def balance_loss(stats: list[RouterStats], kind: str, device: torch.device | None = None) -> torch.Tensor:
    """Load-balancing loss averaged over router calls.

    - 'switch': E * sum_e f_e P_e per call (Switch Transformer eq. 4); 1 for uniform routing,
      E for routing collapsed on one expert.
    - 'entropy': MoEUT (Csordas et al. 2024): P averaged over all calls of the same router
      (its loop iterations), loss = log E - H(P) per router; 0 for uniform, log E collapsed.
      (MoEUT minimises -H(P); the constant log E only makes the minimum 0.)
    """
    if not stats:
        return torch.zeros((), device=device)
    if kind == "switch":
        values = [s.probs_mean.numel() * (s.frac * s.probs_mean).sum() for s in stats]
        return torch.stack(values).mean()
    if kind == "entropy":
        groups: dict[int, list[torch.Tensor]] = {}
        for s in stats:
            groups.setdefault(s.key, []).append(s.probs_mean)
        values = []
        for probs in groups.values():
            mean = torch.stack(probs).mean(dim=0)
            entropy = -torch.special.xlogy(mean, mean).sum()
            values.append(math.log(mean.numel()) - entropy)
        return torch.stack(values).mean()
    raise ValueError(f"unknown balance loss {kind!r}")


_STATS_REDUCER: contextvars.ContextVar[Callable[[torch.Tensor], torch.Tensor] | None] = contextvars.ContextVar(
    "moe_stats_reducer", default=None
)


@contextlib.contextmanager
def global_router_statistics(reduce: Callable[[torch.Tensor], torch.Tensor] | None) -> Iterator[None]:
    """Inside the block, routers sum their balance statistics over processes with `reduce`.

    The load-balancing loss is a product of batch means (f_e * P_e), not a mean of per-row
    terms, so with data parallelism each process's shard would give a different loss than
    the whole batch. Summing (probability sums, assignment counts, token counts) over
    processes with a differentiable all-reduce makes every process compute the loss of the
    global batch; its backward sums the gradient contributions, and DDP's averaging then
    yields exactly the single-process gradient. `reduce=None` leaves routing local.
    """
    token = _STATS_REDUCER.set(reduce)
    try:
        yield
    finally:
        _STATS_REDUCER.reset(token)


class Router(nn.Module):
    """p(x) = softmax(x W_r), top-k selection; W_r ~ N(0, init_std^2), no bias."""

    def __init__(self, d: int, n_experts: int, top_k: int, renormalize: bool, init_std: float) -> None:
        super().__init__()
        self.n_experts = n_experts
        self.top_k = top_k
        self.renormalize = renormalize
        self.proj = nn.Linear(d, n_experts, bias=False)
        nn.init.normal_(self.proj.weight, std=init_std)

    def forward(
        self, x: torch.Tensor, valid: torch.Tensor | None = None, aux: AuxCollector | None = None
    ) -> Routing:
        """Route tokens `x` [N, d]; `valid` [N] excludes padding tokens from the balance statistics."""
        probs = torch.softmax(self.proj(x), dim=-1)
        top_p, experts = probs.topk(self.top_k, dim=-1)
        weights = top_p / top_p.sum(dim=-1, keepdim=True) if self.renormalize else top_p
        flat = experts.reshape(-1)
        order = torch.argsort(flat, stable=True)
        tokens = torch.div(order, self.top_k, rounding_mode="floor")
        counts = torch.bincount(flat, minlength=self.n_experts).tolist()
        if aux is not None:
            aux.add(self._stats(probs, experts, valid))
        return Routing(probs, experts, weights, tokens, weights.reshape(-1)[order], counts)

    def _stats(self, probs: torch.Tensor, experts: torch.Tensor, valid: torch.Tensor | None) -> RouterStats:
        w = torch.ones(probs.shape[0], device=probs.device) if valid is None else valid.reshape(-1).to(probs.dtype)
        probs_sum = (probs * w[:, None]).sum(dim=0)
        hits = F.one_hot(experts, self.n_experts).to(probs.dtype).sum(dim=1)  # [N, E]
        hits_sum = (hits * w[:, None]).sum(dim=0)
        count = w.sum()
        reduce = _STATS_REDUCER.get()
        if reduce is not None:  # multi-process training: statistics over the global batch
            e = self.n_experts
            packed = reduce(torch.cat([probs_sum, hits_sum.detach(), count.detach().reshape(1)]))
            probs_sum, hits_sum, count = packed[:e], packed[e : 2 * e], packed[2 * e]
        n = count.clamp_min(1.0)
        probs_mean = probs_sum / n
        frac = hits_sum / (n * self.top_k)
        return RouterStats(key=id(self), probs_mean=probs_mean, frac=frac)


def _expert_weight(n_experts: int, d_in: int, d_out: int, init_std: float) -> nn.Parameter:
    return nn.Parameter(torch.randn(n_experts, d_in, d_out) * init_std)


class ExpertLinear(nn.Module):
    """E linear maps f_e(x) = x W_e + b_e; W_e ~ N(0, init_std^2), b_e = 0."""

    def __init__(self, n_experts: int, d_in: int, d_out: int, init_std: float) -> None:
        super().__init__()
        self.weight = _expert_weight(n_experts, d_in, d_out, init_std)
        self.bias = nn.Parameter(torch.zeros(n_experts, d_out))

    def forward(self, x: torch.Tensor, routing: Routing) -> torch.Tensor:
        """x [N, d_in] -> sum_{e in topk} w_e (x W_e + b_e): [N, d_out]."""
        gathered = x.index_select(0, routing.tokens)
        outs = [
            torch.addmm(self.bias[e], chunk, self.weight[e])
            for e, chunk in enumerate(torch.split(gathered, routing.counts))
        ]
        return _combine(torch.cat(outs, dim=0), routing, x.shape[0])


class ExpertFFN(nn.Module):
    """E two-layer FFNs f_e(x) = GELU(x W1_e + b1_e) W2_e + b2_e; weights ~ N(0, init_std^2), biases 0."""

    def __init__(self, n_experts: int, d: int, hidden: int, init_std: float) -> None:
        super().__init__()
        self.w1 = _expert_weight(n_experts, d, hidden, init_std)
        self.b1 = nn.Parameter(torch.zeros(n_experts, hidden))
        self.w2 = _expert_weight(n_experts, hidden, d, init_std)
        self.b2 = nn.Parameter(torch.zeros(n_experts, d))

    def forward(self, x: torch.Tensor, routing: Routing) -> torch.Tensor:
        """x [N, d] -> sum_{e in topk} w_e FFN_e(x): [N, d]."""
        gathered = x.index_select(0, routing.tokens)
        outs = []
        for e, chunk in enumerate(torch.split(gathered, routing.counts)):
            hidden = F.gelu(torch.addmm(self.b1[e], chunk, self.w1[e]))
            outs.append(torch.addmm(self.b2[e], hidden, self.w2[e]))
        return _combine(torch.cat(outs, dim=0), routing, x.shape[0])


def _combine(expert_out: torch.Tensor, routing: Routing, n_tokens: int) -> torch.Tensor:
    """Scatter weighted expert outputs back to their tokens (each token sums its k experts in expert order)."""
    weighted = expert_out * routing.assign_weights.unsqueeze(-1)
    out = expert_out.new_zeros((n_tokens, expert_out.shape[-1]))
    return out.index_add(0, routing.tokens, weighted)
