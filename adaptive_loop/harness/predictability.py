"""Predictability bound: how much of the oracle headroom a depth chosen without the label reaches.

A controller sees the sample, never its label. Whatever part of the oracle's per-sample
choice can be predicted from what it sees is headroom a controller could learn; the rest
is the label choosing among noisy copies. The bound here:

1. inputs, label-free only: the trace's side columns (ground truth such as the synthetic
   `needed_depth` is dropped by `controllers.learned.features.side_feature_names`), the logit at
   every depth, its step-to-step changes and its spread over depths, and the hidden
   summaries at every depth when the trace has them. Probabilities are not added: they are
   a monotone map of the logits, and trees split on them identically. Reading every depth
   costs a full-depth pass, so this is a bound on *choosing*, not a cheap controller;
2. targets: per-sample, per-depth loss gains over depth 0 (`adaptive_loop.depth_targets`): BCE saved
   (`target="bce"`) or AUC contribution gained (`target="rank"`, against a reference
   ranking built from the training folds only);
3. a model: one LightGBM regressor per depth (`controllers.learned.lgbm_models.LGBMGainModel`, the
   gain model of the `lgbm_depth` controller), **cross-fitted**: k seeded folds, each
   sample's gains are predicted by the model fitted on the other folds, so no sample's own
   label reaches its choice;
4. the choice: each sample's depth with the largest predicted gain (ties to the
   shallowest), scored by AUC on all samples.

`gain = AUC(chosen) - AUC(best fixed depth)`: what a controller could learn at best, up to
that model's power (a stronger learner or more data could find more; a result near zero
says this learner found nothing, not that nothing exists). It can be negative: a learner
that chases noise picks worse depths than the best fixed one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from adaptive_loop.cost import CostModel
from adaptive_loop.depth_targets import gain_targets, rank_gains
from adaptive_loop.errors import ConfigError, TraceError
from adaptive_loop.metrics import auc, logloss_from_logits
from adaptive_loop.trace import DepthTrace
from controllers.learned.features import side_feature_names  # the one list of columns no controller may read
from controllers.learned.lgbm_models import LGBMGainModel  # the gain model of the lgbm_depth controller
from oracle.null import candidate_headroom, reference_depth

TARGETS = ("bce", "rank")


@dataclass
class PredictabilityBound:
    """The cross-fitted label-free depth choice and how much headroom it reaches."""

    depths: np.ndarray  # int64 [n], the chosen depth of each sample
    auc: float
    logloss: float
    reference_depth: int
    reference_auc: float
    reference_logloss: float
    oracle_headroom: float
    mean_cost: float  # FLOPs/sample of reading every depth (Entry, K loops, K+1 exits); the learner is not counted
    folds: int
    seed: int
    target: str
    feature_names: list[str] = field(default_factory=list)

    @property
    def gain(self) -> float:
        """AUC of the chosen depths minus AUC of the best fixed depth."""
        return self.auc - self.reference_auc

    @property
    def share(self) -> float:
        """Gain as a share of the oracle headroom (NaN without headroom)."""
        return self.gain / self.oracle_headroom if self.oracle_headroom > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (the per-sample depths as a histogram)."""
        return {
            "auc": self.auc, "logloss": self.logloss, "reference_depth": self.reference_depth,
            "reference_auc": self.reference_auc, "reference_logloss": self.reference_logloss,
            "gain": self.gain, "oracle_headroom": self.oracle_headroom, "share_of_oracle": self.share,
            "mean_cost": self.mean_cost, "folds": self.folds, "seed": self.seed, "target": self.target,
            "depth_histogram": np.bincount(self.depths, minlength=int(self.depths.max(initial=0)) + 1).tolist(),
            "n_features": len(self.feature_names),
            "model": "LightGBM regression of per-depth gains over depth 0, one regressor per depth, cross-fitted",
        }


