"""AUC per ground-truth regime at every inference depth: does depth help exactly the rows that need it?

On data whose rows carry a known regime (the synthetic dataset's `needed_depth`), the
question behind adaptive depth is not "does the model get better with depth" on average
but "do the rows of regime k improve up to depth k and no further". `regime_auc` answers
it from per-depth logits (as `adaptive_loop.training.per_depth.predict_depths` returns them),
and, when the true click probabilities are known, puts each regime's Bayes AUC (the AUC
of the true probabilities, the ceiling any model can reach) beside it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from adaptive_loop.errors import ConfigError
from adaptive_loop.metrics import auc


@dataclass(frozen=True)
class RegimeAUC:
    """AUC of one regime's rows at each depth 0..K.

    Attributes:
        regime: the regime value (e.g. needed depth), or None for all rows together.
        n_rows: rows in the regime.
        positive_rate: share of positive labels among them.
        depth_auc: AUC at depth 0, 1, ..., K (NaN where the rows hold a single class).
        bayes_auc: AUC of the true probabilities on these rows (None when they are unknown).
    """

    regime: int | None
    n_rows: int
    positive_rate: float
    depth_auc: list[float]
    bayes_auc: float | None

    @property
    def best_depth(self) -> int:
        """The shallowest depth with the highest AUC."""
        values = np.nan_to_num(np.asarray(self.depth_auc, dtype=np.float64), nan=-np.inf)
        return int(np.argmax(values))

    def to_dict(self) -> dict[str, object]:
        """Plain dict for JSON."""
        return asdict(self)


def _safe_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    if labels.size == 0 or labels.min() == labels.max():
        return float("nan")
    return float(auc(labels, scores))


def regime_auc(
    labels: np.ndarray,
    logits: np.ndarray,
    regimes: np.ndarray,
    true_prob: np.ndarray | None = None,
) -> list[RegimeAUC]:
    """Per-regime AUC at each depth column of `logits` [n, K+1]; the last entry covers all rows.

    Raises `ConfigError` if the arrays disagree in length.
    """
    labels = np.asarray(labels).reshape(-1)
    logits = np.asarray(logits)
    regimes = np.asarray(regimes).reshape(-1)
    if logits.ndim != 2 or logits.shape[0] != labels.size or regimes.size != labels.size:
        raise ConfigError(
            f"regime_auc: labels ({labels.size}), logits {tuple(logits.shape)} and regimes ({regimes.size}) "
            "must describe the same rows"
        )
    if true_prob is not None:
        true_prob = np.asarray(true_prob).reshape(-1)
        if true_prob.size != labels.size:
            raise ConfigError(f"regime_auc: true_prob has {true_prob.size} rows, labels {labels.size}")
    out = []
    groups: list[tuple[int | None, np.ndarray]] = [(int(r), regimes == r) for r in np.unique(regimes)]
    groups.append((None, np.ones(labels.size, dtype=bool)))
    for regime, rows in groups:
        y = labels[rows]
        out.append(
            RegimeAUC(
                regime=regime,
                n_rows=int(rows.sum()),
                positive_rate=float(y.mean()) if y.size else float("nan"),
                depth_auc=[_safe_auc(y, logits[rows, d]) for d in range(logits.shape[1])],
                bayes_auc=None if true_prob is None else _safe_auc(y, true_prob[rows]),
            )
        )
    return out


def format_regime_table(rows: list[RegimeAUC], label: str = "needed_depth") -> str:
    """A fixed-width text table: one line per regime, Bayes AUC then the AUC at each depth."""
    n_depths = max(len(r.depth_auc) for r in rows)
    header = f"{label:>12} {'rows':>7} {'bayes':>6} " + " ".join(f"{'d' + str(d):>6}" for d in range(n_depths)) + "  best"
    lines = [header]
    for r in rows:
        name = "all" if r.regime is None else str(r.regime)
        bayes = "   n/a" if r.bayes_auc is None else f"{r.bayes_auc:6.3f}"
        cells = " ".join(f"{a:6.3f}" for a in r.depth_auc)
        lines.append(f"{name:>12} {r.n_rows:>7} {bayes} {cells}  d{r.best_depth}")
    return "\n".join(lines)
