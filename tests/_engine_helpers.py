"""Tiny untrained models, encoded data and traces for the engine tests (no training needed:
the engine must reproduce the offline trace evaluation whatever the weights are)."""

from __future__ import annotations

import numpy as np
import torch

from adaptive_loop.data.batch import EncodedData
from adaptive_loop.model import build_model, tiny_config
from adaptive_loop.model.testing import random_batch, toy_spec
from adaptive_loop.trace import DepthTrace
from adaptive_loop.trace_builder import build_trace
from controllers.base import Controller, ControllerDecision, StepView

K = 4


def tiny_model(seed: int = 0, **overrides) -> torch.nn.Module:
    """A tiny LoopCTR on the toy spec; `tower_hidden` is widened so logits spread across depths."""
    torch.manual_seed(seed)
    return build_model(tiny_config(**overrides), toy_spec()).eval()


def encoded(n: int, seed: int, users: int | None = None) -> EncodedData:
    """Random encoded rows of the toy spec; with `users`, rows share the histories of `users` users."""
    batch = random_batch(toy_spec(), n, seed=seed)
    seq = {k: v.numpy().copy() for k, v in batch.seq.items()}
    if users is not None:
        owner = np.random.default_rng(seed).integers(0, users, n)
        for name in ("hist", "hist_cat"):
            seq[name] = seq[name][owner]
    return EncodedData(
        cat=batch.cat.numpy().copy(), num=batch.num.numpy().copy(), seq=seq,
        labels=batch.labels.numpy().copy(), ids=np.arange(1000, 1000 + n, dtype=np.int64),
    )


def trace_of(model: torch.nn.Module, data: EncodedData, split: str, max_depth: int = K) -> DepthTrace:
    return build_trace(model, data, max_depth, dataset="toy", split=split, model_config={}, hidden=True,
                       batch_size=256, categorical_names=[f.name for f in model.spec.categorical])


class ZeroLogitUpfront(Controller):
    """A small up-front test controller: depth from the depth-0 logit's rank among fitted cut points.

    Rows whose z0 is below the first cut stop at 0, and so on; it reads the depth-0 prediction
    (so the engine evaluates the Exit once more for deeper rows) and charges 7 FLOPs per row.
    """

    name = "zero_logit_upfront_test"
    budget_param = "shift"
    kind = "upfront"
    uses_first_step = True
    step_inputs = frozenset()

    def __init__(self, shift: float = 0.0) -> None:
        self.shift = shift

    def _fit(self, trace: DepthTrace, targets=None) -> None:
        z0 = trace.logits[:, 0].astype(np.float64)
        self.cuts_ = np.quantile(z0, np.linspace(0, 1, trace.n_depths + 1)[1:-1])

    def _depth(self, z0: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.cuts_ + float(self.shift), np.asarray(z0, dtype=np.float64)).astype(np.int64)

    def decide(self, trace: DepthTrace) -> ControllerDecision:
        self._check_trace(trace)
        d = self._depth(trace.logits[:, 0])
        return ControllerDecision.from_depths(trace, d, np.where(d > 0, 2, 1), 7.0)

    def decide_upfront(self, step: StepView) -> np.ndarray:
        return self._depth(step.logits)

    def decide_upfront_with_flops(self, step: StepView) -> tuple[np.ndarray, np.ndarray]:
        return self.decide_upfront(step), np.full(step.n_rows, 7.0)
