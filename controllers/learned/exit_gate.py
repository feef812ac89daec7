"""Exit gate with a learned exit distribution (PonderNet, Ouro / LoopLM).

After each loop step t a small head outputs an exit probability lambda_t (see
`adaptive_loop.model.halting`). They define the exit distribution

    p(t) = lambda_t * prod_{j<t} (1 - lambda_j),   lambda_K = 1,

trained on a frozen model's trace with loss sum_t p(t) * BCE_t - beta * H(p) (or
+ beta * KL(p || truncated geometric(prior_rate)) when `prior_rate` is set, PonderNet); with
`loss="rank"` the per-depth loss is minus the AUC-contribution gain instead of BCE. An
optional second stage (`stage2_epochs > 0`, Ouro) continues training the gate alone with
BCE towards "continue" where the next step improves the sample's loss by more than
`stage2_gamma` (soft target sigmoid(stage2_k * (BCE_t - BCE_{t+1} - stage2_gamma))).

Inference stops at the first depth whose exit CDF sum_{j<=t} p(j) = 1 - prod_{j<=t}(1 -
lambda_j) reaches `q` (the budget knob; a larger q runs deeper and costs more).

Cost per visited depth below the last: summary + head + sigmoid + 4 FLOPs (1 - lambda,
running product, 1 - product, compare).
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
class ExitGate(HeadController):
    """Learned exit distribution: stop once its CDF reaches q."""

    name: ClassVar[str] = "exit_gate"
    budget_param: ClassVar[str] = "q"
    stop_if: ClassVar[str] = "ge"
    rule_flops: ClassVar[float] = 4.0

    def __init__(
        self,
        q: float = 0.5,
        beta: float = 0.01,
        prior_rate: float | None = None,
        stage2_epochs: int = 0,
        stage2_k: float = 50.0,
        stage2_gamma: float = 0.005,
        loss: str = "bce",
        hidden: int = 16,
        use_hidden: bool = True,
        epochs: int = 40,
        batch_size: int = 512,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        valid_fraction: float = 0.2,
        patience: int = 5,
        seed: int = 0,
    ) -> None:
        self.q = q
        self.beta = beta
        self.prior_rate = prior_rate
        self.stage2_epochs = stage2_epochs
        self.stage2_k = stage2_k
        self.stage2_gamma = stage2_gamma
        self.loss = loss
        self.hidden = hidden
        self.use_hidden = use_hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.valid_fraction = valid_fraction
        self.patience = patience
        self.seed = seed

    # the gate is always trained post hoc; these keep the shared validation simple
    mode: ClassVar[str] = "posthoc"
    checkpoint: ClassVar[None] = None

    @classmethod
    def search_space(cls, trial: Any, trace: DepthTrace, base: Mapping[str, Any]) -> dict[str, Any]:
        """The entropy weight, the geometric prior and Ouro's second stage, then the head's ranges."""
        params = {
            "beta": trial.suggest_float("beta", 1e-4, 0.1, log=True),
            "prior_rate": trial.suggest_categorical("prior_rate", [None, 0.2, 0.5]),
            "stage2_epochs": trial.suggest_categorical("stage2_epochs", [0, 15]),
            **cls.head_space(trial, trace),
        }
        if params["stage2_epochs"]:
            params["stage2_k"] = trial.suggest_float("stage2_k", 5.0, 200.0, log=True)
            params["stage2_gamma"] = trial.suggest_float("stage2_gamma", 1e-4, 0.02, log=True)
        return params

    def _validate_params(self) -> None:
        self._validate_common()
        if not float(self.beta) >= 0:
            raise ConfigError(f"ExitGate: beta must be >= 0, got {self.beta!r}")
        if self.prior_rate is not None and not 0.0 < float(self.prior_rate) < 1.0:
            raise ConfigError(f"ExitGate: prior_rate must lie in (0, 1) or be None, got {self.prior_rate!r}")
        if not isinstance(self.stage2_epochs, (int, np.integer)) or self.stage2_epochs < 0:
            raise ConfigError(f"ExitGate: stage2_epochs must be an integer >= 0, got {self.stage2_epochs!r}")
        if not np.isfinite(float(self.q)):
            raise ConfigError(f"ExitGate: q must be finite, got {self.q!r}")

    def _train_head(self, x, losses, fit_rows, valid_rows) -> tuple[dict, TrainLog]:
        import torch

        from adaptive_loop.model.halting import exit_gate_loss, exit_gate_stage2_loss  # torch: imported only to fit

        head = self._new_head(x.shape[2], x.shape[1], x, fit_rows)
        xt = torch.from_numpy(x.astype(np.float64))
        lt = torch.from_numpy(losses.astype(np.float64))
        beta = float(self.beta)
        rate = None if self.prior_rate is None else float(self.prior_rate)
        common = dict(batch_size=int(self.batch_size), lr=float(self.lr), weight_decay=float(self.weight_decay),
                      patience=int(self.patience), seed=int(self.seed))

        def stage1(rows: np.ndarray) -> torch.Tensor:
            idx = torch.from_numpy(rows)
            return exit_gate_loss(head(xt[idx]), lt[idx], beta, rate)

        log = train_module(head, stage1, fit_rows, valid_rows, epochs=int(self.epochs), **common)
        if int(self.stage2_epochs) > 0:
            k, gamma = float(self.stage2_k), float(self.stage2_gamma)

            def stage2(rows: np.ndarray) -> torch.Tensor:
                idx = torch.from_numpy(rows)
                return exit_gate_stage2_loss(head(xt[idx]), lt[idx], k, gamma)

            log2 = train_module(head, stage2, fit_rows, valid_rows, epochs=int(self.stage2_epochs), **common)
            log.train_loss += log2.train_loss
            log.valid_loss += log2.valid_loss
            log.epochs_run += log2.epochs_run
            log.seconds += log2.seconds
        return to_numpy_weights(head.export()), log

    def _init_state(self, n_rows: int) -> dict[str, np.ndarray]:
        return {"survive": np.ones(n_rows)}

    def _combine(self, logits: np.ndarray, step: StepView, state: dict[str, np.ndarray]) -> np.ndarray:
        rows = step.row_index
        survive = (state["survive"][rows] if step.depth > 0 else 1.0) * (1.0 - sigmoid(logits))
        state["survive"][rows] = survive
        return 1.0 - survive

    def _knob_bounds(self, trace) -> tuple[float, float]:
        return 0.0, 1.0
