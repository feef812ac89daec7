"""Per-depth prediction and metrics: the numbers behind every per-depth table.

`predict_depths` runs a model over a split once and returns logits at every depth 0..K
(and optional hidden summaries); `per_depth_metrics` turns them into AUC, logloss, gAUC
and FLOPs per sample for each depth.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from adaptive_loop.data.batch import EncodedData
from adaptive_loop.metrics import auc, gauc, logloss_from_logits
from adaptive_loop.model.api import FlopsBreakdown


@dataclass(frozen=True)
class DepthMetrics:
    """Quality and cost of answering at one fixed loop depth."""

    depth: int
    auc: float
    logloss: float
    gauc: float | None
    flops_per_sample: float

    def to_dict(self) -> dict[str, float | int | None]:
        """The metrics as a plain dict (JSON/CSV row)."""
        return asdict(self)


@torch.inference_mode()
def predict_depths(
    model: torch.nn.Module,
    data: EncodedData,
    max_depth: int,
    batch_size: int = 8192,
    hidden: bool = False,
    device: torch.device | str = "cpu",
    progress: bool = False,
    desc: str = "predict",
) -> tuple[np.ndarray, np.ndarray | None]:
    """Logits [n, K+1] (and hidden summaries [n, K+1, h] if asked) for every row of `data`."""
    was_training = model.training
    model.eval()
    logits_parts: list[np.ndarray] = []
    hidden_parts: list[np.ndarray] = []
    batches = data.iter_batches(batch_size, shuffle=False, device=device)
    total = (len(data) + batch_size - 1) // batch_size
    for batch in tqdm(batches, total=total, desc=desc, disable=not progress, leave=False):
        out = model(batch, depth=max_depth, return_hidden=hidden)
        logits_parts.append(out.logits.float().cpu().numpy())
        if hidden and out.hidden is not None:
            hidden_parts.append(out.hidden.float().cpu().numpy())
    model.train(was_training)
    width = max_depth + 1
    logits = np.concatenate(logits_parts, axis=0) if logits_parts else np.zeros((0, width), np.float32)
    hidden_arr = np.concatenate(hidden_parts, axis=0) if hidden_parts else None
    return logits, hidden_arr


class UndefinedAUCWarning(UserWarning):
    """A split with a single class: its AUC is reported as NaN (logloss stays defined)."""


def undefined_auc_reason(labels: np.ndarray) -> str | None:
    """Why AUC is undefined on `labels` ('no rows' or 'a single class (...)'), or None when it is defined."""
    y = np.asarray(labels).reshape(-1) > 0.5
    if y.size == 0:
        return "no rows"
    if y.all() or not y.any():
        return f"a single class (all {y.size:,} labels are {int(y[0])})"
    return None


def per_depth_metrics(
    labels: np.ndarray,
    logits: np.ndarray,
    flops: FlopsBreakdown,
    groups: np.ndarray | None = None,
    split: str | None = None,
) -> list[DepthMetrics]:
    """AUC, logloss, gAUC and FLOPs/sample at each depth column of `logits`.

    With `split` named, a split holding a single class triggers one `UndefinedAUCWarning`
    naming it (its AUC columns are NaN); training refuses such a validation split outright
    when it monitors an AUC (`adaptive_loop.training.preflight.check_monitor_defined`).
    """
    reason = undefined_auc_reason(labels) if split is not None else None
    if reason is not None:
        warnings.warn(f"the {split} split has {reason}: its AUC is undefined and reported as NaN", UndefinedAUCWarning,
                      stacklevel=2)
    rows = []
    for depth in range(logits.shape[1]):
        column = logits[:, depth]
        rows.append(
            DepthMetrics(
                depth=depth,
                auc=auc(labels, column),
                logloss=logloss_from_logits(labels, column),
                gauc=None if groups is None else gauc(labels, column, groups),
                flops_per_sample=float(flops.at_depth(depth)),
            )
        )
    return rows


def format_depth_table(rows: list[DepthMetrics], train_loops: int | None = None) -> str:
    """A fixed-width table of per-depth metrics; depths beyond the trained L are marked."""
    has_gauc = any(r.gauc is not None for r in rows)
    header = f"{'depth':>5}  {'AUC':>7}  {'logloss':>8}" + (f"  {'gAUC':>7}" if has_gauc else "") + f"  {'FLOPs/sample':>13}"
    lines = [header, "-" * len(header)]
    for r in rows:
        mark = "*" if train_loops is not None and r.depth > train_loops else " "
        line = f"{r.depth:>4}{mark}  {r.auc:7.4f}  {r.logloss:8.4f}"
        if has_gauc:
            line += f"  {r.gauc:7.4f}" if r.gauc is not None else f"  {'-':>7}"
        line += f"  {r.flops_per_sample:13,.0f}"
        lines.append(line)
    if train_loops is not None and any(r.depth > train_loops for r in rows):
        lines.append(f"(* deeper than the {train_loops} loops used in training)")
    return "\n".join(lines)
