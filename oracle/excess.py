"""Excess headroom: depth-oracle headroom minus null headroom, with a paired bootstrap interval.

    excess = [AUC(depth oracle) - AUC(best fixed depth)] - mean over draws [AUC(null oracle) - AUC(best null column)]

both at the same number of candidates m (see `oracle.null`). The oracle choice of every
sample (which depth, which null candidate) is computed once on all rows; each bootstrap
replicate resamples the rows once and recomputes every AUC in the formula on those same
rows (paired), so the interval is that of the difference, not of two separate headrooms.
A resample is drawn once as row multiplicities and shared by every score vector, each of
which was sorted once (`ScoreBank.replicate_aucs`).

Choices, and why:

- The best fixed column of each candidate set is chosen once on all rows and kept in every
  replicate. It is part of the definition of the headroom; re-choosing it per replicate
  would cost a column AUC per candidate per replicate and only adds the noise of picking
  among near-tied depths.
- Random nulls (parametric draws, random subsets) are drawn once and the *same* draws are
  scored in every replicate, averaged over the R draws inside it (common random numbers).
  The interval then reflects the sampling of rows, which is what a new test set would
  change; the Monte Carlo error of averaging R draws is reported separately as `mc_se`
  (standard deviation over draws / sqrt(R)), to be checked small against the interval's
  width. Redrawing the noise per replicate would instead add the variance of a *single*
  draw to every replicate, widening the interval for a quantity estimated from R draws.
- Percentile intervals (as `controllers.bootstrap`), seeded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Hashable, Sequence

import numpy as np
from tqdm.auto import tqdm

from adaptive_loop.errors import ConfigError
from adaptive_loop.metrics import auc, auc_from_counts
from adaptive_loop.trace import DepthTrace
from oracle.null import NullCandidates, best_column, depth_candidate_draws, oracle_choice, spread_rms


# --------------------------------------------------------------------------- paired bootstrap of many AUCs
class ScoreBank:
    """Distinct score vectors to be scored on the same bootstrap resamples, each stored once by key."""

    def __init__(self, labels: np.ndarray) -> None:
        self.labels = np.asarray(labels)
        self.keys: dict[Hashable, int] = {}
        self.vectors: list[np.ndarray] = []

    def add(self, key: Hashable, scores: np.ndarray) -> int:
        """Index of `scores` in the bank (added unless `key` is already there)."""
        if key not in self.keys:
            self.keys[key] = len(self.vectors)
            self.vectors.append(np.asarray(scores, dtype=np.float64))
        return self.keys[key]

    def full_aucs(self) -> np.ndarray:
        """AUC of every vector on all rows."""
        return np.array([auc(self.labels, v) for v in self.vectors])

    def replicate_aucs(
        self, n_resamples: int, seed: int = 0, chunk_elements: int = 2_000_000, progress: bool = False,
    ) -> np.ndarray:
        """AUC of every vector on each of `n_resamples` paired row resamples: [n_vectors, n_resamples].

        A resample is stored as row multiplicities (one `bincount` per resample, shared by
        every vector); each vector then costs a gather into its sorted order and a cumulative
        sum, with tied scores summed per tie run. Equals `SortedScores.auc_of_resamples`
        on the same rows (tests check it), several times faster for many vectors.
        """
        n = self.labels.size
        prepared = [_SortedForCounts.build(self.labels, v) for v in self.vectors]
        out = np.empty((len(self.vectors), n_resamples))
        rng = np.random.default_rng(seed)
        step = max(1, min(n_resamples, chunk_elements // max(n, 1)))
        starts = range(0, n_resamples, step)
        # float32 holds every count and half-count exactly while the total (n) stays below 2**22
        count_dtype = np.float32 if n < 2**22 else np.float64
        for start in tqdm(starts, desc="bootstrap", disable=not progress, leave=False):
            r = min(step, n_resamples - start)
            idx = rng.integers(0, n, size=(r, n), dtype=np.int32 if n < 2**31 else np.int64)
            counts = (idx + (np.arange(r) * n)[:, None]).ravel()
            mult = np.bincount(counts, minlength=r * n).reshape(r, n).astype(count_dtype)
            for j, p in enumerate(prepared):
                out[j, start : start + r] = p.auc(mult)
        return out


@dataclass(frozen=True)
class _SortedForCounts:
    """A score vector's ascending order, labels in that order and tie-run starts (None: no ties)."""

    order: np.ndarray
    positive: np.ndarray  # float32 1/0 label, in sorted order
    run_starts: np.ndarray | None

    @classmethod
    def build(cls, labels: np.ndarray, scores: np.ndarray) -> "_SortedForCounts":
        s = np.asarray(scores, dtype=np.float64)
        order = np.argsort(s, kind="stable")
        ss = s[order]
        new_run = np.r_[True, ss[1:] != ss[:-1]] if ss.size else np.zeros(0, bool)
        starts = np.flatnonzero(new_run)
        return cls(order, (np.asarray(labels)[order] > 0.5).astype(np.float32), None if starts.size == ss.size else starts)

    def auc(self, multiplicities: np.ndarray) -> np.ndarray:
        """Tie-averaged AUC for each row of row multiplicities [r, n] (rows in the original order)."""
        m = np.take(multiplicities, self.order, axis=1)
        pos = m * self.positive[None, :]
        neg = m - pos
        if self.run_starts is not None:
            pos = np.add.reduceat(pos, self.run_starts, axis=1)
            neg = np.add.reduceat(neg, self.run_starts, axis=1)
        return auc_from_counts(pos, neg)


