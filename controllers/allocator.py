"""Budgeted allocation (DCAF-style): spend compute where the predicted gain is largest.

An up-front controller predicts, before any loop step, a utility u_i(t) for every depth t
of every sample (a predicted loss gain, or a class probability). Each sample then takes

    depth_i = argmax_t [ u_i(t) - lam * c(t) ]      (ties to the shallowest depth)

where c(t) is the real extra cost of answering at depth t, in Loop-step units:
(cost(t) - cost(0)) / loop FLOPs with cost(t) = Entry + t Loop + exits(t) Exit, and exits(t)
= 2 for t > 0 when the depth-0 prediction is a feature (it was evaluated once already). The
budget knob is the price `lam` (larger = cheaper). The mean cost only changes where lam
crosses a slope of some sample's upper concave hull of (c(t), u_i(t)), so `calibrate`
bisects over those breakpoints (midpoints between consecutive distinct slopes) and meets
the budget exactly on the calibration trace. Negative prices are allowed, so every budget
between depth 0 and depth K for all rows is reachable.

Two budget modes:
- over a validation set: `calibrate(valid, budget)` fixes lam, used for every later row;
- over a stream of batches: `StreamingBudget` re-solves lam on each batch so that the
  running mean cost over everything seen meets the budget (overspending in one batch is
  paid back in the next ones), without labels.

`UtilityAllocator` is the shared machinery (features, costs, knob search, online protocol);
`BudgetedAllocator` (registered as "allocator") predicts per-depth gains over depth 0 (BCE
saved, or AUC contribution gained with `gain_target="rank"`) with a small MLP or LightGBM; `controllers.lgbm_depth.LGBMDepth` is the LightGBM depth predictor.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterable, Sequence

import numpy as np

from adaptive_loop.cost import CostModel
from adaptive_loop.errors import BudgetError, CheckpointError, ConfigError
from adaptive_loop.hull import hull_walk
from adaptive_loop.trace import DepthTrace, TraceMeta
from controllers.base import Controller, ControllerDecision, OnlineState, StepView, check_choice
from controllers.features import UpfrontFeatures, is_id_column
from controllers.registry import register_controller
from controllers.torch_training import TrainLog, rowwise_affine, split_rows, to_numpy_weights, to_tensor_weights

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


# --------------------------------------------------------------------------- streaming
@dataclass
class StreamResult:
    """Depths and costs of a stream of batches allocated under a running-mean budget."""

    depth: np.ndarray
    cost: np.ndarray
    lams: list[float] = field(default_factory=list)
    batch_mean_cost: list[float] = field(default_factory=list)

    @property
    def mean_cost(self) -> float:
        return float(self.cost.mean()) if self.cost.size else float("nan")


class StreamingBudget:
    """Meets a mean-cost budget over a stream of batches by re-pricing each batch.

    Batch b gets the target (budget * (seen + m) - spent) / m, so that the running mean over
    all rows so far meets the budget; its price is the most expensive one that fits that
    target on the batch's own predicted utilities (no labels). A batch that cannot get
    cheap enough takes its cheapest allocation and later batches pay it back.
    """

    def __init__(self, controller: UtilityAllocator, budget: float, meta: TraceMeta) -> None:
        controller._check_fitted()
        self.controller = controller
        self.budget = float(budget)
        self.meta = meta
        self.exits_by_depth, self.units = controller.exits_by_depth_, controller.units_
        self.cost_model = CostModel.from_meta(meta)
        self.spent = 0.0
        self.seen = 0
        self.lams: list[float] = []

    def allocate(self, step: StepView) -> tuple[np.ndarray, np.ndarray]:
        """(depth [m], cost [m]) for one batch shown at depth 0."""
        u, flops = self.controller._view_utilities(step)
        m = step.n_rows
        if m == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        target = (self.budget * (self.seen + m) - self.spent) / m
        lam = self.controller.lam_for_budget(u, flops, self.meta, target)
        depth = allocate(u, self.units, lam)
        cost = np.asarray(self.cost_model.cost(depth, self.exits_by_depth[depth], flops), dtype=np.float64)
        self.spent += float(cost.sum())
        self.seen += m
        self.lams.append(lam)
        return depth, cost

    def run(self, steps: Iterable[StepView]) -> StreamResult:
        """Allocate every batch of `steps`, in order.

        Returns the depths and costs of all rows plus the price and mean cost of each batch.
        """
        depths, costs, means = [], [], []
        for step in steps:
            d, c = self.allocate(step)
            depths.append(d)
            costs.append(c)
            means.append(float(c.mean()) if c.size else float("nan"))
        return StreamResult(np.concatenate(depths) if depths else np.zeros(0, np.int64),
                            np.concatenate(costs) if costs else np.zeros(0), list(self.lams), means)


def stream_trace(controller: UtilityAllocator, trace: DepthTrace, budget: float, batch_size: int) -> StreamResult:
    """`StreamingBudget` over consecutive batches of a trace (rows in trace order)."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    lo = float(CostModel.from_trace(trace).fixed_depth(0))
    if budget < lo:
        raise BudgetError(f"streaming budget {budget:.6g} FLOPs/sample is below the cost of depth 0 ({lo:.6g})")
    streamer = StreamingBudget(controller, budget, trace.meta)

    def views() -> Iterable[StepView]:
        for start in range(0, trace.n_samples, batch_size):
            rows = np.arange(start, min(start + batch_size, trace.n_samples))
            yield StepView(
                depth=0, logits=trace.logits[rows, 0], row_index=rows - start,
                hidden=None if trace.hidden is None else trace.hidden[rows, 0, :],
                features={k: v[rows] for k, v in trace.features.items()},
            )

    return streamer.run(views())


