"""Learned halting heads and their losses (ACT, PonderNet / Ouro exit gate), in torch.

A halting head reads what the engine has after each loop step - the hidden summary h_t,
the Exit logit z_t and the change z_t - z_{t-1} - and outputs one logit per depth:

    x_t = [h_t, z_t, |z_t|, z_t - z_{t-1}]       (h_t left out when summaries are not used)
    a_t = w2 . relu(W1 ((x_t - mean) / std) + b1 + e_t) + b2      (e_t: a learned per-depth bias)

(`hidden=0` drops the middle layer: a_t = w . x_std + b + e_t). The same head serves two
stopping rules, which differ only in how the per-depth probabilities sigmoid(a_t) combine:

- ACT (Graves 2016): halting probabilities h_t; stop at the first t whose cumulative sum
  reaches 1 - eps. Trained with the expected per-depth loss plus a ponder cost
  tau * (N + R) (N = halting step, R = remainder, only R carries a gradient).
- Exit gate (PonderNet, Ouro): exit probabilities lambda_t give the exit distribution
  p(t) = lambda_t prod_{j<t} (1 - lambda_j) (lambda_K = 1); loss sum_t p(t) loss_t minus
  beta times its entropy, or plus beta times KL to a truncated geometric prior. The
  optional second stage (Ouro) trains lambda_t with BCE towards "stop" when the next step
  improves the sample's loss by less than gamma: the continue target is
  sigmoid(k * (loss_t - loss_{t+1} - gamma)).

The inputs are standardised inside the head with `mean` / `std` buffers: set from data for
post-hoc training, or tracked as running statistics during joint training with LoopCTR.
Controllers run the fitted head in numpy (see `controllers.learned.heads`), so this module is only
needed to train one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

N_LOGIT_FEATURES = 3  # z_t, |z_t|, z_t - z_{t-1}


def step_features(hidden: torch.Tensor | None, logits: torch.Tensor) -> torch.Tensor:
    """Per-depth head inputs [B, D, f] from summaries [B, D, h] (or None) and logits [B, D]."""
    z = logits.unsqueeze(-1)
    prev = torch.cat([logits[:, :1], logits[:, :-1]], dim=1).unsqueeze(-1)
    parts = [z, z.abs(), z - prev]
    if hidden is not None:
        parts.insert(0, hidden)
    return torch.cat(parts, dim=-1)


class HaltingHead(nn.Module):
    """A small MLP mapping per-depth step features to one halting (or exit) logit per depth."""

    def __init__(self, in_dim: int, hidden: int, n_depths: int, momentum: float = 0.01) -> None:
        super().__init__()
        if in_dim < 1 or hidden < 0 or n_depths < 1:
            raise ValueError(f"HaltingHead needs in_dim >= 1, hidden >= 0, n_depths >= 1; got {in_dim}, {hidden}, {n_depths}")
        self.in_dim, self.hidden, self.n_depths, self.momentum = in_dim, hidden, n_depths, momentum
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("std", torch.ones(in_dim))
        self.register_buffer("stats_seen", torch.zeros((), dtype=torch.long))
        width = hidden if hidden > 0 else 1
        self.fc1 = nn.Linear(in_dim, width)
        self.depth_bias = nn.Embedding(n_depths, width)
        nn.init.zeros_(self.depth_bias.weight)
        self.fc2 = nn.Linear(hidden, 1) if hidden > 0 else None

    def set_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Fix the input standardisation (post-hoc training on known data)."""
        self.mean.copy_(mean.to(self.mean))
        self.std.copy_(std.to(self.std).clamp_min(1e-6))
        self.stats_seen.fill_(1)

    @torch.no_grad()
    def update_stats(self, x: torch.Tensor) -> None:
        """Running mean / std of the inputs (joint training, where summaries drift)."""
        flat = x.detach().reshape(-1, self.in_dim).float()
        mean, std = flat.mean(0), flat.std(0, unbiased=False).clamp_min(1e-6)
        if int(self.stats_seen) == 0:
            self.mean.copy_(mean)
            self.std.copy_(std)
        else:
            self.mean.lerp_(mean, self.momentum)
            self.std.lerp_(std, self.momentum)
        self.stats_seen += 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [B, D] for inputs [B, D, f] at depths 0..D-1 (D <= n_depths)."""
        d = x.shape[1]
        if d > self.n_depths:
            raise ValueError(f"HaltingHead was built for {self.n_depths} depths, got {d}")
        xs = (x - self.mean) / self.std
        a = self.fc1(xs) + self.depth_bias.weight[:d].unsqueeze(0)
        if self.fc2 is None:
            return a.squeeze(-1)
        return self.fc2(torch.relu(a)).squeeze(-1)

    def export(self) -> dict[str, torch.Tensor]:
        """Plain tensors for numpy inference: mean, std, w1 [f, H], b1, e [D, H], w2 [H, 1], b2."""
        out = {
            "mean": self.mean.detach().cpu().double(),
            "std": self.std.detach().cpu().double(),
            "w1": self.fc1.weight.detach().cpu().double().T.contiguous(),
            "b1": self.fc1.bias.detach().cpu().double(),
            "e": self.depth_bias.weight.detach().cpu().double(),
        }
        if self.fc2 is not None:
            out["w2"] = self.fc2.weight.detach().cpu().double().T.contiguous()
            out["b2"] = self.fc2.bias.detach().cpu().double()
        return out


# --------------------------------------------------------------------------- ACT
def act_distribution(halt_logits: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(p [B, D], halting step N [B] (long), remainder R [B]) of ACT with threshold 1 - eps.

    N is the first depth t < D-1 whose cumulative halting probability reaches 1 - eps (else
    D-1); p_t = h_t before N, p_N = R = 1 - sum_{j<N} h_j, 0 after.
    """
    h = torch.sigmoid(halt_logits)
    b, d = h.shape
    cum = torch.cumsum(h, dim=1)
    reached = cum[:, : d - 1] >= 1.0 - eps
    reached = torch.cat([reached, torch.ones(b, 1, dtype=torch.bool, device=h.device)], dim=1)
    n_step = torch.argmax(reached.to(torch.int8), dim=1)
    steps = torch.arange(d, device=h.device).unsqueeze(0)
    before = steps < n_step.unsqueeze(1)
    cum_before = torch.where(n_step > 0, cum.gather(1, (n_step - 1).clamp_min(0).unsqueeze(1)).squeeze(1), torch.zeros_like(n_step, dtype=h.dtype))
    remainder = 1.0 - cum_before
    p = torch.where(before, h, torch.zeros_like(h))
    p = p.scatter(1, n_step.unsqueeze(1), remainder.unsqueeze(1))
    return p, n_step, remainder


