"""Building depth traces from a trained model: run it over a split and record every depth.

The trace (see `adaptive_loop.trace` for the schema) is the contract consumed by the
oracle and the controllers. Side columns known before looping (for example the synthetic
ground-truth `needed_depth`, sequence lengths, field ids) are copied from the encoded data
so that up-front depth predictors can use them.

`build_trace` runs the model's all-depths forward pass; `trace_from_model` builds the same
trace in memory through the step-wise API (`enter`, `loop_step`, `exit`, `summarize`), what
an engine sees, so a post-hoc halting head can be trained without a trace file.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from adaptive_loop.data.batch import EncodedData
from adaptive_loop.trace import DepthTrace, TraceMeta
from adaptive_loop.training.per_depth import predict_depths


def side_features(data: EncodedData, field_names: list[str] | None = None) -> dict[str, np.ndarray]:
    """Per-sample columns known before any loop: dataset extras and categorical field ids."""
    features: dict[str, np.ndarray] = {}
    for name, column in data.extras.items():
        arr = np.asarray(column)
        if arr.ndim == 1 and np.issubdtype(arr.dtype, np.number):
            features[name] = arr
    if field_names is not None:
        for j, name in enumerate(field_names[: data.cat.shape[1]]):
            features[f"id_{name}"] = data.cat[:, j].astype(np.int64)
    for name, seq in data.seq.items():
        features.setdefault(f"len_{name}", (seq != 0).sum(axis=1).astype(np.int64))
    return features


def build_trace(
    model: torch.nn.Module,
    data: EncodedData,
    max_depth: int,
    *,
    dataset: str,
    split: str,
    model_config: dict[str, Any],
    hidden: bool = True,
    batch_size: int = 8192,
    device: torch.device | str = "cpu",
    categorical_names: list[str] | None = None,
    progress: bool = False,
) -> DepthTrace:
    """Logits (and hidden summaries) at depths 0..max_depth for every row of `data`."""
    logits, hidden_arr = predict_depths(
        model, data, max_depth, batch_size, hidden=hidden, device=device, progress=progress, desc=f"trace {split}"
    )
    flops = model.flops()
    meta = TraceMeta(
        flops_entry=float(flops.entry),
        flops_loop=float(flops.loop),
        flops_exit=float(flops.exit),
        max_depth=max_depth,
        train_loops=int(getattr(model, "train_loops", 0)),
        hidden_dim=None if hidden_arr is None else int(hidden_arr.shape[2]),
        flops_summary=float(flops.summary),
        dataset=dataset,
        split=split,
        model_config=model_config,
    )
    return DepthTrace(
        ids=data.ids,
        labels=data.labels,
        logits=logits,
        meta=meta,
        groups=data.groups,
        hidden=hidden_arr,
        features=side_features(data, categorical_names),
    )


# --------------------------------------------------------------------------- step-wise traces
def stepwise_outputs(model: torch.nn.Module, batch, max_depth: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits [B, K+1] and summaries [B, K+1, h] of a batch through the step-wise API.

    `enter`, then `exit` + `summarize` at every depth with `loop_step` in between: what an
    engine sees, and what a post-hoc halting head can be trained on without a trace file.
    """
    was_training = model.training
    model.eval()
    with torch.no_grad():
        state = model.enter(batch)
        logits, hidden = [model.exit(state)], [model.summarize(state)]
        for _ in range(max_depth):
            state = model.loop_step(state)
            logits.append(model.exit(state))
            hidden.append(model.summarize(state))
    model.train(was_training)
    return (torch.stack(logits, 1).float().cpu().numpy(), torch.stack(hidden, 1).float().cpu().numpy())


def trace_from_model(model: torch.nn.Module, data: EncodedData, max_depth: int, meta: TraceMeta, batch_size: int = 4096,
                     progress: bool = False) -> DepthTrace:
    """An in-memory `DepthTrace` of `data` built with the step-wise API (same numbers as `build_trace`).

    `meta` is a `TraceMeta` (FLOPs and provenance). Side columns come from
    `side_features`, as in a written trace.
    """
    parts_z, parts_h = [], []
    total = (len(data) + batch_size - 1) // batch_size
    for batch in tqdm(data.iter_batches(batch_size), total=total, disable=not progress, desc="step-wise trace", leave=False):
        z, h = stepwise_outputs(model, batch, max_depth)
        parts_z.append(z)
        parts_h.append(h)
    return DepthTrace(
        ids=data.ids, labels=data.labels, logits=np.concatenate(parts_z), meta=meta, groups=data.groups,
        hidden=np.concatenate(parts_h), features=side_features(data),
    )
