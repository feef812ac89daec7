"""Threshold rules: "stop at the first depth whose score passes a threshold".

Most stopping rules have this form. Subclass `IncrementalController`, compute a
knob-independent score from what the engine shows, and say which way the comparison goes;
offline decisions, online decisions, caching, cost accounting and calibration come from
the class::

    import numpy as np
    from controllers.base import StepView
    from controllers.incremental import IncrementalController
    from controllers.registry import register_controller

    @register_controller
    class LogitMagnitude(IncrementalController):
        \"\"\"Stop once |logit| >= threshold.\"\"\"

        name = "logit_magnitude"
        budget_param = "threshold"
        stop_if = "ge"                      # stop when score >= threshold

        def __init__(self, threshold: float = 2.0) -> None:
            self.threshold = threshold       # store unchanged (scikit-learn rule)

        @property
        def flops_per_step(self) -> float:
            return 2.0                       # abs + compare

        def _score(self, step: StepView, state: dict) -> np.ndarray:
            return np.abs(np.asarray(step.logits, dtype=np.float64))

Scores must depend only on the row's own history (kept in `state`, arrays indexed by
`step.row_index`), which is what makes offline == online. Controllers that are not
threshold rules subclass `Controller` directly and implement `decide`, `should_stop` (or
`decide_upfront`) and the knob-search hooks `_knob_candidates` / `_knob_bounds`.
"""

from __future__ import annotations

import weakref
from typing import Any, ClassVar

import numpy as np

from adaptive_loop.trace import DepthTrace
from controllers.base import Controller, ControllerDecision, OnlineState, StepView


class IncrementalController(Controller):
    """A stopping rule of the form "stop at the first depth whose score passes a threshold".

    Subclasses implement `_score` (knob-independent, float64 [m]) and optionally
    `_new_state` and `_thresholds`. `stop_if` is "ge" (stop when score >= threshold; a
    higher knob costs more) or "lt" (stop when score < threshold; a higher knob costs less).
    """

    kind: ClassVar[str] = "incremental"
    stop_if: ClassVar[str] = "ge"

    def _score(self, step: StepView, state: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def _thresholds(self, n_depths: int) -> np.ndarray:
        """Per-depth thresholds [K+1] for the current knob (default: the knob at every depth)."""
        return np.full(n_depths, float(self.knob))

    def _passes(self, score: np.ndarray, threshold: np.ndarray | float) -> np.ndarray:
        return score >= threshold if self.stop_if == "ge" else score < threshold

    # ----------------------------------------------------------- offline
    def _cache_key(self) -> tuple[Any, ...]:
        params = self.get_params(deep=False)
        params.pop(self.budget_param, None)
        return tuple(sorted((k, repr(v)) for k, v in params.items()))

    def score_matrix(self, trace: DepthTrace) -> np.ndarray:
        """Scores of every row at every depth, float64 [n, K+1] (cached per trace object).

        Computed by running the same `_score` the online path runs, depth by depth, on all
        rows: a row's score depends only on its own history, so extra rows change nothing.
        """
        cache = getattr(self, "_score_cache", None)
        key = self._cache_key()
        if cache is not None and cache[0]() is trace and cache[1] == key and cache[2].shape == trace.logits.shape:
            return cache[2]
        n, d = trace.logits.shape
        state = self._new_state(n)
        rows = np.arange(n)
        scores = np.empty((n, d), dtype=np.float64)
        for t in range(d):
            view = StepView(
                depth=t,
                logits=np.ascontiguousarray(trace.logits[:, t]),
                row_index=rows,
                hidden=None if trace.hidden is None else trace.hidden[:, t, :],
                features=trace.features,
            )
            scores[:, t] = self._score(view, state)
        self._score_cache = (weakref.ref(trace), key, scores)
        return scores

    def decide(self, trace: DepthTrace) -> ControllerDecision:
        """Offline: stop each row at the first depth whose score passes the threshold (forced at K).

        Charges exits = depth + 1 and `flops_per_step` for every visited depth below K.
        """
        self._check_trace(trace)
        scores = self.score_matrix(trace)
        k = trace.max_depth
        stop = self._passes(scores, self._thresholds(k + 1)[None, :])
        stop[:, k] = True
        depth = np.argmax(stop, axis=1)
        steps_run = np.minimum(depth + 1, k)  # the rule does not run at K (forced stop)
        return ControllerDecision.from_depths(trace, depth, depth + 1, steps_run * self.flops_per_step)

    # ----------------------------------------------------------- online
    def should_stop(self, step: StepView, state: OnlineState | None = None) -> np.ndarray:
        """Online: True for the rows of `step` that stop now (every row at K).

        Adds `flops_per_step` to `state.controller_flops` for each row it scores.
        """
        state = self._online(step, state)
        if step.depth >= state.max_depth:
            return np.ones(step.n_rows, dtype=bool)
        if step.logits is None:
            raise ValueError(f"{type(self).__name__}.should_stop needs the step's logits")
        score = self._score(step, state.data)
        if state.controller_flops is not None:
            state.controller_flops[step.row_index] += self.flops_per_step
        return np.asarray(self._passes(score, self._thresholds(state.max_depth + 1)[step.depth]), dtype=bool)

    # ----------------------------------------------------------- knob search
    def _knob_candidates(self, trace: DepthTrace) -> np.ndarray | None:
        """Exact breakpoints of the mean cost for a global threshold, cheapest first (`threshold_breakpoints`)."""
        return threshold_breakpoints(self.score_matrix(trace)[:, : trace.max_depth], self.stop_if)


def threshold_breakpoints(scores: np.ndarray, stop_if: str) -> np.ndarray:
    """Every global threshold at which the mean cost can change, cheapest first.

    `scores` [n, D] are the scores at the depths where the rule runs (the forced stop's
    column left out). The stopping depth for threshold c is the first depth whose running
    maximum (`stop_if="ge"`) or running minimum (`"lt"`) of the score passes c, so the mean
    cost only changes at those running extremes. Shared by every threshold rule, learned
    heads included (they pass the depths before their own forced stop).
    """
    if stop_if == "ge":
        ext = np.maximum.accumulate(scores, axis=1) if scores.size else scores
        vals = _sorted_unique(ext[np.isfinite(ext)])
        top = vals[-1] if vals.size else 0.0
        cheap = min(float(vals[0]), 0.0) if vals.size else 0.0
        return np.unique(np.concatenate([[cheap], vals, [np.nextafter(top, np.inf)]]))
    ext = np.minimum.accumulate(scores, axis=1) if scores.size else scores
    vals = _sorted_unique(ext[np.isfinite(ext)])
    stops_just_above = np.nextafter(vals, np.inf)
    top = float(vals[-1]) if vals.size else 0.0
    expensive = min(float(vals[0]), 0.0) if vals.size else 0.0
    return np.unique(np.concatenate([[expensive], stops_just_above, [np.nextafter(top, np.inf)]]))[::-1]


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (a plain sort and neighbour compare; faster than np.unique here)."""
    s = np.sort(values, axis=None)
    if s.size < 2:
        return s
    return s[np.r_[True, s[1:] != s[:-1]]]
