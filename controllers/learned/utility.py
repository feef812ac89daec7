"""Up-front allocation by price: spend compute where the predicted utility is largest.

An up-front controller predicts, before any loop step, a utility u_i(t) for every depth t
of every sample (a predicted loss gain, or a class probability). Each sample then takes

    depth_i = argmax_t [ u_i(t) - lam * c(t) ]      (ties to the shallowest depth)

where c(t) is the real extra cost of answering at depth t, in Loop-step units
(`CostModel.depth_units`): (cost(t) - cost(0)) / loop FLOPs with cost(t) = Entry + t Loop +
exits(t) Exit, and exits(t) = 2 for t > 0 when the depth-0 prediction is a feature (it was
evaluated once already). The budget knob is the price `lam` (larger = cheaper). The mean
cost only changes where lam crosses a slope of some sample's upper concave hull of
(c(t), u_i(t)) (`adaptive_loop.hull.hull_walk`), so `calibrate` bisects over those
breakpoints (midpoints between consecutive distinct slopes) and meets the budget exactly on
the calibration trace. Negative prices are allowed, so every budget between depth 0 and
depth K for all rows is reachable.

`UtilityAllocator` is the shared machinery (features, costs, knob search, online protocol)
of the DCAF-style budgeted allocator (`allocator.py`) and the LightGBM depth predictor
(`lgbm_depth.py`); `streaming_budget.py` re-prices it batch by batch over a stream.
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from adaptive_loop.cost import CostModel
from adaptive_loop.errors import CheckpointError
from adaptive_loop.hull import hull_walk
from adaptive_loop.trace import DepthTrace, TraceMeta
from controllers.base import Controller, ControllerDecision, OnlineState, StepView
from controllers.learned.features import UpfrontFeatures

# argmax over K+1 depths of u - lam * c: a multiply-add per depth (2) and a compare per depth
ALLOCATION_FLOPS_PER_DEPTH = 3.0


def allocate(utility: np.ndarray, units: np.ndarray, lam: float) -> np.ndarray:
    """argmax_t utility[:, t] - lam * units[t], ties to the shallowest depth (int64 [n])."""
    return np.argmax(np.asarray(utility, dtype=np.float64) - float(lam) * np.asarray(units)[None, :], axis=1).astype(np.int64)


def hull_slopes(utility: np.ndarray, units: np.ndarray) -> np.ndarray:
    """Slopes of every row's upper concave hull of (units[t], utility[:, t]) (all of them, any sign).

    As lam falls from +inf, a row's choice walks along this hull, moving at each slope
    (`adaptive_loop.hull.hull_walk`; collinear points give one slope).
    """
    return hull_walk(utility, units, ties="farthest", improving_only=False).slope


def price_candidates(utility: np.ndarray, units: np.ndarray) -> np.ndarray:
    """Prices at which every distinct allocation is reached, cheapest (highest) first."""
    s = np.unique(_finite(hull_slopes(utility, units)))
    if s.size == 0:
        return np.array([1.0, -1.0])
    pad = max(1.0, float(np.max(np.abs(s)))) * 1e-6
    mids = 0.5 * (s[1:] + s[:-1])
    return np.concatenate([[s[-1] + pad], mids[::-1], [s[0] - pad]])


def _finite(a: np.ndarray) -> np.ndarray:
    return a[np.isfinite(a)]


class UtilityAllocator(Controller):
    """Up-front controller: per-depth utilities from features, then `allocate` with price `lam`.

    Subclasses implement `_fit_predictor(X, trace, targets)`, `_predict(X) -> (utility
    [n, K+1], predictor FLOPs [n])` and the persistence hooks `_save_predictor` /
    `_load_predictor`.
    """

    kind: ClassVar[str] = "upfront"
    budget_param: ClassVar[str] = "lam"

    # ------------------------------------------------------------- fit
    def _fit(self, trace: DepthTrace, targets: Any) -> None:
        self.features_ = UpfrontFeatures.for_trace(
            trace, bool(self.use_logit), bool(self.use_hidden), self.features, owner=type(self).__name__
        )
        self.flops_summary_ = float(trace.meta.flops_summary)
        self.exits_by_depth_, self.units_ = CostModel.from_meta(trace.meta).depth_units(trace.max_depth, self.features_.use_logit)
        x = self.features_.from_trace(trace, type(self).__name__)
        self._fit_predictor(x, trace, targets)
        self.predictor_token_ = object()

    def _fit_predictor(self, x: np.ndarray, trace: DepthTrace, targets: Any) -> None:
        raise NotImplementedError

    def _predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    @property
    def step_inputs(self) -> frozenset[str]:  # type: ignore[override]
        """Side columns always; the depth-0 hidden summary only when it is a feature."""
        feats = getattr(self, "features_", None)
        use_hidden = bool(feats.use_hidden) if feats is not None else bool(getattr(self, "use_hidden", False))
        return frozenset({"features", "hidden"}) if use_hidden else frozenset({"features"})

    @property
    def uses_first_step(self) -> bool:
        """Whether the depth-0 prediction is a feature (the engine must evaluate the Exit at depth 0)."""
        feats = getattr(self, "features_", None)
        return bool(feats.use_logit) if feats is not None else bool(getattr(self, "use_logit", False))

    # ------------------------------------------------------------- utilities and costs
    def _controller_flops(self, predictor_flops: np.ndarray) -> np.ndarray:
        k1 = self.max_depth_ + 1
        return self.features_.flops(self.flops_summary_) + predictor_flops + ALLOCATION_FLOPS_PER_DEPTH * k1

    def utilities(self, trace: DepthTrace) -> tuple[np.ndarray, np.ndarray]:
        """(utility [n, K+1], controller FLOPs [n]) of a trace, cached per trace object."""
        self._check_trace(trace)
        key = self._cache_key()
        cache = getattr(self, "_util_cache", None)
        if cache is not None and cache[0]() is trace and cache[1] == key:
            return cache[2], cache[3]
        u, f = self._predict(self.features_.from_trace(trace, type(self).__name__))
        flops = self._controller_flops(f)
        self._util_cache = (weakref.ref(trace), key, u, flops)
        return u, flops

    def _cache_key(self) -> tuple:
        params = self.get_params(deep=False)
        params.pop(self.budget_param, None)
        return (id(getattr(self, "predictor_token_", None)),) + tuple(sorted((k, repr(v)) for k, v in params.items()))

    def _decision(self, trace: DepthTrace, u: np.ndarray, flops: np.ndarray, lam: float) -> ControllerDecision:
        depth = allocate(u, self.units_, lam)
        return ControllerDecision.from_depths(trace, depth, self.exits_by_depth_[depth], flops)

    def decide(self, trace: DepthTrace) -> ControllerDecision:
        """Offline depths for every row of `trace` at the current price `lam`.

        Charges the features, the predictor and the allocation as controller FLOPs.
        """
        self._check_trace(trace)
        u, flops = self.utilities(trace)
        return self._decision(trace, u, flops, float(self.lam))

    # ------------------------------------------------------------- online
    def _view_utilities(self, step: StepView) -> tuple[np.ndarray, np.ndarray]:
        x = self.features_.matrix(step.features, step.logits if self.features_.use_logit else None,
                                  step.hidden if self.features_.use_hidden else None, step.n_rows, type(self).__name__)
        u, f = self._predict(x)
        return u, self._controller_flops(f)

    def decide_upfront(self, step: StepView) -> np.ndarray:
        """Depth per row of a depth-0 view (logits needed when `uses_first_step`)."""
        return self.decide_upfront_with_flops(step)[0]

    def decide_upfront_with_flops(self, step: StepView) -> tuple[np.ndarray, np.ndarray]:
        """(depth [m], controller FLOPs [m]): features, predictor and allocation, as `decide` charges them."""
        self._check_fitted()
        u, flops = self._view_utilities(step)
        return allocate(u, self.units_, float(self.lam)), flops

    def _new_state(self, n_rows: int) -> dict[str, np.ndarray]:
        return {"planned": np.full(n_rows, -1, dtype=np.int64)}

    def should_stop(self, step: StepView, state: OnlineState | None = None) -> np.ndarray:
        """Incremental protocol: plan the depth at depth 0, then stop each row when it gets there."""
        st = self._online(step, state)
        rows = step.row_index
        if step.depth == 0:
            st.data["planned"][rows] = self.decide_upfront(step)
        planned = st.data["planned"][rows]
        return (planned <= step.depth) | (step.depth >= st.max_depth)

    # ------------------------------------------------------------- knob
    def _knob_candidates(self, trace: DepthTrace) -> np.ndarray:
        u, _ = self.utilities(trace)
        return price_candidates(u, self.units_)

    def _knob_bounds(self, trace: DepthTrace) -> tuple[float, float]:
        c = self._knob_candidates(trace)
        return float(c[0]), float(c[-1])

    def lam_for_budget(self, u: np.ndarray, flops: np.ndarray, meta: TraceMeta, budget: float) -> float:
        """The most expensive price whose mean cost on these utilities is <= budget (the cheapest if none)."""
        cm = CostModel.from_meta(meta)
        cands = price_candidates(u, self.units_)

        def mean_cost(lam: float) -> float:
            d = allocate(u, self.units_, lam)
            return float(np.mean(cm.cost(d, self.exits_by_depth_[d], flops)))

        if mean_cost(cands[-1]) <= budget:
            return float(cands[-1])
        lo, hi = 0, cands.size - 1
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if mean_cost(cands[mid]) <= budget:
                lo = mid
            else:
                hi = mid
        return float(cands[lo])

    # ------------------------------------------------------------- persistence
    def save_fitted(self, directory: str | Path) -> dict[str, Any]:
        """Save the fitted predictor into `directory`.

        Returns the JSON-able metadata (features, costs, predictor files) kept in `controller.json`.
        """
        self._check_fitted()
        meta = {"features": self.features_.to_dict(), "flops_summary": self.flops_summary_,
                "exits_by_depth": self.exits_by_depth_.tolist(), "units": self.units_.tolist()}
        meta["predictor"] = self._save_predictor(Path(directory))
        return meta

    def load_fitted(self, directory: str | Path, meta: dict[str, Any]) -> None:
        """Restore what `save_fitted` wrote.

        Raises `CheckpointError` when the metadata is incomplete or a predictor file is unreadable.
        """
        try:
            self.features_ = UpfrontFeatures.from_dict(meta["features"])
            self.flops_summary_ = float(meta["flops_summary"])
            self.exits_by_depth_ = np.asarray(meta["exits_by_depth"], dtype=np.int64)
            self.units_ = np.asarray(meta["units"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{directory}: controller metadata is incomplete ({exc})") from None
        self._load_predictor(Path(directory), meta["predictor"])
        self.predictor_token_ = object()

    def _save_predictor(self, directory: Path) -> dict[str, Any]:
        raise NotImplementedError

    def _load_predictor(self, directory: Path, meta: dict[str, Any]) -> None:
        raise NotImplementedError

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_util_cache", None)
        return state
