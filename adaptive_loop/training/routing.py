"""Depth routing trained with LoopCTR (`train.routing`): a router decides per row whether it loops on.

Process supervision trains every depth on every row, so all depths learn the same answer and
a post-hoc controller has little to choose. Mixture-of-Recursions (MoR, 2025) instead trains
a router with the shared block: after each recursion only the rows the router selects go on,
so the block learns to serve what is sent to it. This module is that training mode.

After loop step t < L (t = 0 right after Entry) the router, a small `HaltingHead` MLP with
a per-depth bias, reads the row's hidden summary h_t (detached: the router must not reshape
the representation to make itself easy) and outputs a score r_t:

- **expert choice** (`mode: expert_choice`): among the rows still running, the top
  round(capacity[t] * B) scores of the batch continue; the capacity is the compute budget.
- **token choice** (`mode: token_choice`): a row continues when sigmoid(r_t) >= 0.5.

Rows that stop exit at depth t. Losses (summed):

- exit loss: each row's BCE at the depth where it exits - what it will be answered with;
- process supervision, `process_weight` x the mean BCE over every depth and row: without
  it a depth's Exit only ever sees the rows routed there, so re-budgeting at inference (the
  per-sample thresholds move rows between depths) would read Exits that never saw them;
- expert choice, `selection_weight` x MoR's auxiliary BCE of sigmoid(r_t) against the
  top-k selection (rows running at t): the per-sample rule at inference thresholds r_t,
  so r_t must order rows the way the batch top-k did, on any batch;
- token choice, `balance_weight` x sum_t (mean_b running_b sigmoid(r_t,b) - capacity[t])^2:
  without it every row learns to continue (deeper is rarely worse) or to stop;
- the model's MoE balance term as in plain training.

The router's gradient path. MoR scales a selected token's block output by the router
weight, h_t+1 = h_t + g_t f(h_t), so the task loss trains g. Here the update of a
continuing row is h_t+1 = h_t + g (Loop(h_t) - h_t) with a straight-through g: its value
is 1 (the forward computes exactly the plain LoopCTR step) and its gradient is that of
g = sigmoid(r_t). The router thus learns d loss / d g = <Loop(h_t) - h_t, d loss / d h_t+1>,
the first-order gain of taking the step, while the trained model stays an ordinary LoopCTR
at inference: traces, the step-wise engine and every controller work unchanged, and the
router becomes a controller (`controllers.learned.router.RouterController`). (Scaling
by the real g would make the model's loop step depend on the router at inference.)

Every row runs every depth during training (the process-supervision term needs them), so a
step costs what a process-supervised step costs; the routing changes which losses reach
which depth, not the compute. The router is saved in every training checkpoint under the
key `routing` (plain tensors, `weights_only=True`), like the joint ACT head (`halting`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from adaptive_loop.config import RoutingConfig
from adaptive_loop.data.batch import Batch
from adaptive_loop.errors import ConfigError
from adaptive_loop.metrics import auc
from adaptive_loop.model.halting import HaltingHead
from adaptive_loop.model.loopctr import LoopCTR, SandwichState
from adaptive_loop.model.moe import AuxCollector
from adaptive_loop.routing_rules import expert_choice_depths, kept_count, threshold_depths


@dataclass
class RoutedStep:
    """One training step's routed loss and its parts (for logging)."""

    loss: torch.Tensor
    exit_bce: torch.Tensor  # mean BCE of each row at its exit depth
    aux: torch.Tensor  # the model's MoE balance loss
    router_loss: torch.Tensor  # selection BCE (expert choice) or balancing loss (token choice)
    exit_depth: torch.Tensor  # long [B]