@dataclass(frozen=True)
class HeadroomTerm:
    """A headroom as pairs of bank indices (oracle vector, reference vector), averaged over pairs."""

    pairs: tuple[tuple[int, int], ...]

    def value(self, aucs: np.ndarray) -> np.ndarray:
        """Mean over pairs of AUC(oracle) - AUC(reference); `aucs` [n_vectors] or [n_vectors, B]."""
        return np.mean([aucs[o] - aucs[r] for o, r in self.pairs], axis=0)

    def per_pair(self, aucs: np.ndarray) -> np.ndarray:
        """AUC(oracle) - AUC(reference) of each pair (full-sample `aucs`)."""
        return np.array([aucs[o] - aucs[r] for o, r in self.pairs])


def add_candidate_draws(bank: ScoreBank, key: str, draws: Sequence[np.ndarray]) -> HeadroomTerm:
    """Register the oracle choice and the best column of each draw; returns their headroom term."""
    pairs = []
    for k, z in enumerate(draws):
        _, chosen = oracle_choice(bank.labels, z)
        ref = best_column(bank.labels, z)
        pairs.append((bank.add((key, k, "oracle"), chosen), bank.add((key, k, "best", ref), z[:, ref])))
    return HeadroomTerm(tuple(pairs))


@dataclass(frozen=True)
class Interval:
    """Point estimate and percentile bootstrap interval of one quantity."""

    estimate: float
    low: float
    high: float
    std: float
    prob_not_positive: float

    @classmethod
    def from_replicates(cls, estimate: float, replicates: np.ndarray, level: float) -> "Interval":
        r = np.asarray(replicates, dtype=np.float64)
        r = r[np.isfinite(r)]
        if r.size == 0:
            nan = float("nan")
            return cls(float(estimate), nan, nan, nan, nan)
        tail = (1.0 - level) / 2.0
        low, high = np.quantile(r, [tail, 1.0 - tail])
        return cls(float(estimate), float(low), float(high), float(r.std(ddof=1)) if r.size > 1 else float("nan"),
                   float(np.mean(r <= 0)))

    @classmethod
    def point(cls, estimate: float) -> "Interval":
        nan = float("nan")
        return cls(float(estimate), nan, nan, nan, nan)

    def covers(self, value: float) -> bool:
        return self.low <= value <= self.high


