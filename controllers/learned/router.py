"""The depth router trained with LoopCTR (`train.routing`), run as a per-sample controller.

During training the router scores every running row after each loop step t < L from its
hidden summary h_t and, with expert choice, the batch's top capacity[t] share continues
(`adaptive_loop.training.routing`). That top-k depends on the other rows of the batch; at
inference each row is decided alone, by a threshold on its own score:

- `thresholds="capacity"` (default): per-step thresholds theta_t fitted on the calibration
  (validation) trace so that the trained capacities continue there
  (`adaptive_loop.routing_rules.capacity_thresholds`): the batch rule's shares, per row;
- `thresholds="aux"`: theta_t = 0, i.e. sigmoid(r_t) >= 0.5 continues - MoR's auxiliary
  predictor, which the selection BCE trained to predict the top-k (and the token-choice rule).

A row stops at the first depth t whose score r_t - theta_t is below `shift` (the budget knob:
a larger shift stops more rows and costs less; `calibrate` sets it); every row stops by L.

Cost. The router reads the summary only, never the Exit's logit, so a routed row evaluates
the Exit once, at the depth where it stops (`exit_every_step = False`; the engine honours
it). Per visited depth below the forced stop it pays the hidden summary
(`meta.flops_summary`), the router MLP (`mlp_flops`) and 2 FLOPs of rule (subtract theta,
compare); a row costs Entry + depth x Loop + one Exit + those.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from adaptive_loop.errors import CheckpointError, ConfigError, TraceError
from adaptive_loop.io import load_checkpoint, save_checkpoint
from adaptive_loop.routing_rules import capacity_thresholds
from adaptive_loop.trace import DepthTrace
from controllers.base import ControllerDecision, OnlineState, StepView
from controllers.incremental import IncrementalController, threshold_breakpoints
from controllers.learned.torch_fit import head_forward, mlp_flops, to_numpy_weights, to_tensor_weights
from controllers.registry import register_controller

ROUTER_FILE = "router.pt"
ROUTER_FORMAT = 1
RULE_FLOPS = 2.0  # subtract theta_t, compare


def load_router(checkpoint: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(numpy router weights, layout) from a training checkpoint of a run with `train.routing`."""
    from adaptive_loop.model.halting import HaltingHead  # torch: imported only to read the checkpoint

    payload = load_checkpoint(checkpoint)
    joint = payload.get("routing")
    if not isinstance(joint, dict) or "state" not in joint or "layout" not in joint:
        raise CheckpointError(
            f"checkpoint {checkpoint} holds no depth router; train the run with --set train.routing.mode=expert_choice"
        )
    layout = dict(joint["layout"])
    head = HaltingHead(int(layout["in_dim"]), int(layout["hidden"]), int(layout["n_depths"]))
    head.load_state_dict(joint["state"])
    return to_numpy_weights(head.export()), layout


def router_scores(weights: dict[str, np.ndarray], hidden: np.ndarray, n_steps: int) -> np.ndarray:
    """Router logits [n, n_steps] from summaries [n, >= n_steps, h] (numpy, row-deterministic)."""
    return np.stack([head_forward(weights, hidden[:, t, :], t) for t in range(n_steps)], axis=1)