def act_loss(halt_logits: torch.Tensor, losses: torch.Tensor, eps: float, tau: float) -> torch.Tensor:
    """Mean over rows of sum_t p_t loss_t + tau * (N + R) (Graves' ponder cost)."""
    p, n_step, remainder = act_distribution(halt_logits, eps)
    return ((p * losses).sum(dim=1) + tau * (n_step.to(p.dtype) + remainder)).mean()


# --------------------------------------------------------------------------- exit gate
def exit_distribution(gate_logits: torch.Tensor) -> torch.Tensor:
    """p(t) = lambda_t prod_{j<t} (1 - lambda_j) with lambda_{D-1} = 1, [B, D] (sums to 1)."""
    b, d = gate_logits.shape
    log_lam = F.logsigmoid(gate_logits)
    log_stay = F.logsigmoid(-gate_logits)
    log_lam = torch.cat([log_lam[:, : d - 1], torch.zeros(b, 1, dtype=log_lam.dtype, device=log_lam.device)], dim=1)
    survive = torch.cat([torch.zeros(b, 1, dtype=log_stay.dtype, device=log_stay.device), torch.cumsum(log_stay[:, : d - 1], dim=1)], dim=1)
    return torch.exp(log_lam + survive)


def geometric_prior(n_depths: int, rate: float, device: torch.device | None = None) -> torch.Tensor:
    """Truncated geometric exit prior: g_t = rate (1 - rate)^t for t < D-1, the rest at D-1."""
    t = torch.arange(n_depths, dtype=torch.float32, device=device)
    g = rate * (1.0 - rate) ** t
    g[-1] = (1.0 - rate) ** (n_depths - 1)
    return g


def exit_gate_loss(
    gate_logits: torch.Tensor, losses: torch.Tensor, beta: float, prior_rate: float | None = None
) -> torch.Tensor:
    """Mean over rows of sum_t p(t) loss_t - beta H(p), or + beta KL(p || geometric) with a prior rate."""
    p = exit_distribution(gate_logits)
    expected = (p * losses).sum(dim=1)
    logp = torch.log(p.clamp_min(1e-12))
    if prior_rate is None:
        reg = (p * logp).sum(dim=1)  # = -H(p)
    else:
        g = geometric_prior(p.shape[1], prior_rate, p.device).clamp_min(1e-12)
        reg = (p * (logp - torch.log(g))).sum(dim=1)
    return (expected + beta * reg).mean()


def improvement_targets(losses: torch.Tensor, k: float, gamma: float) -> torch.Tensor:
    """Ouro stage-2 continue targets w_t = sigmoid(k (loss_t - loss_{t+1} - gamma)), [B, D-1]."""
    return torch.sigmoid(k * (losses[:, :-1] - losses[:, 1:] - gamma))


def exit_gate_stage2_loss(gate_logits: torch.Tensor, losses: torch.Tensor, k: float, gamma: float) -> torch.Tensor:
    """BCE of the stop probability lambda_t against 1 - w_t at depths 0..D-2."""
    w = improvement_targets(losses, k, gamma)
    return F.binary_cross_entropy_with_logits(gate_logits[:, :-1], 1.0 - w)

