"""Shared base of the learned incremental controllers (ACT halting head, exit gate).

A `HeadController` runs a small `HaltingHead` (see `adaptive_loop.model.halting`) after
every loop step on [h_t, z_t, |z_t|, z_t - z_{t-1}] and turns its per-depth probabilities
into a stopping score (ACT: the remaining halting mass; exit gate: the exit CDF). Training
is post-hoc on a frozen model's trace (`fit`), with per-sample per-depth BCE as the loss
table; the ground-truth `needed_depth` of synthetic traces is never read (the head sees
summaries and logits only).

Honest cost per visited depth below the last: the hidden summary (`meta.flops_summary`,
when `use_hidden`), two FLOPs of logit features, the head (`mlp_flops`), a sigmoid and the
rule's own arithmetic. A head trained jointly with LoopCTR knows depths 0..L only; it stops
every row at L (`stop_depth_`), and the rule does not run there.

Fitted heads are saved with `adaptive_loop.io.save_checkpoint` (tensors and plain values
only, loaded with `weights_only=True`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from adaptive_loop.errors import CheckpointError, ConfigError, TraceError
from adaptive_loop.io import load_checkpoint, save_checkpoint
from adaptive_loop.trace import DepthTrace
from controllers.base import ControllerDecision, OnlineState, StepView
from controllers.incremental import IncrementalController, threshold_breakpoints
from controllers.learned.torch_fit import (
    SIGMOID_FLOPS,
    TrainLog,
    head_forward,
    mlp_flops,
    split_rows,
    to_numpy_weights,
    to_tensor_weights,
)

HEAD_FILE = "head.pt"
HEAD_FORMAT = 1
LOGIT_FEATURE_FLOPS = 2.0  # |z| and z - z_prev


def step_features_numpy(hidden: np.ndarray | None, z: np.ndarray, z_prev: np.ndarray) -> np.ndarray:
    """[m, f] = [h_t, z_t, |z_t|, z_t - z_prev] (the numpy twin of `halting.step_features`)."""
    z = np.asarray(z, dtype=np.float64).reshape(-1, 1)
    zp = np.asarray(z_prev, dtype=np.float64).reshape(-1, 1)
    parts = [z, np.abs(z), z - zp]
    if hidden is not None:
        parts.insert(0, np.asarray(hidden, dtype=np.float64))
    return np.concatenate(parts, axis=1)


def trace_step_features(trace: DepthTrace, use_hidden: bool) -> np.ndarray:
    """Step features of every row at every depth, float32 [n, K+1, f] (for training)."""
    z = trace.logits.astype(np.float64)
    prev = np.concatenate([z[:, :1], z[:, :-1]], axis=1)
    parts = [z[..., None], np.abs(z)[..., None], (z - prev)[..., None]]
    if use_hidden:
        parts.insert(0, trace.hidden.astype(np.float64))
    return np.concatenate(parts, axis=2).astype(np.float32)


class HeadController(IncrementalController):
    """Base class: a learned per-step head plus a stopping rule on its probabilities.

    Subclasses set `rule_flops`, implement `_init_state`, `_combine` (per-depth head logits
    -> score) and `_train_head` (torch training on a trace).
    """

    rule_flops: ClassVar[float] = 0.0

    # ------------------------------------------------------------- params shared by heads
    @classmethod
    def head_space(cls, trial: Any, trace: DepthTrace) -> dict[str, Any]:
        """Optuna ranges every head shares: its loss, width, inputs, learning rate and decay."""
        return {
            "loss": trial.suggest_categorical("loss", ["bce", "rank"]),
            "hidden": trial.suggest_categorical("hidden", [0, 8, 16, 32]),
            "use_hidden": trial.suggest_categorical("use_hidden", [True, False]) if trace.hidden is not None else False,
            "lr": trial.suggest_float("lr", 1e-3, 1e-2, log=True),
            "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True),
        }

    def _validate_common(self) -> None:
        owner = type(self).__name__
        if not isinstance(self.hidden, (int, np.integer)) or self.hidden < 0:
            raise ConfigError(f"{owner}: hidden must be an integer >= 0, got {self.hidden!r}")
        for key in ("epochs", "batch_size"):
            v = getattr(self, key)
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise ConfigError(f"{owner}: {key} must be an integer >= 1, got {v!r}")
        if not float(self.lr) > 0:
            raise ConfigError(f"{owner}: lr must be > 0, got {self.lr!r}")
        if not 0.0 <= float(self.valid_fraction) < 1.0:
            raise ConfigError(f"{owner}: valid_fraction must lie in [0, 1), got {self.valid_fraction!r}")
        if self.loss not in ("bce", "rank"):
            raise ConfigError(f"{owner}: loss must be 'bce' or 'rank', got {self.loss!r}")
        if self.mode not in ("posthoc", "joint"):
            raise ConfigError(f"{owner}: mode must be 'posthoc' or 'joint', got {self.mode!r}")
        if self.mode == "joint" and not self.checkpoint:
            raise ConfigError(f"{owner}: mode='joint' needs checkpoint=<run>/checkpoints/best.pt of a run trained with train.halting.enabled")

    @property
    def step_inputs(self) -> frozenset[str]:  # type: ignore[override]
        """The engine computes hidden summaries only for heads that read them; side columns are never read."""
        return frozenset({"hidden"}) if getattr(self, "uses_hidden_", self.use_hidden) else frozenset()

    # ------------------------------------------------------------- cost
    @property
    def flops_per_step(self) -> float:
        in_dim = int(getattr(self, "in_dim_", 0)) or 1
        hidden = int(getattr(self, "head_hidden_", self.hidden))
        summary = float(getattr(self, "flops_summary_", 0.0)) if getattr(self, "uses_hidden_", self.use_hidden) else 0.0
        return summary + LOGIT_FEATURE_FLOPS + mlp_flops(in_dim, hidden) + SIGMOID_FLOPS + self.rule_flops

    # ------------------------------------------------------------- fitting
    def _fit(self, trace: DepthTrace, targets: Any) -> None:
        self.flops_summary_ = float(trace.meta.flops_summary)
        if self.mode == "joint":
            self._load_joint_head(trace)
            return
        if self.use_hidden and trace.hidden is None:
            raise TraceError(
                f"{type(self).__name__}: use_hidden=True but the trace has no hidden summaries; write it without "
                f"--no-hidden or set use_hidden=False"
            )
        losses = self._loss_table(trace, targets)
        x = trace_step_features(trace, bool(self.use_hidden))
        fit_rows, valid_rows = split_rows(trace.n_samples, float(self.valid_fraction), int(self.seed))
        weights, log = self._train_head(x, losses, fit_rows, valid_rows)
        self._set_head(weights, in_dim=x.shape[2], hidden=int(self.hidden), n_depths=trace.n_depths, uses_hidden=bool(self.use_hidden))
        self.train_log_ = log.to_dict()

    def _loss_table(self, trace: DepthTrace, targets: Any) -> np.ndarray:
        """Per-sample per-depth loss [n, K+1]: BCE (`loss="bce"`), minus the AUC-contribution gain
        over depth 0 (`loss="rank"`, `adaptive_loop.depth_targets.rank_gains`), or a table given as `targets`."""
        if targets is None:
            if self.loss == "rank":
                from adaptive_loop.depth_targets import rank_gains

                return -rank_gains(trace)
            from adaptive_loop.depth_targets import per_sample_bce

            return per_sample_bce(trace)
        table = np.asarray(getattr(targets, "bce", targets), dtype=np.float64)
        if table.shape != trace.logits.shape:
            raise TraceError(f"{type(self).__name__}: targets must be a loss table of shape {trace.logits.shape}, got {table.shape}")
        return table

    def _train_head(self, x: np.ndarray, losses: np.ndarray, fit_rows: np.ndarray, valid_rows: np.ndarray) -> tuple[dict, TrainLog]:
        raise NotImplementedError

    def _new_head(self, in_dim: int, n_depths: int, x: np.ndarray, fit_rows: np.ndarray):
        """A seeded `HaltingHead` with its standardisation fitted on the training rows."""
        import torch

        from adaptive_loop.model.halting import HaltingHead

        torch.manual_seed(int(self.seed))
        head = HaltingHead(in_dim, int(self.hidden), n_depths).double()
        flat = x[fit_rows].reshape(-1, in_dim).astype(np.float64)
        head.set_stats(torch.from_numpy(flat.mean(0)), torch.from_numpy(flat.std(0)))
        return head

    def _set_head(self, weights: dict[str, np.ndarray], in_dim: int, hidden: int, n_depths: int, uses_hidden: bool) -> None:
        self.head_ = weights
        self.in_dim_ = int(in_dim)
        self.head_hidden_ = int(hidden)
        self.head_depths_ = int(n_depths)
        self.uses_hidden_ = bool(uses_hidden)
        self.stop_depth_ = min(self.max_depth_, self.head_depths_ - 1)

    def _load_joint_head(self, trace: DepthTrace) -> None:
        """Load the head trained with LoopCTR (`train.halting`) from a training checkpoint."""
        from adaptive_loop.model.halting import HaltingHead

        payload = load_checkpoint(self.checkpoint)
        joint = payload.get("halting")
        if not isinstance(joint, dict) or "state" not in joint:
            raise CheckpointError(
                f"checkpoint {self.checkpoint} holds no jointly trained halting head; train the run with "
                f"--set train.halting.enabled=true"
            )
        cfg = joint["layout"]
        if trace.hidden is None or trace.hidden.shape[2] != int(cfg["hidden_dim"]):
            raise TraceError(
                f"{type(self).__name__}: the joint head reads summaries of width {cfg['hidden_dim']} but the trace has "
                f"{None if trace.hidden is None else trace.hidden.shape[2]}; trace the same run with hidden summaries"
            )
        head = HaltingHead(int(cfg["in_dim"]), int(cfg["hidden"]), int(cfg["n_depths"]))
        head.load_state_dict(joint["state"])
        weights = to_numpy_weights(head.export())
        self._set_head(weights, in_dim=int(cfg["in_dim"]), hidden=int(cfg["hidden"]), n_depths=int(cfg["n_depths"]), uses_hidden=True)
        self.train_log_ = {"joint_checkpoint": str(self.checkpoint), "eps": cfg.get("eps"), "tau": cfg.get("tau")}

    # ------------------------------------------------------------- scores
    def _new_state(self, n_rows: int) -> dict[str, np.ndarray]:
        state = {"prev": np.zeros(n_rows)}
        state.update(self._init_state(n_rows))
        return state

    def _init_state(self, n_rows: int) -> dict[str, np.ndarray]:
        return {}

    def head_logits(self, step: StepView, state: dict[str, np.ndarray]) -> np.ndarray:
        """The head's logit at this depth for the rows shown (updates the previous-logit state)."""
        rows = step.row_index
        z = np.asarray(step.logits, dtype=np.float64)
        prev = z if step.depth == 0 else state["prev"][rows]
        if self.uses_hidden_ and step.hidden is None:
            raise ValueError(f"{type(self).__name__}.should_stop needs the step's hidden summaries (fitted with use_hidden=True)")
        x = step_features_numpy(step.hidden if self.uses_hidden_ else None, z, prev)
        if x.shape[1] != self.in_dim_:
            raise TraceError(f"{type(self).__name__}: step features have width {x.shape[1]}, the head expects {self.in_dim_}")
        state["prev"][rows] = z
        depth = min(step.depth, self.head_depths_ - 1)
        return head_forward(self.head_, x, depth)

    def _score(self, step: StepView, state: dict[str, np.ndarray]) -> np.ndarray:
        if step.depth >= self.stop_depth_:
            return np.full(step.n_rows, -np.inf if self.stop_if == "lt" else np.inf)
        return self._combine(self.head_logits(step, state), step, state)

    def _combine(self, logits: np.ndarray, step: StepView, state: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    # ------------------------------------------------------------- decisions (forced stop at stop_depth_)
    def decide(self, trace: DepthTrace) -> ControllerDecision:
        """Offline: the threshold rule on the head's scores, every row stopped by `stop_depth_`.

        The rule's FLOPs are charged only at the depths where it ran.
        """
        self._check_trace(trace)
        scores = self.score_matrix(trace)
        k, s = trace.max_depth, self.stop_depth_
        stop = self._passes(scores, self._thresholds(k + 1)[None, :])
        stop[:, s:] = True
        depth = np.argmax(stop, axis=1)
        steps_run = np.minimum(depth + 1, s)  # the rule does not run where the stop is forced
        return ControllerDecision.from_depths(trace, depth, depth + 1, steps_run * self.flops_per_step)

    def should_stop(self, step: StepView, state: OnlineState | None = None) -> np.ndarray:
        """Online: True for rows whose score passes the threshold; every row stops at min(K, `stop_depth_`)."""
        st = self._online(step, state)
        if step.depth >= min(st.max_depth, self.stop_depth_):
            return np.ones(step.n_rows, dtype=bool)
        return super().should_stop(step, st)

    def _knob_candidates(self, trace: DepthTrace) -> np.ndarray | None:
        # the rule runs at depths 0..stop_depth_-1 only
        return threshold_breakpoints(self.score_matrix(trace)[:, : self.stop_depth_], self.stop_if)

    # ------------------------------------------------------------- persistence
    def save_fitted(self, directory: str | Path) -> dict[str, Any]:
        """Write the head with `save_checkpoint`; returns the JSON-able metadata to keep beside it."""
        self._check_fitted()
        path = Path(directory) / HEAD_FILE
        save_checkpoint(path, {"format": HEAD_FORMAT, "weights": to_tensor_weights(self.head_)})
        return {
            "file": HEAD_FILE, "in_dim": self.in_dim_, "hidden": self.head_hidden_, "n_depths": self.head_depths_,
            "uses_hidden": self.uses_hidden_, "flops_summary": self.flops_summary_, "train_log": getattr(self, "train_log_", None),
        }

    def load_fitted(self, directory: str | Path, meta: dict[str, Any]) -> None:
        """Restore a head written by `save_fitted`.

        Raises `CheckpointError` if the file has another format or does not match the layout.
        """
        path = Path(directory) / meta.get("file", HEAD_FILE)
        payload = load_checkpoint(path)
        if payload.get("format") != HEAD_FORMAT or not isinstance(payload.get("weights"), dict):
            raise CheckpointError(f"{path} is not a halting-head file of format {HEAD_FORMAT}")
        weights = to_numpy_weights(payload["weights"])
        in_dim = int(meta["in_dim"])
        if weights.get("w1") is None or weights["w1"].shape[0] != in_dim:
            raise CheckpointError(f"{path}: head weights do not match the saved layout (in_dim={in_dim})")
        self.flops_summary_ = float(meta["flops_summary"])
        self._set_head(weights, in_dim, int(meta["hidden"]), int(meta["n_depths"]), bool(meta["uses_hidden"]))
        if meta.get("train_log") is not None:
            self.train_log_ = meta["train_log"]