def label_free_features(trace: DepthTrace, use_hidden: bool = True) -> tuple[np.ndarray, list[str]]:
    """Inputs of the bound: side columns, logits per depth, their steps and spread, hidden summaries.

    Returns (float64 [n, f], names). Side columns keep their names (so `id_*` columns are
    LightGBM categoricals); ground-truth columns are never included.
    """

    cols: list[np.ndarray] = []
    names: list[str] = []
    for name in side_feature_names(list(trace.features), owner="predictability bound"):
        col = np.asarray(trace.features[name])
        if not (np.issubdtype(col.dtype, np.number) or col.dtype == bool):
            raise TraceError(f"predictability bound: side column {name!r} is not numeric (dtype {col.dtype})")
        cols.append(col.astype(np.float64)[:, None])
        names.append(name)
    z = trace.logits.astype(np.float64)
    cols += [z, np.diff(z, axis=1), z.std(axis=1, keepdims=True)]
    names += [f"logit_{t}" for t in range(trace.n_depths)]
    names += [f"step_{t}" for t in range(1, trace.n_depths)]
    names += ["logit_spread"]
    if use_hidden and trace.hidden is not None:
        h = trace.hidden.astype(np.float64)
        cols.append(h.reshape(trace.n_samples, -1))
        names += [f"hidden_{t}_{j}" for t in range(h.shape[1]) for j in range(h.shape[2])]
    return np.concatenate(cols, axis=1), names


def fold_ids(n: int, folds: int, seed: int) -> np.ndarray:
    """Fold (0..folds-1) of each row: a seeded permutation cut into near-equal parts."""
    out = np.empty(n, dtype=np.int64)
    out[np.random.default_rng(seed).permutation(n)] = np.arange(n) % folds
    return out


def predictability_bound(
    trace: DepthTrace,
    folds: int = 5,
    seed: int = 0,
    target: str = "bce",
    use_hidden: bool = True,
    n_estimators: int = 200,
    num_leaves: int = 15,
    learning_rate: float = 0.05,
    min_child_samples: int = 50,
    threads: int = 1,
    progress: bool = False,
) -> PredictabilityBound:
    """Cross-fit the per-depth gain model and score the depths it chooses (see the module docstring)."""

    if target not in TARGETS:
        raise ConfigError(f"predictability bound: target must be one of {TARGETS}, got {target!r}")
    if folds < 2:
        raise ConfigError(f"predictability bound: folds must be >= 2, got {folds}")
    if trace.n_depths < 2:
        raise TraceError("predictability bound: the trace has a single depth; there is nothing to choose")
    if trace.n_samples < 10 * folds:
        raise TraceError(f"predictability bound: {trace.n_samples} samples are too few for {folds} folds")
    x, names = label_free_features(trace, use_hidden)
    fold = fold_ids(trace.n_samples, folds, seed)
    bce_gains = gain_targets(trace).over_depth0 if target == "bce" else None
    utility = np.zeros(trace.logits.shape)
    for k in tqdm(range(folds), desc="predictability folds", disable=not progress, leave=False):
        fit_rows = np.flatnonzero(fold != k)
        held = np.flatnonzero(fold == k)
        gains = bce_gains[fit_rows] if bce_gains is not None else rank_gains(trace.subset(fit_rows))
        model = LGBMGainModel(n_estimators=n_estimators, num_leaves=num_leaves, learning_rate=learning_rate,
                              min_child_samples=min_child_samples, seed=seed + 1000 * k, threads=threads)
        model.fit(x[fit_rows], gains, names)
        utility[held] = model.predict(x[held])[0]
    depths = np.argmax(utility, axis=1).astype(np.int64)  # first maximum: ties to the shallowest
    chosen = trace.logits_at(depths)
    ref = reference_depth(trace)
    ref_logits = trace.logits[:, ref].astype(np.float64)
    cost = CostModel.from_trace(trace)
    return PredictabilityBound(
        depths=depths,
        auc=auc(trace.labels, chosen),
        logloss=logloss_from_logits(trace.labels, chosen),
        reference_depth=ref,
        reference_auc=auc(trace.labels, ref_logits),
        reference_logloss=logloss_from_logits(trace.labels, ref_logits),
        oracle_headroom=candidate_headroom(trace.labels, trace.logits.astype(np.float64)),
        mean_cost=float(cost.incremental(trace.max_depth)),
        folds=folds,
        seed=seed,
        target=target,
        feature_names=names,
    )
