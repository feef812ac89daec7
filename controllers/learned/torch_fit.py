"""Small torch utilities shared by the learned controllers: seeded training with early
stopping, a thread limit, and row-deterministic numpy inference.

Learned heads are trained in torch but run in numpy at decision time. The numpy forward uses
only elementwise operations (`rowwise_affine`), so a row's output does not depend on which
other rows are in the batch: offline decisions on a whole trace equal online decisions on
re-gathered subsets bit for bit, which a BLAS matrix product does not guarantee.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

from adaptive_loop.errors import ConfigError

if TYPE_CHECKING:
    import torch


@contextlib.contextmanager
def torch_threads(n: int = 1) -> Iterator[None]:
    """Limit torch intra-op threads inside the block (the machine is shared); restored after."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(old)


@dataclass
class TrainLog:
    """What a head's training did: per-epoch mean losses on its fit and held-out rows."""

    epochs_run: int = 0
    best_epoch: int = -1
    best_valid_loss: float = float("nan")
    train_loss: list[float] = field(default_factory=list)
    valid_loss: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        """The log as a JSON-ready dict."""
        return {
            "epochs_run": self.epochs_run, "best_epoch": self.best_epoch, "best_valid_loss": self.best_valid_loss,
            "train_loss": list(self.train_loss), "valid_loss": list(self.valid_loss), "seconds": self.seconds,
        }


def split_rows(n: int, valid_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (fit, held-out) row split; held-out is empty when `valid_fraction` is 0."""
    if not 0.0 <= valid_fraction < 1.0:
        raise ConfigError(f"valid_fraction must lie in [0, 1), got {valid_fraction}")
    order = np.random.default_rng(seed).permutation(n)
    n_valid = int(round(valid_fraction * n)) if n >= 10 else 0
    return np.sort(order[n_valid:]), np.sort(order[:n_valid])


def train_module(
    module: "torch.nn.Module",
    loss_fn: Callable[[np.ndarray], "torch.Tensor"],
    fit_rows: np.ndarray,
    valid_rows: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    patience: int,
    seed: int,
    threads: int = 1,
) -> TrainLog:
    """Adam(W) on minibatches of `fit_rows`; keep the weights with the lowest held-out loss.

    `loss_fn(rows)` returns the mean loss over those rows. With no held-out rows the last
    epoch's weights are kept. Seeded: the batch order comes from `seed`.
    """
    import torch

    if epochs < 1 or batch_size < 1:
        raise ConfigError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
    started = time.perf_counter()
    log = TrainLog()
    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    rng = np.random.default_rng(seed)
    best_state = None
    bad = 0
    with torch_threads(threads):
        for epoch in range(epochs):
            module.train()
            order = rng.permutation(fit_rows)
            total, seen = 0.0, 0
            for start in range(0, order.size, batch_size):
                rows = order[start : start + batch_size]
                loss = loss_fn(rows)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * rows.size
                seen += rows.size
            log.train_loss.append(total / max(seen, 1))
            log.epochs_run = epoch + 1
            if valid_rows.size:
                module.eval()
                with torch.no_grad():
                    v = _mean_loss(loss_fn, valid_rows, max(batch_size, 8192))
                log.valid_loss.append(v)
                if not np.isfinite(log.best_valid_loss) or v < log.best_valid_loss - 1e-7:
                    log.best_valid_loss, log.best_epoch, bad = v, epoch, 0
                    best_state = {k: t.detach().clone() for k, t in module.state_dict().items()}
                else:
                    bad += 1
                    if bad >= patience:
                        break
            else:
                log.best_epoch = epoch
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    log.seconds = time.perf_counter() - started
    return log


def _mean_loss(loss_fn: Callable[[np.ndarray], "torch.Tensor"], rows: np.ndarray, chunk: int) -> float:
    total = 0.0
    for start in range(0, rows.size, chunk):
        part = rows[start : start + chunk]
        total += float(loss_fn(part)) * part.size
    return total / max(rows.size, 1)


# --------------------------------------------------------------------------- numpy inference
SIGMOID_FLOPS = 10.0  # exp (8) + add + divide


def mlp_flops(in_dim: int, hidden: int) -> float:
    """FLOPs of one `HaltingHead` call per row (each add / mul / max = 1; a multiply-add = 2).

    Standardise 2f; first layer 2 f H + bias H + depth bias H (+ ReLU H when H > 0);
    output layer 2 H + 1. A linear head (H = 0) is 2f + 2f + 2.
    """
    if hidden <= 0:
        return float(2 * in_dim + 2 * in_dim + 2)
    return float(2 * in_dim + 2 * in_dim * hidden + 3 * hidden + 2 * hidden + 1)


def rowwise_affine(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """x [m, f] @ w [f, H] + b [H] with elementwise operations only (row-deterministic)."""
    m = x.shape[0]
    out = np.empty((m, w.shape[1]), dtype=np.float64)
    out[:] = b
    for i in range(w.shape[0]):
        out += x[:, i : i + 1] * w[i]
    return out


def head_forward(weights: dict[str, np.ndarray], x: np.ndarray, depth: int) -> np.ndarray:
    """The exported `HaltingHead` at one depth: logits [m] for step features x [m, f]."""
    xs = (np.asarray(x, dtype=np.float64) - weights["mean"]) / weights["std"]
    a = rowwise_affine(xs, weights["w1"], weights["b1"] + weights["e"][depth])
    if "w2" not in weights:
        return a[:, 0]
    return rowwise_affine(np.maximum(a, 0.0), weights["w2"], weights["b2"])[:, 0]


def to_numpy_weights(tensors: dict[str, Any]) -> dict[str, np.ndarray]:
    """Tensors -> float64 numpy copies on the CPU (for numpy inference)."""
    return {k: v.detach().cpu().double().numpy().copy() for k, v in tensors.items()}


def to_tensor_weights(arrays: dict[str, np.ndarray]) -> dict[str, "torch.Tensor"]:
    """Numpy arrays -> float64 tensors (for `save_checkpoint`)."""
    import torch

    return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64)) for k, v in arrays.items()}
