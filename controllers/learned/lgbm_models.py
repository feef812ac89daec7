"""LightGBM predictors of per-depth utilities: one regressor per depth, or one depth classifier.

Trees are trained with early stopping on a seeded held-out part, and only the trees that
are used are kept, so saved files and costs match what runs. The cost of a prediction is
what really runs: one compare per internal node on the row's path through every tree
(read from `pred_leaf`), one add per tree, and the softmax of the multiclass model. Models
are saved as LightGBM text (never pickled) with their SHA-256.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from adaptive_loop.errors import CheckpointError
from adaptive_loop.io import write_text
from adaptive_loop.trace import DepthTrace
from controllers.learned.features import is_id_column
from controllers.learned.torch_fit import split_rows

SOFTMAX_FLOPS_PER_CLASS = 10.0


# --------------------------------------------------------------------------- booster helpers
def _lgb_params(objective: str, num_leaves: int, learning_rate: float, min_child_samples: int, seed: int,
                threads: int, **extra: Any) -> dict[str, Any]:
    return {
        "objective": objective, "num_leaves": num_leaves, "learning_rate": learning_rate,
        "min_data_in_leaf": min_child_samples, "feature_fraction": 0.9, "bagging_fraction": 0.9, "bagging_freq": 1,
        "lambda_l2": 1.0, "seed": seed, "deterministic": True, "force_row_wise": True, "num_threads": threads,
        "verbose": -1, **extra,
    }


def train_booster(x: np.ndarray, y: np.ndarray, names: Sequence[str], params: dict[str, Any], n_estimators: int,
                  valid_fraction: float, seed: int):
    """A booster with early stopping on a seeded held-out part (all rows when the part is empty)."""
    import lightgbm as lgb

    fit_rows, valid_rows = split_rows(x.shape[0], valid_fraction, seed)
    cats = [i for i, n in enumerate(names) if is_id_column(n)]
    train_set = lgb.Dataset(x[fit_rows], y[fit_rows], feature_name=list(names), categorical_feature=cats, free_raw_data=True)
    callbacks = []
    valid_sets = []
    if valid_rows.size:
        valid_sets = [lgb.Dataset(x[valid_rows], y[valid_rows], reference=train_set)]
        callbacks.append(lgb.early_stopping(stopping_rounds=max(10, n_estimators // 10), verbose=False))
    booster = lgb.train(params, train_set, num_boost_round=n_estimators, valid_sets=valid_sets, callbacks=callbacks)
    best = booster.best_iteration if booster.best_iteration and booster.best_iteration > 0 else booster.current_iteration()
    # keep only the trees that are used, so saved files and costs match what runs
    return _reload(booster.model_to_string(num_iteration=best))


def _reload(text: str):
    import lightgbm as lgb

    return lgb.Booster(model_str=text)


def leaf_depths(booster) -> list[np.ndarray]:
    """Per tree, the depth (internal nodes above it) of each leaf, indexed by leaf index."""
    out = []
    for info in booster.dump_model()["tree_info"]:
        depths: dict[int, int] = {}
        stack = [(info["tree_structure"], 0)]
        while stack:
            node, d = stack.pop()
            if "leaf_index" in node:
                depths[int(node["leaf_index"])] = d
            elif "split_index" in node or "left_child" in node:
                stack.append((node["left_child"], d + 1))
                stack.append((node["right_child"], d + 1))
            else:  # a single-leaf tree
                depths[0] = 0
        arr = np.zeros(max(depths) + 1 if depths else 1, dtype=np.float64)
        for k, v in depths.items():
            arr[k] = v
        out.append(arr)
    return out


def traversal_flops(booster, depths: list[np.ndarray], x: np.ndarray) -> np.ndarray:
    """FLOPs per row of walking every tree: the compares on the row's path plus one add per tree."""
    if not depths:
        return np.zeros(x.shape[0])
    leaves = np.asarray(booster.predict(x, pred_leaf=True), dtype=np.int64).reshape(x.shape[0], -1)
    total = np.zeros(x.shape[0])
    for j, d in enumerate(depths):
        total += d[leaves[:, j]]
    return total + len(depths)


def save_booster(booster, path: Path) -> str:
    """Write the model text atomically; returns its SHA-256."""
    text = booster.model_to_string()
    write_text(path, text)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def load_booster(path: Path, sha256: str | None):
    """Read a saved booster, refusing a missing, changed or unreadable file with `CheckpointError`."""
    import lightgbm as lgb

    if not path.is_file():
        raise CheckpointError(f"LightGBM model file {path} does not exist; save the controller again")
    raw = path.read_bytes()
    if sha256 is not None and hashlib.sha256(raw).hexdigest() != sha256:
        raise CheckpointError(
            f"LightGBM model file {path} is corrupted or was changed after saving (checksum mismatch); refit and save the controller again"
        )
    try:
        return lgb.Booster(model_str=raw.decode("utf-8"))
    except (lgb.basic.LightGBMError, UnicodeDecodeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"LightGBM model file {path} is not a readable LightGBM text model ({first}); refit the controller") from None


