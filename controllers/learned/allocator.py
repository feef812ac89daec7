"""The budgeted allocator (DCAF-style): predicted per-depth gains, then allocation by price.

`BudgetedAllocator` (registered as "allocator") predicts, before any loop step, each
sample's gain over depth 0 at every depth (BCE saved, or AUC contribution gained with
`gain_target="rank"`) with a small MLP (`gain_models.MLPGainModel`) or LightGBM
(`lgbm_models.LGBMGainModel`), and spends the budget where the predicted gain per unit of
cost is largest (`utility.UtilityAllocator`; the knob is the price `lam`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Mapping

import numpy as np

from adaptive_loop.errors import ConfigError
from adaptive_loop.trace import DepthTrace
from controllers.base import check_choice
from controllers.learned.gain_models import MLPGainModel, gain_table
from controllers.learned.lgbm_models import LGBMGainModel, lgbm_space
from controllers.learned.utility import UtilityAllocator
from controllers.registry import register_controller


@register_controller
class BudgetedAllocator(UtilityAllocator):
    """DCAF allocation on predicted per-depth gains over depth 0 (MLP or LightGBM)."""

    name: ClassVar[str] = "allocator"

    def __init__(
        self,
        lam: float = 0.0,
        gain_model: str = "mlp",
        gain_target: str = "bce",
        hidden: int = 32,
        n_estimators: int = 200,
        num_leaves: int = 31,
        learning_rate: float = 0.05,
        min_child_samples: int = 50,
        use_logit: bool = True,
        use_hidden: bool = True,
        features: tuple[str, ...] | None = None,
        epochs: int = 40,
        batch_size: int = 512,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        valid_fraction: float = 0.2,
        patience: int = 5,
        seed: int = 0,
    ) -> None:
        self.lam = lam
        self.gain_model = gain_model
        self.gain_target = gain_target
        self.hidden = hidden
        self.n_estimators = n_estimators
        self.num_leaves = num_leaves
        self.learning_rate = learning_rate
        self.min_child_samples = min_child_samples
        self.use_logit = use_logit
        self.use_hidden = use_hidden
        self.features = features
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.valid_fraction = valid_fraction
        self.patience = patience
        self.seed = seed

    @classmethod
    def search_space(cls, trial: Any, trace: DepthTrace, base: Mapping[str, Any]) -> dict[str, Any]:
        """LightGBM's ranges with `gain_model="lgbm"`; else the MLP's width, inputs, learning rate and decay."""
        if base.get("gain_model", "mlp") == "lgbm":
            return lgbm_space(trial, trace)
        return {
            "hidden": trial.suggest_categorical("hidden", [8, 16, 32, 64]),
            "use_hidden": trial.suggest_categorical("use_hidden", [True, False]) if trace.hidden is not None else False,
            "use_logit": trial.suggest_categorical("use_logit", [True, False]),
            "lr": trial.suggest_float("lr", 1e-3, 1e-2, log=True),
            "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True),
        }

    def _validate_params(self) -> None:
        check_choice("BudgetedAllocator", "gain_model", self.gain_model, ("mlp", "lgbm"))
        check_choice("BudgetedAllocator", "gain_target", self.gain_target, ("bce", "rank"))
        if not np.isfinite(float(self.lam)):
            raise ConfigError(f"BudgetedAllocator: lam must be finite, got {self.lam!r}")

    def _fit_predictor(self, x: np.ndarray, trace: DepthTrace, targets: Any) -> None:
        gains = gain_table(trace, self.gain_target, targets, "BudgetedAllocator")
        if self.gain_model == "mlp":
            self.predictor_ = MLPGainModel(int(self.hidden), int(self.epochs), int(self.batch_size), float(self.lr),
                                           float(self.weight_decay), float(self.valid_fraction), int(self.patience),
                                           int(self.seed)).fit(x, gains, self.features_.names)
        else:
            self.predictor_ = LGBMGainModel(
                n_estimators=int(self.n_estimators), num_leaves=int(self.num_leaves), learning_rate=float(self.learning_rate),
                min_child_samples=int(self.min_child_samples), valid_fraction=float(self.valid_fraction), seed=int(self.seed),
            ).fit(x, gains, self.features_.names)

    def _predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.predictor_.predict(x)

    def _save_predictor(self, directory: Path) -> dict[str, Any]:
        return {"kind": self.gain_model, **self.predictor_.save(directory)}

    def _load_predictor(self, directory: Path, meta: dict[str, Any]) -> None:
        if meta.get("kind") == "mlp":
            model: Any = MLPGainModel(0, 1, 1, 1.0, 0.0, 0.0, 1, 0)
        else:
            model = LGBMGainModel()
        model.load(directory, meta)
        self.predictor_ = model