# --------------------------------------------------------------------------- gain models
def gain_table(trace: DepthTrace, gain_target: str, targets: Any, owner: str) -> np.ndarray:
    """Per-sample gains over depth 0 [n, K+1] to regress: BCE saved (`"bce"`), AUC contribution
    gained (`"rank"`, `adaptive_loop.depth_targets.rank_gains`), or a table given as `targets`."""
    from adaptive_loop.depth_targets import gain_targets, rank_gains

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

        from controllers.torch_training import train_module

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
        from adaptive_loop.io import save_checkpoint

        save_checkpoint(directory / "gain_mlp.pt", {"format": 1, "weights": to_tensor_weights(self.weights),
                                                    "columns": to_tensor_weights({"c": self.columns.astype(np.float64)})})
        return {"file": "gain_mlp.pt"}

    def load(self, directory: Path, meta: dict[str, Any]) -> None:
        """Read the weights written by `save`; raises `CheckpointError` for a file of another format."""
        from adaptive_loop.io import load_checkpoint

        payload = load_checkpoint(directory / meta.get("file", "gain_mlp.pt"))
        if payload.get("format") != 1:
            raise CheckpointError(f"{directory / meta.get('file', 'gain_mlp.pt')} is not a gain-MLP file of format 1")
        self.weights = to_numpy_weights(payload["weights"])
        self.columns = to_numpy_weights(payload["columns"])["c"].astype(np.int64)


@register_controller
class BudgetedAllocator(UtilityAllocator):
    """DCAF allocation on predicted per-depth gains over depth 0 (MLP or LightGBM)."""

    name: ClassVar[str] = "allocator"

    def __init__(
        self,
        lam: float = 0.0,
        gain_model: str = "mlp",
        gain_target: str = "bce",
        hidden: int = 32,
        n_estimators: int = 200,
        num_leaves: int = 31,
        learning_rate: float = 0.05,
        min_child_samples: int = 50,
        use_logit: bool = True,
        use_hidden: bool = True,
        features: tuple[str, ...] | None = None,
        epochs: int = 40,
        batch_size: int = 512,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        valid_fraction: float = 0.2,
        patience: int = 5,
        seed: int = 0,
    ) -> None:
        self.lam = lam
        self.gain_model = gain_model
        self.gain_target = gain_target
        self.hidden = hidden
        self.n_estimators = n_estimators
        self.num_leaves = num_leaves
        self.learning_rate = learning_rate
        self.min_child_samples = min_child_samples
        self.use_logit = use_logit
        self.use_hidden = use_hidden
        self.features = features
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.valid_fraction = valid_fraction
        self.patience = patience
        self.seed = seed

    def _validate_params(self) -> None:
        check_choice("BudgetedAllocator", "gain_model", self.gain_model, ("mlp", "lgbm"))
        check_choice("BudgetedAllocator", "gain_target", self.gain_target, ("bce", "rank"))
        if not np.isfinite(float(self.lam)):
            raise ConfigError(f"BudgetedAllocator: lam must be finite, got {self.lam!r}")

    def _fit_predictor(self, x: np.ndarray, trace: DepthTrace, targets: Any) -> None:
        gains = gain_table(trace, self.gain_target, targets, "BudgetedAllocator")
        if self.gain_model == "mlp":
            self.predictor_ = MLPGainModel(int(self.hidden), int(self.epochs), int(self.batch_size), float(self.lr),
                                           float(self.weight_decay), float(self.valid_fraction), int(self.patience),
                                           int(self.seed)).fit(x, gains, self.features_.names)
        else:
            from controllers.lgbm_depth import LGBMGainModel

            self.predictor_ = LGBMGainModel(
                n_estimators=int(self.n_estimators), num_leaves=int(self.num_leaves), learning_rate=float(self.learning_rate),
                min_child_samples=int(self.min_child_samples), valid_fraction=float(self.valid_fraction), seed=int(self.seed),
            ).fit(x, gains, self.features_.names)

    def _predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.predictor_.predict(x)

    def _save_predictor(self, directory: Path) -> dict[str, Any]:
        return {"kind": self.gain_model, **self.predictor_.save(directory)}

    def _load_predictor(self, directory: Path, meta: dict[str, Any]) -> None:
        if meta.get("kind") == "mlp":
            model: Any = MLPGainModel(0, 1, 1, 1.0, 0.0, 0.0, 1, 0)
        else:
            from controllers.lgbm_depth import LGBMGainModel

            model = LGBMGainModel()
        model.load(directory, meta)
        self.predictor_ = model
