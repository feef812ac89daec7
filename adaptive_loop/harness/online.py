"""Driving a controller through the online protocol, the way an engine does.

`simulate_online` replays a trace step by step: it shows the controller only the rows still
running (re-gathered, as a real engine must do to save wall-clock time), removes the rows
it stops, and records each row's depth. Tests use it to prove offline == online; engines can
copy its loop. Tensors are accepted wherever arrays are (converted via `.detach()`), so this
module never imports torch.
"""

from __future__ import annotations

import numpy as np

from adaptive_loop.trace import DepthTrace
from controllers.base import Controller, StepView


def _view(trace: DepthTrace, depth: int, rows: np.ndarray, with_logits: bool = True) -> StepView:
    return StepView(
        depth=depth,
        logits=trace.logits[rows, depth] if with_logits else None,
        row_index=rows,
        hidden=None if trace.hidden is None else trace.hidden[rows, depth, :],
        features={k: v[rows] for k, v in trace.features.items()},
    )


def simulate_online(controller: Controller, trace: DepthTrace, upfront: bool | None = None) -> np.ndarray:
    """Depth per sample when `controller` drives a step-wise run over `trace` (int64 [n]).

    Up-front controllers are asked once with `decide_upfront` (unless `upfront=False`,
    which drives them through `should_stop` like an incremental controller).
    """
    n, k = trace.n_samples, trace.max_depth
    use_upfront = controller.kind == "upfront" if upfront is None else upfront
    if use_upfront:
        view = _view(trace, 0, np.arange(n), with_logits=bool(getattr(controller, "uses_first_step", False)))
        return np.asarray(controller.decide_upfront(view), dtype=np.int64)  # type: ignore[attr-defined]
    state = controller.start(n, max_depth=k)
    depth = np.full(n, -1, dtype=np.int64)
    active = np.arange(n)
    for t in range(k + 1):
        if active.size == 0:
            break
        stop = np.asarray(controller.should_stop(_view(trace, t, active), state), dtype=bool)
        depth[active[stop]] = t
        active = active[~stop]
    if active.size:
        raise RuntimeError(f"{type(controller).__name__} left {active.size} rows running past depth K={k}")
    return depth