# --------------------------------------------------------------------------- excess against one null
@dataclass(frozen=True)
class NullComparison:
    """One null against the depth oracle at the same number of candidates."""

    null: str
    n_candidates: int
    n_sources: int
    n_draws: int
    depth: int | None
    null_headroom: Interval  # mean over draws
    depth_headroom: Interval  # the depth oracle's headroom at n_candidates (= oracle headroom when m = K+1)
    excess: Interval  # depth_headroom - null_headroom, paired
    mc_se: float  # Monte Carlo standard error of the null headroom's mean over draws
    null_spread_rms: float
    depth_spread_rms: float
    method: str

    @property
    def spread_ratio(self) -> float:
        """RMS between-candidate spread of the null's sources over that of the depths."""
        return self.null_spread_rms / self.depth_spread_rms if self.depth_spread_rms > 0 else float("nan")

    @property
    def null_share(self) -> float:
        """Null headroom as a share of the depth headroom at the same number of candidates."""
        d = self.depth_headroom.estimate
        return self.null_headroom.estimate / d if d > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: point estimates with `_ci` intervals, the spread ratio and the null share."""
        out: dict[str, Any] = {"null": self.null, "n_candidates": self.n_candidates, "n_sources": self.n_sources,
                               "n_draws": self.n_draws, "depth": self.depth}
        for name in ("null_headroom", "depth_headroom", "excess"):
            value: Interval = getattr(self, name)
            out[name] = value.estimate
            out[f"{name}_ci"] = [value.low, value.high]
        out.update({
            "excess_std": self.excess.std, "excess_prob_not_positive": self.excess.prob_not_positive,
            "mc_se": self.mc_se, "null_spread_rms": self.null_spread_rms, "depth_spread_rms": self.depth_spread_rms,
            "spread_ratio": self.spread_ratio, "null_share": self.null_share, "method": self.method,
        })
        return out


@dataclass
class ExcessAnalysis:
    """The depth oracle's headroom and its comparison with each null, on shared bootstrap resamples.

    `bank` and `replicates` ([n_vectors, n_bootstrap], None without bootstrap) let a caller
    derive further intervals from the same resamples for vectors it added to the bank.
    """

    oracle_headroom: Interval
    comparisons: list[NullComparison]
    bank: ScoreBank
    replicates: np.ndarray | None
    level: float

    def interval(self, estimate: float, replicates: np.ndarray | None) -> Interval:
        """An `Interval` at this analysis' level (a point when there are no replicates)."""
        return Interval.point(estimate) if replicates is None else Interval.from_replicates(estimate, replicates, self.level)


def compare_with_nulls(
    trace: DepthTrace,
    nulls: Sequence[NullCandidates],
    n_bootstrap: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    depth_repeats: int = 20,
    bank: ScoreBank | None = None,
    progress: bool = False,
) -> ExcessAnalysis:
    """Excess headroom of the trace over each null, with paired bootstrap intervals.

    Vectors already in `bank` (e.g. a controller's scores) are resampled with the rest.
    """
    if not 0 < level < 1:
        raise ConfigError(f"level must lie in (0, 1), got {level}")
    if n_bootstrap < 0:
        raise ConfigError(f"bootstrap resamples must be >= 0, got {n_bootstrap}")
    bank = bank if bank is not None else ScoreBank(trace.labels)
    depth_terms: dict[int, HeadroomTerm] = {
        trace.n_depths: add_candidate_draws(bank, f"depths@{trace.n_depths}", [trace.logits.astype(np.float64)])
    }
    null_terms = []
    for j, null in enumerate(nulls):
        if null.draws[0].shape[0] != trace.n_samples:
            raise ConfigError(f"{null.name} null has {null.draws[0].shape[0]} rows, the trace {trace.n_samples}")
        m = null.n_candidates
        if m not in depth_terms:
            depth_terms[m] = add_candidate_draws(bank, f"depths@{m}", depth_candidate_draws(trace, m, depth_repeats, seed))
        null_terms.append(add_candidate_draws(bank, f"null{j}:{null.name}", null.draws))
    full = bank.full_aucs()
    reps = bank.replicate_aucs(n_bootstrap, seed, progress=progress) if n_bootstrap > 0 else None

    def interval(quantity: Callable[[np.ndarray], np.ndarray]) -> Interval:
        """`quantity` (a function of the AUC array) on all rows, with its interval over the replicates."""
        estimate = float(quantity(full))
        return Interval.point(estimate) if reps is None else Interval.from_replicates(estimate, quantity(reps), level)

    depth_spread = spread_rms(trace.logits.astype(np.float64))
    comparisons = []
    for null, term in zip(nulls, null_terms):
        depth_term = depth_terms[null.n_candidates]
        per_draw = term.per_pair(full)
        comparisons.append(NullComparison(
            null=null.name, n_candidates=null.n_candidates, n_sources=null.n_sources, n_draws=null.n_draws,
            depth=null.depth, null_headroom=interval(term.value), depth_headroom=interval(depth_term.value),
            excess=interval(lambda a, d=depth_term, t=term: d.value(a) - t.value(a)),
            mc_se=float(per_draw.std(ddof=1) / np.sqrt(per_draw.size)) if per_draw.size > 1 else 0.0,
            null_spread_rms=null.spread_rms, depth_spread_rms=depth_spread, method=null.method,
        ))
    return ExcessAnalysis(interval(depth_terms[trace.n_depths].value), comparisons, bank, reps, level)