@register_controller
class RouterController(IncrementalController):
    """Stop a row once its jointly trained router score falls below its step's threshold + `shift`."""

    name: ClassVar[str] = "router"
    budget_param: ClassVar[str] = "shift"
    stop_if: ClassVar[str] = "lt"
    step_inputs: ClassVar[frozenset[str]] = frozenset({"hidden"})
    exit_every_step: ClassVar[bool] = False  # the router never reads the Exit's logit

    def __init__(self, checkpoint: str | None = None, shift: float = 0.0, thresholds: str = "capacity") -> None:
        self.checkpoint = checkpoint
        self.shift = shift
        self.thresholds = thresholds

    def _validate_params(self) -> None:
        if not self.checkpoint:
            raise ConfigError("RouterController needs checkpoint=<run>/checkpoints/best.pt of a run trained with train.routing")
        if self.thresholds not in ("capacity", "aux"):
            raise ConfigError(f"RouterController: thresholds must be 'capacity' or 'aux', got {self.thresholds!r}")
        if not np.isfinite(float(self.shift)):
            raise ConfigError(f"RouterController: shift must be finite, got {self.shift!r}")

    # ------------------------------------------------------------- cost
    @property
    def flops_per_step(self) -> float:
        in_dim = int(getattr(self, "in_dim_", 0)) or 1
        return float(getattr(self, "flops_summary_", 0.0)) + mlp_flops(in_dim, int(getattr(self, "head_hidden_", 0))) + RULE_FLOPS

    # ------------------------------------------------------------- fitting
    def _fit(self, trace: DepthTrace, targets: Any) -> None:
        weights, layout = load_router(self.checkpoint)
        width = int(layout["hidden_dim"])
        if trace.hidden is None or trace.hidden.shape[2] != width:
            raise TraceError(
                f"RouterController: the router reads summaries of width {width} but the trace has "
                f"{None if trace.hidden is None else trace.hidden.shape[2]}; trace the same run with hidden summaries"
            )
        self._set_router(weights, layout, float(trace.meta.flops_summary))
        if self.thresholds == "aux":
            self.theta_ = np.zeros(self.router_steps_)
        else:
            steps = min(self.router_steps_, trace.max_depth)
            theta = np.full(self.router_steps_, np.inf)
            theta[:steps] = capacity_thresholds(router_scores(self.head_, trace.hidden, steps), self.capacity_[:steps])
            self.theta_ = theta

    def _set_router(self, weights: dict[str, np.ndarray], layout: dict[str, Any], flops_summary: float) -> None:
        self.head_ = weights
        self.in_dim_ = int(layout["in_dim"])
        self.head_hidden_ = int(layout["hidden"])
        self.router_steps_ = int(layout["n_depths"])
        self.capacity_ = np.asarray(layout["capacity"], dtype=np.float64)
        self.routing_mode_ = str(layout.get("mode", ""))
        self.flops_summary_ = float(flops_summary)
        self.stop_depth_ = min(self.max_depth_, self.router_steps_)

    # ------------------------------------------------------------- scores
    def _score(self, step: StepView, state: dict[str, np.ndarray]) -> np.ndarray:
        if step.depth >= self.stop_depth_:
            return np.full(step.n_rows, -np.inf)
        if step.hidden is None:
            raise ValueError("RouterController needs the step's hidden summaries")
        return head_forward(self.head_, step.hidden, step.depth) - self.theta_[step.depth]

    def decide(self, trace: DepthTrace) -> ControllerDecision:
        """Offline: the threshold rule on the router's scores; one Exit per row, at its stop depth."""
        self._check_trace(trace)
        scores = self.score_matrix(trace)
        s = self.stop_depth_
        stop = scores < float(self.shift)
        stop[:, s:] = True
        depth = np.argmax(stop, axis=1)
        steps_run = np.minimum(depth + 1, s)  # the router does not run where the stop is forced
        return ControllerDecision.from_depths(trace, depth, np.ones_like(depth), steps_run * self.flops_per_step)

    def should_stop(self, step: StepView, state: OnlineState | None = None) -> np.ndarray:
        """Online: True for rows whose score is below `shift`; every row stops at min(K, L). Needs no logits."""
        st = self._online(step, state)
        if step.depth >= min(st.max_depth, self.stop_depth_):
            return np.ones(step.n_rows, dtype=bool)
        score = self._score(step, st.data)
        if st.controller_flops is not None:
            st.controller_flops[step.row_index] += self.flops_per_step
        return np.asarray(score < float(self.shift), dtype=bool)

    def _knob_candidates(self, trace: DepthTrace) -> np.ndarray | None:
        return threshold_breakpoints(self.score_matrix(trace)[:, : self.stop_depth_], self.stop_if)

    # ------------------------------------------------------------- persistence
    def save_fitted(self, directory: str | Path) -> dict[str, Any]:
        """Write the router with `save_checkpoint`; returns the JSON-able layout and thresholds kept beside it."""
        self._check_fitted()
        save_checkpoint(Path(directory) / ROUTER_FILE, {"format": ROUTER_FORMAT, "weights": to_tensor_weights(self.head_)})
        return {
            "file": ROUTER_FILE, "in_dim": self.in_dim_, "hidden": self.head_hidden_, "n_depths": self.router_steps_,
            "capacity": self.capacity_.tolist(), "mode": self.routing_mode_, "flops_summary": self.flops_summary_,
            "theta": [float(v) if np.isfinite(v) else str(v) for v in self.theta_],
        }

    def load_fitted(self, directory: str | Path, meta: dict[str, Any]) -> None:
        """Restore a router written by `save_fitted`; `CheckpointError` if the file does not match."""
        path = Path(directory) / meta.get("file", ROUTER_FILE)
        payload = load_checkpoint(path)
        if payload.get("format") != ROUTER_FORMAT or not isinstance(payload.get("weights"), dict):
            raise CheckpointError(f"{path} is not a router file of format {ROUTER_FORMAT}")
        weights = to_numpy_weights(payload["weights"])
        if weights.get("w1") is None or weights["w1"].shape[0] != int(meta["in_dim"]):
            raise CheckpointError(f"{path}: router weights do not match the saved layout (in_dim={meta['in_dim']})")
        self._set_router(weights, meta, float(meta["flops_summary"]))
        self.theta_ = np.asarray([float(v) for v in meta["theta"]], dtype=np.float64)
