"""`AdaptiveScorer`: score a batch with per-row depth, paying only for the rows that still run.

Early-exit code usually saves FLOPs on paper only (LOOPCTR.md section 6): finished rows are
still computed and masked, or the whole batch waits for its slowest row. The scorer drives
the model's step-wise API (`enter`, `loop_step`, `exit`, `summarize`) so that every loop
step runs on a dense batch of exactly the rows that need it:

- **incremental controllers** (confidence, stability, halting heads): after each depth the
  Exit runs on the rows still active, the controller's `should_stop` sees them through a
  `StepView`, and the rows that continue are gathered (`state.subset`) into a smaller dense
  batch before the next loop step; each row's result is written back to its own position,
  so the output keeps the input row order; a controller that never reads the logit
  (`exit_every_step = False`, the jointly trained router) sees the summaries only and the
  Exit runs once per row, on the rows that stop;
- **up-front controllers** (fixed depth, depth predictors, budgeted allocation):
  `decide_upfront_with_flops` picks every row's depth once (after Entry, and after one Exit
  when the controller reads the depth-0 prediction); rows are gathered once, sorted by
  decided depth (deepest first), so each depth bucket is a contiguous block and step t runs
  on the leading block of rows that need more than t steps - slices, not gathers, and no
  per-step control flow; each bucket evaluates the Exit once at its depth. When the state
  can be concatenated (`SandwichState.concat`), the buckets' final states are put together
  and the Exit runs once on all of them after the last loop step: the same Exit
  evaluations per row, in one call instead of one per depth (at small batches each call's
  fixed cost is a large share of an Exit on a few rows).

Costs are counted from what ran: Entry, `depth` Loop steps and every Exit evaluation per
row, plus the controller's own FLOPs (accumulated online by incremental rules in
`OnlineState.controller_flops`, returned per row by up-front controllers), priced by the
same `CostModel` as the offline trace evaluation, so the engine's depths, logits and FLOPs
equal `controller.decide(trace)` on a trace of the same rows (tests/test_engine_*.py).

With `share_sequence=True` the step-wise API comes from `SharedSequenceModel`, which
computes the sequence side once per distinct behaviour sequence in the batch (see
`adaptive_loop.model.shared_sequence`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import torch

from adaptive_loop.cost import CostModel
from adaptive_loop.data.batch import Batch, EncodedData
from adaptive_loop.errors import ConfigError
from adaptive_loop.metrics import sigmoid
from controllers.base import Controller, StepView


@dataclass
class StageTimes:
    """Wall-clock seconds of one `score_batch` call.

    `controller` is the time spent on the controller's side of the protocol (building the
    `StepView`, copying logits/summaries to numpy, `should_stop` / `decide_upfront`); the
    rest of `total` is the model, gathers and bookkeeping.
    """

    total: float = 0.0
    controller: float = 0.0

    def add(self, other: "StageTimes") -> None:
        """Accumulate the times of another call into this one (in place)."""
        self.total += other.total
        self.controller += other.controller

    @property
    def controller_share(self) -> float:
        return self.controller / self.total if self.total > 0 else float("nan")


@dataclass
class ScoredBatch:
    """Per-row results of scoring one batch, in input row order.

    Attributes:
        logits: float32 [n] logit at the depth each row stopped at.
        depth: int64 [n] loop steps run.
        exits: int64 [n] Exit evaluations run.
        controller_flops: float64 [n] FLOPs of the controller's own computations.
        flops: float64 [n] total FLOPs (Entry + depth Loop + exits Exit + controller).
        ids: optional int64 [n] sample ids.
        labels: optional float32 [n] labels (NaN when unknown).
        times: wall-clock seconds of the call.
        n_sequences: distinct behaviour sequences computed (sequence sharing), else None.
    """

    logits: np.ndarray
    depth: np.ndarray
    exits: np.ndarray
    controller_flops: np.ndarray
    flops: np.ndarray
    ids: np.ndarray | None = None
    labels: np.ndarray | None = None
    times: StageTimes = field(default_factory=StageTimes)
    n_sequences: int | None = None

    @property
    def probs(self) -> np.ndarray:
        """Click probabilities (float64 [n])."""
        return sigmoid(self.logits.astype(np.float64))

    def __len__(self) -> int:
        return int(self.logits.shape[0])

    def to_frame(self):
        """A pandas DataFrame with columns id (when known), label (when known), prob, logit, depth, exits, flops."""
        import pandas as pd

        cols: dict[str, Any] = {}
        if self.ids is not None:
            cols["id"] = self.ids
        if self.labels is not None:
            cols["label"] = self.labels
        cols.update(prob=self.probs, logit=self.logits, depth=self.depth, exits=self.exits,
                    controller_flops=self.controller_flops, flops=self.flops)
        return pd.DataFrame(cols)


def _cost_model(model: Any) -> CostModel:
    f = model.flops()
    return CostModel(entry=float(f.entry), loop=float(f.loop), exit=float(f.exit))


def max_model_depth(model: Any) -> int | None:
    """Deepest depth the model can run: None for a weight-shared loop (any depth), L for StackCTR, 0 for baselines."""
    if getattr(model, "shared_loop", None) is True:
        return None
    if hasattr(model, "loops"):
        return int(model.train_loops)
    return 0


class AdaptiveScorer:
    """Score batches with a trained depth model and any fitted controller.

    Args:
        model: a `DepthModel` (LoopCTR, StackCTR, or a K = 0 baseline); put in eval mode.
        controller: a fitted controller; its K (`max_depth_`) is the deepest depth run.
        cost_model: FLOPs prices; default from `model.flops()` (what a trace of this model records).
        share_sequence: compute the sequence side once per distinct behaviour sequence
            (`SharedSequenceModel`; LoopCTR/StackCTR with sequence tokens only).
    """

    def __init__(self, model: Any, controller: Controller, cost_model: CostModel | None = None,
                 share_sequence: bool = False) -> None:
        controller._check_fitted()
        self.model = model
        if hasattr(model, "eval"):
            model.eval()
        self.controller = controller
        self.max_depth = int(controller.max_depth_)
        limit = max_model_depth(model)
        if limit is not None and self.max_depth > limit:
            raise ConfigError(
                f"controller {type(controller).__name__} runs up to depth K={self.max_depth} but "
                f"{type(model).__name__} can only run depths 0..{limit}; fit the controller on a trace with K <= {limit}"
            )
        if share_sequence:
            from adaptive_loop.model.shared_sequence import SharedSequenceModel

            self.stepper: Any = SharedSequenceModel(model)
        else:
            self.stepper = model
        self.share_sequence = bool(share_sequence)
        self.cost_model = cost_model or _cost_model(model)
        self.upfront = controller.kind == "upfront"
        inputs = frozenset(getattr(controller, "step_inputs", frozenset({"hidden", "features"})))
        self.needs_hidden = "hidden" in inputs
        self.needs_features = "features" in inputs
        self.first_logits = bool(getattr(controller, "uses_first_step", False)) if self.upfront else True
        spec = getattr(model, "spec", None)
        self.categorical_names = [f.name for f in spec.categorical] if spec is not None else None

    # ------------------------------------------------------------------ public API
    def score_encoded(self, data: EncodedData, device: torch.device | str = "cpu") -> ScoredBatch:
        """Score an `EncodedData` chunk (side columns for the controller come from it, as in a trace)."""
        features = None
        if self.needs_features:
            from adaptive_loop.trace_builder import side_features

            features = side_features(data, self.categorical_names)
        out = self.score_batch(data.to_batch(device=device), features=features)
        out.ids = np.asarray(data.ids, dtype=np.int64)
        out.labels = np.asarray(data.labels, dtype=np.float32)
        return out

    @torch.inference_mode()
    def score_batch(self, batch: Batch, features: Mapping[str, np.ndarray] | None = None) -> ScoredBatch:
        """Per-row probability, depth and FLOPs of one batch (see the module docstring).

        `features` are the side columns (each [n]) a controller may read; they are shown to
        the controller only if its `step_inputs` include "features".
        """
        started = time.perf_counter()
        n = len(batch)
        feats = {k: np.asarray(v) for k, v in features.items()} if (features is not None and self.needs_features) else None
        if feats is not None:
            bad = [k for k, v in feats.items() if v.shape[:1] != (n,)]
            if bad:
                raise ConfigError(f"side columns {bad} do not have one value per row of the {n}-row batch")
        times = StageTimes()
        if n == 0:
            empty = ScoredBatch(np.zeros(0, np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros(0))
            return empty
        run = self._upfront if self.upfront else self._incremental
        logits, depth, exits, cflops, n_seq = run(batch, feats, times)
        flops = np.asarray(self.cost_model.cost(depth, exits, cflops), dtype=np.float64)
        times.total = time.perf_counter() - started
        return ScoredBatch(logits, depth, exits, cflops, flops, times=times, n_sequences=n_seq)

    # ------------------------------------------------------------------ incremental
    def _incremental(self, batch: Batch, feats: dict[str, np.ndarray] | None, times: StageTimes):
        n, k, c = len(batch), self.max_depth, self.controller
        stepper = self.stepper
        logits = np.zeros(n, dtype=np.float32)
        depth = np.full(n, -1, dtype=np.int64)
        exits = np.zeros(n, dtype=np.int64)
        state = stepper.enter(batch)
        n_seq = getattr(state, "n_sequences", None)
        tick = time.perf_counter()
        ostate = c.start(n, max_depth=k)
        times.controller += time.perf_counter() - tick
        rows = np.arange(n)
        if not getattr(c, "exit_every_step", True):
            return self._incremental_without_exits(batch, state, ostate, times, n_seq)
        for t in range(k + 1):
            z = stepper.exit(state)
            hidden = stepper.summarize(state) if self.needs_hidden else None
            tick = time.perf_counter()
            z_np = z.float().cpu().numpy()
            view = StepView(
                depth=t, logits=z_np, row_index=rows,
                hidden=None if hidden is None else hidden.float().cpu().numpy(),
                features=None if feats is None else (feats if rows.size == n else {key: v[rows] for key, v in feats.items()}),
            )
            stop = _ask_to_stop(c, view, ostate, rows.size)
            times.controller += time.perf_counter() - tick
            exits[rows] += 1
            done = rows[stop]
            logits[done] = z_np[stop]
            depth[done] = t
            if stop.all():
                break
            state, rows = _continue_running(c, state, rows, stop, t, k, _device_of(z))
            state = stepper.loop_step(state)
        return logits, depth, exits, np.asarray(ostate.controller_flops, dtype=np.float64).copy(), n_seq

    def _incremental_without_exits(self, batch: Batch, state: Any, ostate: Any, times: StageTimes, n_seq: Any):
        """Incremental controllers that never read the Exit's logit (`exit_every_step = False`, e.g. the router).

        The controller sees the hidden summaries only; the Exit runs once per row, on the rows
        that stop, so each row pays one Exit evaluation, as the controller's offline cost says.
        """
        n, k, c = len(batch), self.max_depth, self.controller
        stepper = self.stepper
        logits = np.zeros(n, dtype=np.float32)
        depth = np.full(n, -1, dtype=np.int64)
        exits = np.zeros(n, dtype=np.int64)
        rows = np.arange(n)
        for t in range(k + 1):
            hidden = stepper.summarize(state)
            tick = time.perf_counter()
            view = StepView(depth=t, logits=None, row_index=rows, hidden=hidden.float().cpu().numpy())
            stop = _ask_to_stop(c, view, ostate, rows.size)
            times.controller += time.perf_counter() - tick
            if stop.any():
                device = _device_of(hidden)
                done_state = state if stop.all() else state.subset(torch.from_numpy(np.flatnonzero(stop)).to(device))
                done = rows[stop]
                logits[done] = stepper.exit(done_state).float().cpu().numpy()
                exits[done] += 1
                depth[done] = t
            if stop.all():
                break
            state, rows = _continue_running(c, state, rows, stop, t, k, _device_of(hidden))
            state = stepper.loop_step(state)
        return logits, depth, exits, np.asarray(ostate.controller_flops, dtype=np.float64).copy(), n_seq

    # ------------------------------------------------------------------ up-front
    def _upfront(self, batch: Batch, feats: dict[str, np.ndarray] | None, times: StageTimes):
        n, k, c = len(batch), self.max_depth, self.controller
        stepper = self.stepper
        logits = np.zeros(n, dtype=np.float32)
        exits = np.zeros(n, dtype=np.int64)
        state = stepper.enter(batch)
        n_seq = getattr(state, "n_sequences", None)
        z0 = None
        if self.first_logits:
            z0 = stepper.exit(state).float().cpu().numpy()
            exits += 1
        hidden = stepper.summarize(state) if self.needs_hidden else None
        tick = time.perf_counter()
        view = StepView(depth=0, logits=z0, row_index=np.arange(n),
                        hidden=None if hidden is None else hidden.float().cpu().numpy(), features=feats)
        depth, cflops = c.decide_upfront_with_flops(view)
        times.controller += time.perf_counter() - tick
        depth = np.asarray(depth, dtype=np.int64).reshape(-1)
        cflops = np.broadcast_to(np.asarray(cflops, dtype=np.float64), (n,)).copy()
        if depth.shape != (n,) or (depth.size and (depth.min() < 0 or depth.max() > k)):
            raise ValueError(f"{type(c).__name__}.decide_upfront must return {n} depths in 0..{k}")
        # deepest first: bucket t is the block [n_ge[t+1], n_ge[t]) of the sorted rows
        order = np.argsort(-depth, kind="stable")
        n_ge = np.concatenate([np.cumsum(np.bincount(depth, minlength=k + 2)[::-1])[::-1], [0]])
        if np.any(order != np.arange(n)):
            state = state.subset(torch.from_numpy(order).to(_device_of_state(state)))
        deepest = int(depth.max())
        concat = getattr(type(state), "concat", None)
        finished: list[tuple[np.ndarray, Any]] = []  # (rows, final state) of buckets whose Exit is deferred
        for t in range(deepest + 1):
            lo, hi = int(n_ge[t + 1]), int(n_ge[t])
            if hi > lo:
                rows = order[lo:hi]
                if t == 0 and z0 is not None:
                    logits[rows] = z0[rows]
                else:
                    part = state if (lo == 0 and hi == len(state)) else state.subset(slice(lo, hi))
                    if concat is not None and t < deepest:
                        finished.append((rows, concat([part])))  # a copy: the deeper rows' state can be freed
                    else:
                        finished.append((rows, part))
                    exits[rows] += 1
            if t == deepest:
                break
            if lo < len(state):
                state = state.subset(slice(0, lo))
            state = stepper.loop_step(state)
        if concat is not None and len(finished) > 1:
            rows = np.concatenate([r for r, _ in finished])
            logits[rows] = stepper.exit(concat([s for _, s in finished])).float().cpu().numpy()
        else:
            for rows, part in finished:
                logits[rows] = stepper.exit(part).float().cpu().numpy()
        return logits, depth, exits, cflops, n_seq


def _device_of(x: torch.Tensor) -> torch.device:
    return x.device


def _device_of_state(state: Any) -> torch.device:
    for name in ("streams", "glb", "fields"):
        value = getattr(state, name, None)
        if isinstance(value, torch.Tensor):
            return value.device
    return torch.device("cpu")


def _ask_to_stop(controller: Any, view: StepView, ostate: Any, n_rows: int) -> np.ndarray:
    """The controller's stop decision for the running rows, checked to have one value per row."""
    stop = np.asarray(controller.should_stop(view, ostate), dtype=bool).reshape(-1)
    if stop.shape != (n_rows,):
        raise ValueError(f"{type(controller).__name__}.should_stop returned {stop.shape[0]} values for {n_rows} rows")
    return stop


def _continue_running(controller: Any, state: Any, rows: np.ndarray, stop: np.ndarray, t: int, k: int,
                      device: Any) -> tuple[Any, np.ndarray]:
    """The state and row ids of the rows that go on after step t (some stopped, not all)."""
    if t == k:
        raise RuntimeError(f"{type(controller).__name__} left {int((~stop).sum())} rows running past depth K={k}")
    if not stop.any():
        return state, rows
    keep = np.flatnonzero(~stop)
    return state.subset(torch.from_numpy(keep).to(device)), rows[keep]