class JointRouting:
    """The router and its routed loss for one training run (see the module docstring)."""

    def __init__(self, config: RoutingConfig, model: torch.nn.Module, batch_size: int,
                 device: torch.device | str = "cpu") -> None:
        if not isinstance(model, LoopCTR):
            raise ConfigError(f"train.routing needs a looped model (loopctr, stackctr), got {type(model).__name__}")
        if int(model.train_loops) < 1:
            raise ConfigError("train.routing needs model.train_loops >= 1 (there is no loop step to route)")
        self.config = config
        self.train_loops = int(model.train_loops)
        self.capacity = config.capacities(self.train_loops)
        self.hidden_dim = int(model.hidden_dim)
        self.batch_size = int(batch_size)
        self.head = HaltingHead(self.hidden_dim, config.hidden, self.train_loops).to(device)

    def parameters(self) -> list[torch.nn.Parameter]:
        """The router's parameters, for the optimiser."""
        return list(self.head.parameters())

    # ------------------------------------------------------------------ training
    def _select(self, scores: torch.Tensor, running: torch.Tensor, t: int) -> torch.Tensor:
        """Bool [B]: the running rows that run step t+1."""
        if self.config.mode == "token_choice":
            return running & (scores >= 0)
        k = kept_count(self.capacity[t], int(scores.shape[0]), int(running.sum()))
        chosen = torch.zeros_like(running)
        if k > 0:
            masked = torch.where(running, scores, torch.full_like(scores, -torch.inf))
            chosen[torch.topk(masked, k).indices] = True
        return chosen

    def step_loss(self, model: LoopCTR, batch: Batch, aux_weight: float) -> RoutedStep:
        """Routed forward of one training batch and its loss (every row runs every depth; see the module docstring)."""
        aux = AuxCollector()
        labels = batch.labels
        state = model._enter(batch, aux)
        logits = [model._exit(state, aux)]
        n = len(batch)
        running = torch.ones(n, dtype=torch.bool, device=labels.device)
        exit_depth = torch.full((n,), self.train_loops, dtype=torch.long, device=labels.device)
        router_terms = []
        for t in range(self.train_loops):
            h = model.summarize(state).detach()
            self.head.update_stats(h)
            r = self.head.at_depth(h, t)
            selected = self._select(r.detach(), running, t)
            exit_depth[running & ~selected] = t
            g = torch.sigmoid(r)
            if self.config.mode == "token_choice":
                share = (g * running).sum() / n
                router_terms.append(self.config.balance_weight * (share - self.capacity[t]) ** 2)
            elif bool(running.any()):
                target = selected[running].to(r.dtype)
                router_terms.append(self.config.selection_weight * F.binary_cross_entropy_with_logits(r[running], target))
            stepped = model._loop(state, aux)
            gate = (selected.to(g.dtype) * (g - g.detach())).view(n, *([1] * (stepped.streams.dim() - 1)))
            streams = stepped.streams + gate * (stepped.streams - state.streams)  # value: exactly the plain step
            state = SandwichState(streams, stepped.valid, stepped.n_seq, stepped.depth)
            running = selected
            logits.append(model._exit(state, aux))
        z = torch.stack(logits, dim=1)
        per_depth = F.binary_cross_entropy_with_logits(z, labels.unsqueeze(1).expand_as(z), reduction="none")
        exit_bce = per_depth.gather(1, exit_depth.unsqueeze(1)).mean()
        aux_loss = aux.loss(model.config.balance_loss, device=z.device)
        router_loss = torch.stack(router_terms).sum() if router_terms else z.new_zeros(())
        loss = exit_bce + self.config.process_weight * per_depth.mean() + aux_weight * aux_loss + router_loss
        return RoutedStep(loss, exit_bce, aux_loss, router_loss, exit_depth)

    # ------------------------------------------------------------------ validation
    @torch.no_grad()
    def router_scores(self, hidden: np.ndarray) -> np.ndarray:
        """Router logits [n, L] from per-depth hidden summaries [n, >= L, h] (depths 0..L-1 are read)."""
        h = torch.as_tensor(np.asarray(hidden[:, : self.train_loops], dtype=np.float32), device=self.head.mean.device)
        cols = [self.head.at_depth(h[:, t], t) for t in range(self.train_loops)]
        return torch.stack(cols, dim=1).double().cpu().numpy()

    def routed_depths(self, scores: np.ndarray) -> np.ndarray:
        """The training rule on scores [n, L]: batch top-k in batches of train.batch_size, or token choice."""
        if self.config.mode == "token_choice":
            return threshold_depths(scores, np.zeros(self.train_loops))
        return expert_choice_depths(scores, self.capacity, self.batch_size)

    def routed_auc(self, labels: np.ndarray, logits: np.ndarray, hidden: np.ndarray) -> tuple[float, float]:
        """(AUC of every row at its routed depth, mean loop count) on a split's logits [n, >= L+1] and summaries."""
        depth = self.routed_depths(self.router_scores(hidden))
        chosen = logits[np.arange(logits.shape[0]), depth]
        return auc(labels, chosen), float(depth.mean()) if depth.size else float("nan")

    # ------------------------------------------------------------------ checkpoints
    def payload(self) -> dict[str, Any]:
        """What goes into a training checkpoint (tensors and plain values only)."""
        return {
            "state": {k: v.detach().cpu() for k, v in self.head.state_dict().items()},
            "layout": {"in_dim": self.hidden_dim, "hidden": self.config.hidden, "n_depths": self.train_loops,
                       "hidden_dim": self.hidden_dim, "mode": self.config.mode, "capacity": list(self.capacity),
                       "batch_size": self.batch_size},
        }

    def restore(self, payload: dict[str, Any]) -> None:
        """Load the router's weights from a checkpoint payload written by `payload()`."""
        self.head.load_state_dict(payload["state"])


def build_joint_routing(config: RoutingConfig, model: torch.nn.Module, batch_size: int,
                        device: torch.device | str) -> JointRouting | None:
    """The router of a run, or None when `train.routing.mode` is 'off'."""
    if not config.enabled:
        return None
    return JointRouting(config, model, batch_size, device)
