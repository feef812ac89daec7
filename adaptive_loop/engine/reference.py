"""The two ways of scoring the engine is measured against (benchmarks and tests).

- `masked_scores`: the naive early-exit loop. Every row is computed at every depth - each
  loop step and each Exit runs on the whole batch - until the deepest row the controller
  keeps running is done (the batch waits for its slowest row); finished rows are only
  masked out. It takes the same controller decisions as the engine (the controller sees
  the same rows and logits), so its results equal the engine's; only the wall-clock differs.
- `fixed_scores`: plain fixed-depth scoring, Entry + `depth` Loop steps + one Exit for all rows.
"""

from __future__ import annotations

import time
from typing import Any, Mapping

import numpy as np
import torch

from adaptive_loop.data.batch import Batch
from adaptive_loop.engine.scorer import AdaptiveScorer, ScoredBatch, StageTimes
from controllers.base import StepView


@torch.inference_mode()
def masked_scores(scorer: AdaptiveScorer, batch: Batch, features: Mapping[str, np.ndarray] | None = None) -> ScoredBatch:
    """Score with the naive masked loop (see the module docstring); same decisions as `scorer.score_batch`.

    FLOPs are what the masked loop really spends: every row pays every loop step and Exit
    up to the depth the batch reached.
    """
    started = time.perf_counter()
    model, c, k = scorer.stepper, scorer.controller, scorer.max_depth
    n = len(batch)
    feats = {key: np.asarray(v) for key, v in features.items()} if (features is not None and scorer.needs_features) else None
    times = StageTimes()
    logits = np.zeros(n, dtype=np.float32)
    depth = np.full(n, -1, dtype=np.int64)
    state = model.enter(batch)
    all_rows = np.arange(n)
    if scorer.upfront:
        z0 = model.exit(state)
        hidden = model.summarize(state) if scorer.needs_hidden else None
        tick = time.perf_counter()
        view = StepView(0, z0.float().numpy() if scorer.first_logits else None, all_rows,
                        None if hidden is None else hidden.float().numpy(), feats)
        planned, cflops = c.decide_upfront_with_flops(view)
        times.controller += time.perf_counter() - tick
        planned = np.asarray(planned, dtype=np.int64)
        deepest = int(planned.max()) if n else 0
        z = z0
        for t in range(deepest + 1):
            if t > 0:
                state = model.loop_step(state)
                z = model.exit(state)
            hit = planned == t
            logits[hit] = z.float().numpy()[hit]
        depth = planned
        reached = deepest
        ctrl = np.broadcast_to(np.asarray(cflops, dtype=np.float64), (n,)).copy()
    else:
        ostate = c.start(n, max_depth=k)
        active = np.ones(n, dtype=bool)
        reached = 0
        for t in range(k + 1):
            z = model.exit(state)
            hidden = model.summarize(state) if scorer.needs_hidden else None
            tick = time.perf_counter()
            z_np = z.float().numpy()
            rows = all_rows[active]
            view = StepView(t, z_np[rows], rows, None if hidden is None else hidden.float().numpy()[rows],
                            None if feats is None else {key: v[rows] for key, v in feats.items()})
            stop = np.asarray(c.should_stop(view, ostate), dtype=bool)
            times.controller += time.perf_counter() - tick
            logits[rows[stop]] = z_np[rows[stop]]
            depth[rows[stop]] = t
            active[rows[stop]] = False
            reached = t
            if not active.any():
                break
            state = model.loop_step(state)
        ctrl = np.asarray(ostate.controller_flops, dtype=np.float64).copy()
    loops = np.full(n, reached, dtype=np.int64)
    exits = np.full(n, reached + 1, dtype=np.int64)
    flops = np.asarray(scorer.cost_model.cost(loops, exits, ctrl), dtype=np.float64)
    times.total = time.perf_counter() - started
    return ScoredBatch(logits, depth, exits, ctrl, flops, times=times)


@torch.inference_mode()
def fixed_scores(model: Any, batch: Batch, depth: int) -> np.ndarray:
    """Logits (float32 [n]) of plain fixed-depth scoring: Entry, `depth` Loop steps, one Exit."""
    state = model.enter(batch)
    for _ in range(int(depth)):
        state = model.loop_step(state)
    return model.exit(state).float().numpy()
