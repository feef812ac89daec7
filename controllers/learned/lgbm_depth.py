"""LightGBM depth predictor: decide each sample's depth up front, before any loop step.

Inputs (`controllers.learned.features.UpfrontFeatures`): the trace's side columns (field ids as
LightGBM categoricals, sequence lengths, ...; ground truth such as synthetic `needed_depth`
is never used), the depth-0 logit and |logit|, and the depth-0 hidden summary. Two targets:

- `target="oracle"`: multiclass over depths 0..K on the oracle depth (or the cost-aware
  oracle depth with `oracle_cost_lambda > 0`); the utility of depth t is its predicted
  class probability, so at price 0 a row takes its most likely oracle depth;
- `target="gain"`: one regressor per depth t >= 1 on the per-sample gain over depth 0
  (`adaptive_loop.depth_targets`): BCE saved (`gain_target="bce"`) or AUC contribution gained
  (`gain_target="rank"`); the utility is the predicted (expected) gain.

Either way the depth is `argmax_t utility(t) - lam * cost(t)` (see
`controllers.learned.utility`), with `lam` the budget knob.

Cost, once per row: the summary (when used), |z_0|, the trees actually walked (one compare
per internal node on the row's path, read from `pred_leaf`, plus one add per tree), the
softmax for the multiclass target (10 FLOPs per class), and the allocation (3 per depth).
The boosters (`lgbm_models.py`) are saved in LightGBM's own text format (never pickled)
beside a JSON file with their SHA-256, so a truncated or edited model file is refused with a
clear error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Mapping

import numpy as np

from adaptive_loop.depth_targets import oracle_depths
from adaptive_loop.errors import ConfigError
from adaptive_loop.io import write_text
from adaptive_loop.trace import DepthTrace
from controllers.base import check_choice
from controllers.learned.gain_models import gain_table
from controllers.learned.lgbm_models import LGBMClassModel, LGBMGainModel, lgbm_space
from controllers.learned.utility import UtilityAllocator
from controllers.registry import register_controller


@register_controller
class LGBMDepth(UtilityAllocator):
    """LightGBM up-front depth predictor (oracle-depth classes or per-depth gains), priced by lam."""

    name: ClassVar[str] = "lgbm_depth"

    def __init__(
        self,
        lam: float = 0.0,
        target: str = "oracle",
        oracle_cost_lambda: float = 0.0,
        gain_target: str = "bce",
        n_estimators: int = 200,
        num_leaves: int = 31,
        learning_rate: float = 0.05,
        min_child_samples: int = 50,
        use_logit: bool = True,
        use_hidden: bool = True,
        features: tuple[str, ...] | None = None,
        valid_fraction: float = 0.2,
        threads: int = 1,
        seed: int = 0,
    ) -> None:
        self.lam = lam
        self.target = target
        self.oracle_cost_lambda = oracle_cost_lambda
        self.gain_target = gain_target
        self.n_estimators = n_estimators
        self.num_leaves = num_leaves
        self.learning_rate = learning_rate
        self.min_child_samples = min_child_samples
        self.use_logit = use_logit
        self.use_hidden = use_hidden
        self.features = features
        self.valid_fraction = valid_fraction
        self.threads = threads
        self.seed = seed

    @classmethod
    def search_space(cls, trial: Any, trace: DepthTrace, base: Mapping[str, Any]) -> dict[str, Any]:
        """LightGBM's ranges, plus the oracle's cost price for the depth-class target."""
        params = lgbm_space(trial, trace)
        if base.get("target", "oracle") == "oracle":
            params["oracle_cost_lambda"] = trial.suggest_categorical("oracle_cost_lambda", [0.0, 0.001, 0.003, 0.01, 0.03])
        return params

    def _validate_params(self) -> None:
        check_choice("LGBMDepth", "target", self.target, ("oracle", "gain"))
        check_choice("LGBMDepth", "gain_target", self.gain_target, ("bce", "rank"))
        for key in ("n_estimators", "num_leaves", "min_child_samples", "threads"):
            v = getattr(self, key)
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise ConfigError(f"LGBMDepth: {key} must be an integer >= 1, got {v!r}")
        if not float(self.learning_rate) > 0:
            raise ConfigError(f"LGBMDepth: learning_rate must be > 0, got {self.learning_rate!r}")
        if not float(self.oracle_cost_lambda) >= 0:
            raise ConfigError(f"LGBMDepth: oracle_cost_lambda must be >= 0, got {self.oracle_cost_lambda!r}")
        if not np.isfinite(float(self.lam)):
            raise ConfigError(f"LGBMDepth: lam must be finite, got {self.lam!r}")

    def _fit_predictor(self, x: np.ndarray, trace: DepthTrace, targets: Any) -> None:
        common = dict(n_estimators=int(self.n_estimators), num_leaves=int(self.num_leaves),
                      learning_rate=float(self.learning_rate), min_child_samples=int(self.min_child_samples),
                      valid_fraction=float(self.valid_fraction), seed=int(self.seed), threads=int(self.threads))
        names = self.features_.names
        if self.target == "oracle":
            depth = oracle_depths(trace, float(self.oracle_cost_lambda)) if targets is None else np.asarray(targets)
            if depth.shape != (trace.n_samples,):
                raise ConfigError(f"LGBMDepth: oracle-depth targets must have shape ({trace.n_samples},), got {depth.shape}")
            self.predictor_ = LGBMClassModel(trace.n_depths, **common).fit(x, depth, names)
        else:
            gains = gain_table(trace, self.gain_target, targets, "LGBMDepth")
            self.predictor_ = LGBMGainModel(**common).fit(x, gains, names)

    def _predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.predictor_.predict(x)

    def _save_predictor(self, directory: Path) -> dict[str, Any]:
        meta = {"target": self.target, **self.predictor_.save(directory)}
        write_text(directory / "lgbm_params.json", json.dumps(self.get_params(deep=False), indent=2, default=str) + "\n")
        return meta

    def _load_predictor(self, directory: Path, meta: dict[str, Any]) -> None:
        if meta.get("target") == "oracle":
            model: Any = LGBMClassModel(n_classes=int(meta["n_classes"]))
        else:
            model = LGBMGainModel()
        model.load(directory, meta)
        self.predictor_ = model
