"""Joint ACT training: an ACT halting head trained together with LoopCTR (`train.halting`).

With `train.halting.enabled: true` the trainer asks for hidden summaries in every forward
pass and adds

    weight * [ sum_t p_t BCE_t + tau * (N + R) ]        (ACT, Graves 2016; eps = train.halting.eps)

to the process-supervised loss, where p is the ACT halting distribution of a small
`HaltingHead` over the trained depths 0..L (L is the forced halt). With `detach: false`
(default) the ACT term also reaches the model, so the depths can specialise on the rows the
head sends to them; with `detach: true` the model trains exactly as without the head and
the head only learns alongside. The head's inputs are standardised with running statistics
(summaries drift while the model trains).

The head is saved in every training checkpoint under the key `halting` (plain tensors,
loadable with `weights_only=True`); `controllers.learned.act.ACTHalting(mode="joint",
checkpoint=".../best.pt")` loads it to run as a controller on a trace of the same run.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from adaptive_loop.config import HaltingConfig
from adaptive_loop.model.api import DepthOutputs
from adaptive_loop.model.halting import N_LOGIT_FEATURES, HaltingHead, act_loss, step_features


class JointHalting:
    """The ACT head and its loss term for one training run."""

    def __init__(self, config: HaltingConfig, hidden_dim: int, train_loops: int, device: torch.device | str = "cpu") -> None:
        self.config = config
        self.in_dim = int(hidden_dim) + N_LOGIT_FEATURES
        self.n_depths = int(train_loops) + 1
        self.head = HaltingHead(self.in_dim, config.hidden, self.n_depths).to(device)

    def parameters(self) -> list[torch.nn.Parameter]:
        """The halting head's parameters, for the optimiser."""
        return list(self.head.parameters())

    def loss(self, out: DepthOutputs, labels: torch.Tensor) -> torch.Tensor:
        """weight * ACT loss on a forward pass that returned hidden summaries."""
        if out.hidden is None:
            raise RuntimeError("joint halting needs the forward pass to return hidden summaries")
        logits, hidden = out.logits, out.hidden
        if self.config.detach:
            logits, hidden = logits.detach(), hidden.detach()
        x = step_features(hidden, logits)
        if self.head.training:
            self.head.update_stats(x)
        per_depth = F.binary_cross_entropy_with_logits(logits, labels.unsqueeze(1).expand_as(logits), reduction="none")
        return self.config.weight * act_loss(self.head(x), per_depth, self.config.eps, self.config.tau)

    def train(self, mode: bool = True) -> None:
        """Put the head in training (`mode=True`) or eval mode; in training mode `loss` updates its input statistics."""
        self.head.train(mode)

    def payload(self) -> dict[str, Any]:
        """What goes into a training checkpoint (tensors and plain values only)."""
        return {
            "state": {k: v.detach().cpu() for k, v in self.head.state_dict().items()},
            "layout": {"in_dim": self.in_dim, "hidden": self.config.hidden, "n_depths": self.n_depths,
                       "hidden_dim": self.in_dim - N_LOGIT_FEATURES, "eps": self.config.eps, "tau": self.config.tau},
        }

    def restore(self, payload: dict[str, Any]) -> None:
        """Load the head's weights from a checkpoint payload written by `payload()`."""
        self.head.load_state_dict(payload["state"])


def build_joint_halting(config: HaltingConfig, model: torch.nn.Module, device: torch.device | str) -> JointHalting | None:
    """The joint head for a run, or None when `train.halting.enabled` is false."""
    if not config.enabled:
        return None
    return JointHalting(config, int(model.hidden_dim), int(model.train_loops), device)