# --------------------------------------------------------------------------- predictors
class LGBMGainModel:
    """One LightGBM regressor per depth t >= 1 on the loss gain over depth 0."""

    def __init__(self, n_estimators: int = 200, num_leaves: int = 31, learning_rate: float = 0.05,
                 min_child_samples: int = 50, valid_fraction: float = 0.2, seed: int = 0, threads: int = 1) -> None:
        self.n_estimators, self.num_leaves, self.learning_rate = n_estimators, num_leaves, learning_rate
        self.min_child_samples, self.valid_fraction, self.seed, self.threads = min_child_samples, valid_fraction, seed, threads
        self.boosters: list[Any] = []
        self._depths: list[list[np.ndarray]] = []

    def fit(self, x: np.ndarray, gains: np.ndarray, names: Sequence[str]) -> "LGBMGainModel":
        """Train one regressor per depth t >= 1 on `gains[:, t]` (id columns as categoricals); returns self."""
        params = _lgb_params("regression", self.num_leaves, self.learning_rate, self.min_child_samples, self.seed, self.threads)
        self.boosters = [train_booster(x, gains[:, t], names, params, self.n_estimators, self.valid_fraction, self.seed + t)
                         for t in range(1, gains.shape[1])]
        self._depths = [leaf_depths(b) for b in self.boosters]
        return self

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(utility [n, K+1] with 0 for depth 0, FLOPs per row [n] of the trees walked)."""
        cols = [np.zeros(x.shape[0])]
        flops = np.zeros(x.shape[0])
        for b, d in zip(self.boosters, self._depths):
            cols.append(np.asarray(b.predict(x), dtype=np.float64))
            flops += traversal_flops(b, d, x)
        return np.stack(cols, axis=1), flops

    def save(self, directory: Path) -> dict[str, Any]:
        """Write each booster as LightGBM text into `directory`; returns file names and SHA-256 sums for `load`."""
        files = []
        for t, b in enumerate(self.boosters, start=1):
            name = f"gain_depth{t}.txt"
            files.append({"file": name, "sha256": save_booster(b, directory / name)})
        return {"boosters": files}

    def load(self, directory: Path, meta: dict[str, Any]) -> None:
        """Read the boosters written by `save`, checking their SHA-256 (`CheckpointError` on a mismatch)."""
        self.boosters = [load_booster(directory / f["file"], f.get("sha256")) for f in meta["boosters"]]
        self._depths = [leaf_depths(b) for b in self.boosters]


class LGBMClassModel:
    """A multiclass LightGBM model of the (cost-aware) oracle depth; utility = class probability."""

    def __init__(self, n_classes: int, n_estimators: int = 200, num_leaves: int = 31, learning_rate: float = 0.05,
                 min_child_samples: int = 50, valid_fraction: float = 0.2, seed: int = 0, threads: int = 1) -> None:
        self.n_classes = n_classes
        self.n_estimators, self.num_leaves, self.learning_rate = n_estimators, num_leaves, learning_rate
        self.min_child_samples, self.valid_fraction, self.seed, self.threads = min_child_samples, valid_fraction, seed, threads
        self.booster: Any = None
        self._depths: list[np.ndarray] = []

    def fit(self, x: np.ndarray, depth: np.ndarray, names: Sequence[str]) -> "LGBMClassModel":
        """Train the multiclass model on the target depth per row (id columns as categoricals); returns self."""
        params = _lgb_params("multiclass", self.num_leaves, self.learning_rate, self.min_child_samples, self.seed,
                             self.threads, num_class=self.n_classes)
        self.booster = train_booster(x, depth.astype(np.float64), names, params, self.n_estimators, self.valid_fraction, self.seed)
        self._depths = leaf_depths(self.booster)
        return self

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(class probabilities [n, n_classes], FLOPs per row [n]: trees walked plus the softmax)."""
        p = np.asarray(self.booster.predict(x), dtype=np.float64).reshape(x.shape[0], self.n_classes)
        flops = traversal_flops(self.booster, self._depths, x) + SOFTMAX_FLOPS_PER_CLASS * self.n_classes
        return p, flops

    def save(self, directory: Path) -> dict[str, Any]:
        """Write the booster as LightGBM text; returns file name, SHA-256 and class count for `load`."""
        return {"file": "depth_classes.txt", "sha256": save_booster(self.booster, directory / "depth_classes.txt"),
                "n_classes": self.n_classes}

    def load(self, directory: Path, meta: dict[str, Any]) -> None:
        """Read the booster written by `save`, checking its SHA-256 (`CheckpointError` on a mismatch)."""
        self.n_classes = int(meta["n_classes"])
        self.booster = load_booster(directory / meta["file"], meta.get("sha256"))
        self._depths = leaf_depths(self.booster)


def lgbm_space(trial: Any, trace: DepthTrace) -> dict[str, Any]:
    """The Optuna ranges of a LightGBM predictor (trees, leaves, learning rate, inputs)."""
    return {
        "num_leaves": trial.suggest_int("num_leaves", 7, 63, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.2, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 20, 400, log=True),
        "n_estimators": trial.suggest_int("n_estimators", 50, 300, log=True),
        "use_hidden": trial.suggest_categorical("use_hidden", [True, False]) if trace.hidden is not None else False,
        "use_logit": trial.suggest_categorical("use_logit", [True, False]),
    }
