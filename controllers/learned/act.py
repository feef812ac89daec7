"""ACT halting head (Graves 2016): halt once the cumulative halting probability reaches 1 - eps.

After each loop step t a small head outputs a halting probability h_t from the hidden
summary and the prediction (see `adaptive_loop.model.halting`). A row stops at the first
depth whose remaining mass R_t = 1 - sum_{j<=t} h_j is below `eps` (the budget knob; a
larger eps stops earlier and costs less) and answers with that depth's prediction.

Two ways to train the head:
- `mode="posthoc"` (default): on a frozen model's validation trace, minimising the
  expected per-depth loss under the ACT halting distribution plus the ponder cost
  tau * (N + R); `train_eps` is the threshold used while training. The per-depth loss is
  the sample's BCE (`loss="bce"`) or minus its AUC-contribution gain (`loss="rank"`). A trace built with the
  step-wise API (`adaptive_loop.trace_builder.trace_from_model`) works the same way.
- `mode="joint"`: the head was trained together with LoopCTR (`train.halting.enabled`, see
  `adaptive_loop.training.joint_halting`); `fit` loads it from `checkpoint` and stops every row by L.

Cost per visited depth below the last: summary + head + sigmoid + 3 FLOPs of bookkeeping
(add to the running sum, remainder, compare).
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

import numpy as np

from adaptive_loop.errors import ConfigError
from adaptive_loop.metrics import sigmoid
from adaptive_loop.trace import DepthTrace
from controllers.base import StepView
from controllers.learned.heads import HeadController
from controllers.learned.torch_fit import TrainLog, to_numpy_weights, train_module
from controllers.registry import register_controller


@register_controller
class ACTHalting(HeadController):
    """Learned ACT halting: stop when the remaining halting mass drops below eps."""

    name: ClassVar[str] = "act"
    budget_param: ClassVar[str] = "eps"
    stop_if: ClassVar[str] = "lt"
    rule_flops: ClassVar[float] = 3.0

    def __init__(
        self,
        eps: float = 0.1,
        tau: float = 0.005,
        train_eps: float = 0.05,
        loss: str = "bce",
        hidden: int = 16,
        use_hidden: bool = True,
        mode: str = "posthoc",
        checkpoint: str | None = None,
        epochs: int = 40,
        batch_size: int = 512,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        valid_fraction: float = 0.2,
        patience: int = 5,
        seed: int = 0,
    ) -> None:
        self.eps = eps
        self.tau = tau
        self.train_eps = train_eps
        self.loss = loss
        self.hidden = hidden
        self.use_hidden = use_hidden
        self.mode = mode
        self.checkpoint = checkpoint
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.valid_fraction = valid_fraction
        self.patience = patience
        self.seed = seed

    @classmethod
    def search_space(cls, trial: Any, trace: DepthTrace, base: Mapping[str, Any]) -> dict[str, Any]:
        """ACT's ponder cost and training threshold, then the head's ranges; nothing with `mode="joint"`.

        A jointly trained head (`mode="joint"`) was fitted with the model: only the knob is left.
        """
        if base.get("mode") == "joint":
            return {}
        return {
            "tau": trial.suggest_float("tau", 1e-4, 0.05, log=True),
            "train_eps": trial.suggest_float("train_eps", 0.01, 0.3, log=True),
            **cls.head_space(trial, trace),
        }

    def _validate_params(self) -> None:
        self._validate_common()
        if not 0.0 < float(self.train_eps) < 1.0:
            raise ConfigError(f"ACTHalting: train_eps must lie in (0, 1), got {self.train_eps!r}")
        if not float(self.tau) >= 0:
            raise ConfigError(f"ACTHalting: tau must be >= 0, got {self.tau!r}")
        if not np.isfinite(float(self.eps)):
            raise ConfigError(f"ACTHalting: eps must be finite, got {self.eps!r}")

    def _train_head(self, x, losses, fit_rows, valid_rows) -> tuple[dict, TrainLog]:
        import torch

        from adaptive_loop.model.halting import act_loss  # torch: imported only to fit

        head = self._new_head(x.shape[2], x.shape[1], x, fit_rows)
        xt = torch.from_numpy(x.astype(np.float64))
        lt = torch.from_numpy(losses.astype(np.float64))
        eps, tau = float(self.train_eps), float(self.tau)

        def loss_fn(rows: np.ndarray) -> torch.Tensor:
            idx = torch.from_numpy(rows)
            return act_loss(head(xt[idx]), lt[idx], eps, tau)

        log = train_module(
            head, loss_fn, fit_rows, valid_rows, epochs=int(self.epochs), batch_size=int(self.batch_size),
            lr=float(self.lr), weight_decay=float(self.weight_decay), patience=int(self.patience), seed=int(self.seed),
        )
        return to_numpy_weights(head.export()), log

    def _init_state(self, n_rows: int) -> dict[str, np.ndarray]:
        return {"cum": np.zeros(n_rows)}

    def _combine(self, logits: np.ndarray, step: StepView, state: dict[str, np.ndarray]) -> np.ndarray:
        rows = step.row_index
        cum = (state["cum"][rows] if step.depth > 0 else 0.0) + sigmoid(logits)
        state["cum"][rows] = cum
        return 1.0 - cum

    def _knob_bounds(self, trace) -> tuple[float, float]:
        return 1.0, 0.0
