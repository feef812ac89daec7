"""Per-depth gain targets and the MLP that regresses them (the budgeted allocator's default predictor).

The targets are per-sample gains over depth 0 (`adaptive_loop.depth_targets`): BCE saved,
or AUC contribution gained (`gain_target="rank"`). The LightGBM regressors of the same
targets are in `lgbm_models.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from adaptive_loop.depth_targets import gain_targets, rank_gains
from adaptive_loop.errors import CheckpointError, ConfigError
from adaptive_loop.io import load_checkpoint, save_checkpoint
from adaptive_loop.trace import DepthTrace
from controllers.learned.features import is_id_column
from controllers.learned.torch_fit import TrainLog, rowwise_affine, split_rows, to_numpy_weights, to_tensor_weights, train_module


def gain_table(trace: DepthTrace, gain_target: str, targets: Any, owner: str) -> np.ndarray:
    """Per-sample gains over depth 0 [n, K+1] to regress: BCE saved (`"bce"`), AUC contribution
    gained (`"rank"`, `adaptive_loop.depth_targets.rank_gains`), or a table given as `targets`."""
    if targets is not None:
        gains = np.asarray(getattr(targets, "over_depth0", targets), dtype=np.float64)
    elif gain_target == "rank":
        gains = rank_gains(trace)
    else:
        gains = gain_targets(trace).over_depth0
    if gains.shape != trace.logits.shape:
        raise ConfigError(f"{owner}: gain targets must have shape {trace.logits.shape}, got {gains.shape}")
    return gains


class MLPGainModel:
    """Per-depth gains over depth 0 from up-front features: a one-hidden-layer MLP (MSE).

    Id columns are left out (ids are arbitrary codes to an MLP; the summary already embeds
    them). Inference is numpy and row-deterministic.
    """

    def __init__(self, hidden: int, epochs: int, batch_size: int, lr: float, weight_decay: float,
                 valid_fraction: float, patience: int, seed: int) -> None:
        self.hidden, self.epochs, self.batch_size, self.lr = hidden, epochs, batch_size, lr
        self.weight_decay, self.valid_fraction, self.patience, self.seed = weight_decay, valid_fraction, patience, seed
        self.weights: dict[str, np.ndarray] = {}
        self.columns: np.ndarray = np.zeros(0, dtype=np.int64)
        self.log: TrainLog | None = None

    def fit(self, x: np.ndarray, gains: np.ndarray, names: Sequence[str]) -> "MLPGainModel":
        """Train on features `x` [n, f] (id columns in `names` left out) to predict `gains[:, 1:]`; returns self."""
        import torch
        from torch import nn

        self.columns = np.array([i for i, n in enumerate(names) if not is_id_column(n)], dtype=np.int64)
        xs = x[:, self.columns]
        fit_rows, valid_rows = split_rows(x.shape[0], self.valid_fraction, self.seed)
        mean = xs[fit_rows].mean(0)
        std = np.maximum(xs[fit_rows].std(0), 1e-6)
        y = gains[:, 1:]
        scale = np.maximum(np.abs(y[fit_rows]).mean(0), 1e-6)  # balance depths in the MSE
        torch.manual_seed(self.seed)
        width = max(1, self.hidden)
        net = nn.Sequential(nn.Linear(xs.shape[1], width), nn.ReLU(), nn.Linear(width, y.shape[1])).double()
        xt = torch.from_numpy((xs - mean) / std)
        yt = torch.from_numpy(y / scale)

        def loss_fn(rows: np.ndarray) -> torch.Tensor:
            idx = torch.from_numpy(rows)
            return torch.mean((net(xt[idx]) - yt[idx]) ** 2)

        self.log = train_module(net, loss_fn, fit_rows, valid_rows, epochs=self.epochs, batch_size=self.batch_size,
                                lr=self.lr, weight_decay=self.weight_decay, patience=self.patience, seed=self.seed)
        w = to_numpy_weights({"w1": net[0].weight.T, "b1": net[0].bias, "w2": net[2].weight.T, "b2": net[2].bias})
        self.weights = {"mean": mean, "std": std, "scale": scale, **w}
        return self

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(utility [n, K+1] with 0 for depth 0, predictor FLOPs per row [n]: standardisation and both layers)."""
        w = self.weights
        xs = (x[:, self.columns] - w["mean"]) / w["std"]
        h = np.maximum(rowwise_affine(xs, w["w1"], w["b1"]), 0.0)
        g = rowwise_affine(h, w["w2"], w["b2"]) * w["scale"]
        u = np.concatenate([np.zeros((x.shape[0], 1)), g], axis=1)
        f, hid, k = len(self.columns), w["w1"].shape[1], g.shape[1]
        flops = 2 * f + 2 * f * hid + 2 * hid + 2 * hid * k + 2 * k
        return u, np.full(x.shape[0], float(flops))

    def save(self, directory: Path) -> dict[str, Any]:
        """Write the weights to `directory/gain_mlp.pt` with `save_checkpoint`; returns the metadata for `load`."""
        save_checkpoint(directory / "gain_mlp.pt", {"format": 1, "weights": to_tensor_weights(self.weights),
                                                    "columns": to_tensor_weights({"c": self.columns.astype(np.float64)})})
        return {"file": "gain_mlp.pt"}

    def load(self, directory: Path, meta: dict[str, Any]) -> None:
        """Read the weights written by `save`; raises `CheckpointError` for a file of another format."""
        payload = load_checkpoint(directory / meta.get("file", "gain_mlp.pt"))
        if payload.get("format") != 1:
            raise CheckpointError(f"{directory / meta.get('file', 'gain_mlp.pt')} is not a gain-MLP file of format 1")
        self.weights = to_numpy_weights(payload["weights"])
        self.columns = to_numpy_weights(payload["columns"])["c"].astype(np.int64)
