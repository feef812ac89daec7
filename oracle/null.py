"""Exchangeable nulls: the same oracle over predictions that differ in no depth at all.

The oracle keeps, per sample, the candidate with the lowest loss against the label: the
highest for a click, the lowest for a non-click. Over K+1 candidates that differ only by
noise it still gains AUC. A *null* is a set of such candidates, built so that nothing about
depth distinguishes them; its oracle headroom is what label-aware selection gains from
noise alone. `oracle.excess` compares it with the depth oracle on the same rows.

Every null is a list of *draws*, each a candidate matrix [n, m]; its headroom is the mean
over draws of `AUC(oracle over the m columns) - AUC(best column)`, the same definition as
the depth oracle's headroom (`oracle.headroom`).

Three nulls
-----------
- **seeds** (`exchangeable_null` on `logits_at_depth(trace, seed_traces, depth)`): models of
  one config trained with different seeds, all read at one depth (by default the depth
  trace's best fixed depth): their differences are initialisation and data-order noise.
- **mc-dropout** (the same, on MC-dropout passes of one model at one depth): dropout noise
  of the model that wrote the depth trace. The passes are written by
  `adaptive_loop.null_traces` (it runs the model; this package never imports torch).
- **parametric** (`parametric_null`): no extra model. Each sample keeps its centre (its mean
  logit over depths) and gets a deviation vector drawn independently of its label with the
  size and shape of the observed between-depth deviations. See `parametric_null` for why the
  deviations are pooled per quantile of the centre and resampled whole, not drawn per sample.

The seeds and MC-dropout nulls keep their own spread (how far seeds or dropout passes
disagree); `spread_rms` reports it beside the depths' spread. The parametric null is matched
to the depths' spread by construction, so its headroom answers a different question: how
much headroom *any* between-depth spread of this size gives the oracle, whatever its cause.

Number of candidates
--------------------
The oracle's noise gain grows with the number of candidates (the expected maximum of m
draws grows with m), so a null is only comparable with the depth oracle at the same m.
`exchangeable_null` uses m = min(S, K+1) candidates: with more sources than depths it
averages over random m-subsets of them, with fewer the depth side is averaged over
m-subsets of the depths (`depth_candidate_draws`), so both oracles choose among m.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from itertools import combinations
from math import comb
from typing import Any, Sequence

import numpy as np

from adaptive_loop.depth_targets import oracle_depths
from adaptive_loop.errors import ConfigError, TraceError
from adaptive_loop.metrics import auc
from adaptive_loop.trace import DepthTrace, TraceMeta, align_ids

NOISE_CHOICES = ("resample", "gaussian", "per-sample")
NULL_NAMES = ("parametric", "seeds", "mc-dropout")  # the nulls a headroom decomposition compares the oracle with
MIN_BIN_ROWS = 50  # rows per quantile bin at least, so a bin's deviations are a real pool


@dataclass
class NullCandidates:
    """Draws of candidate predictions that differ in no depth.

    Attributes:
        name: "parametric", "seeds", "mc-dropout", or a caller's label.
        draws: candidate matrices, each float64 [n, m] (rows aligned with the depth trace).
        n_sources: how many distinct predictions the draws were taken from (K+1 for the
            parametric null, the number of seed models or dropout passes otherwise).
        method: one line saying how the draws were made.
        depth: the depth the candidates were read at (None for the parametric null).
        spread_rms: root mean square over samples of the between-candidate standard
            deviation of the source predictions (ddof=1), in logits.
    """

    name: str
    draws: list[np.ndarray]
    n_sources: int
    method: str
    depth: int | None = None
    spread_rms: float = float("nan")
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_candidates(self) -> int:
        return int(self.draws[0].shape[1])

    @property
    def n_draws(self) -> int:
        return len(self.draws)

    def describe(self) -> dict[str, Any]:
        """Everything but the draws, JSON-ready."""
        out = {k: v for k, v in asdict(self).items() if k != "draws"}
        out["n_candidates"] = self.n_candidates
        out["n_draws"] = self.n_draws
        return out


# --------------------------------------------------------------------------- the oracle on any candidate set
def candidate_trace(template: DepthTrace, logits: np.ndarray) -> DepthTrace:
    """`template`'s rows (ids, labels, groups, side columns, FLOPs) with other candidate logits [n, m].

    The candidates stand in for depths 0..m-1, so every oracle function (`oracle_depths`,
    `budgeted_oracle_curve`, ...) runs on them unchanged. With m = K+1 the costs of the
    template's depths apply column by column.
    """
    z = np.asarray(logits)
    if z.ndim != 2 or z.shape[0] != template.n_samples:
        raise TraceError(f"candidate logits must be [{template.n_samples}, m], got shape {z.shape}")
    meta = TraceMeta(**{**asdict(template.meta), "max_depth": int(z.shape[1]) - 1})
    return DepthTrace(ids=template.ids, labels=template.labels, logits=z, meta=meta, groups=template.groups,
                      features=dict(template.features))


def oracle_choice(labels: np.ndarray, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(chosen column per sample, the chosen logit) of the label-aware oracle over `candidates` [n, m].

    Same rule as `adaptive_loop.depth_targets.oracle_depths`: lowest BCE, ties to the first column.
    """
    z = np.asarray(candidates, dtype=np.float64)
    meta = TraceMeta(flops_entry=0.0, flops_loop=0.0, flops_exit=0.0, max_depth=z.shape[1] - 1, train_loops=0)
    view = DepthTrace(ids=np.arange(z.shape[0]), labels=labels, logits=z, meta=meta)
    chosen = oracle_depths(view)
    return chosen, z[np.arange(z.shape[0]), chosen]


def column_aucs(labels: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """AUC of every column of `candidates` [n, m]."""
    return np.array([auc(labels, candidates[:, j]) for j in range(candidates.shape[1])])


def best_column(labels: np.ndarray, candidates: np.ndarray) -> int:
    """Highest-AUC column, ties to the first (as `HeadroomTable.best_fixed`)."""
    return int(np.argmax(column_aucs(labels, candidates)))


def candidate_headroom(labels: np.ndarray, candidates: np.ndarray) -> float:
    """AUC(oracle over the columns) - AUC(best column): the headroom definition of `oracle.headroom`."""
    _, chosen = oracle_choice(labels, candidates)
    return auc(labels, chosen) - float(column_aucs(labels, candidates).max())


def spread_rms(candidates: np.ndarray) -> float:
    """Root mean square over samples of the between-column standard deviation (ddof=1)."""
    z = np.asarray(candidates, dtype=np.float64)
    if z.shape[1] < 2 or z.shape[0] == 0:
        return float("nan")
    return float(np.sqrt(np.mean(np.var(z, axis=1, ddof=1))))


# --------------------------------------------------------------------------- parametric null
def quantile_bins(values: np.ndarray, n_bins: int, min_rows: int = MIN_BIN_ROWS) -> np.ndarray:
    """Bin index (0..B-1) of each value by its quantile; B = min(n_bins, n // min_rows), at least 1."""
    v = np.asarray(values, dtype=np.float64)
    b = max(1, min(int(n_bins), v.size // max(1, min_rows)))
    if b == 1:
        return np.zeros(v.size, dtype=np.int64)
    inner = np.quantile(v, np.linspace(0.0, 1.0, b + 1)[1:-1])
    return np.searchsorted(inner, v, side="right").astype(np.int64)


def within_bin_donors(bins: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random permutation of the rows that maps every row to a row of the same bin."""
    stable = np.argsort(bins, kind="stable")
    shuffled = np.lexsort((rng.random(bins.size), bins))
    donor = np.empty(bins.size, dtype=np.int64)
    donor[stable] = shuffled
    return donor


def parametric_null(
    trace: DepthTrace,
    repeats: int = 20,
    n_bins: int = 20,
    noise: str = "resample",
    seed: int = 0,
) -> NullCandidates:
    """K+1 candidates per sample: its centre plus label-independent deviations of the observed size.

    Each sample keeps its centre c_i (mean logit over depths 0..K) and gets a new deviation
    vector in place of its own d_i = z_i - c_i. Under the null "the depths are exchangeable
    noisy copies of one prediction" (c_i, d_i) is a sufficient description and d_i says
    nothing about the label beyond c_i, so the candidates have the same distribution as the
    real depths and the same oracle headroom in expectation; `repeats` draws are averaged.

    `noise` chooses the deviation vectors:

    - "resample" (default): the deviation vector of another sample from the same quantile
      bin of the centre (a within-bin permutation of whole vectors). Pooled per quantile, it
      still carries each real vector's size, its shape over depths (a drift is a drift,
      jitter is jitter) and the heavy tails, and it needs no variance estimate.
    - "gaussian": Gaussian vectors with the bin's pooled (K+1)x(K+1) second-moment matrix:
      the right covariance across depths, but every sample of a bin gets the bin's spread.
    - "per-sample": i.i.d. Gaussian noise with the sample's own between-depth standard
      deviation s_i (ddof=1), the quick check of the issue that asked for this null.

    Why pooled per quantile and not per sample. The per-sample spread s_i is estimated from
    the same K+1 values the oracle exploits. The real oracle's gain on a sample grows with its
    realised spread; a fresh draw with standard deviation s_i decouples the two, and since
    E[s_i] = c4(K+1) * sigma_i < sigma_i (c4 = 0.92 for 4 values, 0.96 for 7) the per-sample
    null falls short of the real oracle even when the depths are pure exchangeable noise: it
    overstates the excess by a few per cent of the headroom (more for small K), and it
    ignores the correlation of neighbouring depths. A pooled Gaussian fixes the correlation
    but hands every sample its bin's root-mean-square spread; with heteroscedastic noise that
    overstates the null (the oracle's AUC gain is not linear in a sample's spread).
    Resampling whole vectors within a quantile bin keeps each vector intact and only breaks
    its link to the label. Measured on constructed traces whose 6 depths are exchangeable
    noisy copies (3,000 samples, 10 replications, excess as a share of the oracle headroom,
    truth 0): resample -0.3% (homoscedastic) and +1.8% (per-sample noise scales spread by
    a factor ~2), per-sample +4.7% and +5.6% (its 95% interval missed 0 in 6 of 10), pooled
    Gaussian +0.5% and -22%. `tests/test_oracle_null_excess.py` checks the ordering.
    Bins are quantiles of the centre, not of one depth's logit: the centre is what the
    deviations are measured from, and the AUC gain per unit of spread depends on where a
    sample sits in the ranking; at least 50 rows per bin. (Centring on one depth instead,
    e.g. the best fixed one, counts that depth's own noise twice and falls short on
    exchangeable noise.)

    What this null cannot do: the oracle chooses with the label, so the *direction* of a
    sample's deviations (towards or away from the truth) does not change what it gains, only
    their size and shape do. A null matched to the observed spread therefore reproduces
    nearly all of the oracle headroom even where depth genuinely helps; its excess is
    evidence only of label-dependent spread, and the absence of excess is not evidence
    against depth. The seeds and MC-dropout nulls (their own spread) and the predictability
    bound (`adaptive_loop.harness.predictability`) answer that question.
    """
    if noise not in NOISE_CHOICES:
        raise ConfigError(f"parametric null: noise must be one of {NOISE_CHOICES}, got {noise!r}")
    if repeats < 1:
        raise ConfigError(f"parametric null: repeats must be >= 1, got {repeats}")
    if trace.n_depths < 2:
        raise TraceError("parametric null: the trace has a single depth; there is nothing to choose among")
    z = trace.logits.astype(np.float64)
    centre = z.mean(axis=1)
    dev = z - centre[:, None]
    bins = quantile_bins(centre, n_bins)
    rng = np.random.default_rng(seed)
    draws: list[np.ndarray] = []
    factors = _pooled_factors(dev, bins) if noise == "gaussian" else None
    sd = np.std(z, axis=1, ddof=1) if noise == "per-sample" else None
    for _ in range(repeats):
        if noise == "resample":
            new = dev[within_bin_donors(bins, rng)]
        elif noise == "gaussian":
            assert factors is not None
            g = rng.standard_normal(z.shape)
            new = np.empty_like(z)
            for b, factor in factors.items():
                rows = bins == b
                new[rows] = g[rows] @ factor.T
        else:
            assert sd is not None
            g = rng.standard_normal(z.shape)
            new = (g - g.mean(axis=1, keepdims=True)) * sd[:, None]  # E[sample variance] = s_i^2
        draws.append(centre[:, None] + new)
    n_used = int(bins.max()) + 1
    return NullCandidates(
        name="parametric",
        draws=draws,
        n_sources=trace.n_depths,
        method=f"centre (mean logit over depths) + deviation vectors, noise={noise}, {n_used} quantile bins of the centre, {repeats} draws",
        spread_rms=spread_rms(z),
        extra={"noise": noise, "n_bins": n_used, "repeats": repeats, "seed": seed},
    )


def _pooled_factors(dev: np.ndarray, bins: np.ndarray) -> dict[int, np.ndarray]:
    """Per bin, F with F F^T = the bin's second-moment matrix of deviation vectors."""
    factors = {}
    for b in np.unique(bins):
        d = dev[bins == b]
        second = d.T @ d / max(d.shape[0], 1)
        w, v = np.linalg.eigh(second)
        factors[int(b)] = v * np.sqrt(np.clip(w, 0.0, None))[None, :]
    return factors


# --------------------------------------------------------------------------- seeds and MC-dropout nulls
def logits_at_depth(
    trace: DepthTrace, others: Sequence[DepthTrace], depth: int, names: Sequence[str] | None = None,
) -> np.ndarray:
    """Each of `others` read at `depth`, rows aligned with `trace` by id: float64 [n, S].

    Raises `TraceError` naming the trace when one lacks the depth, lacks some of `trace`'s
    ids (another split or dataset) or disagrees on a label.
    """
    labels = names if names is not None else [f"null trace {k}" for k in range(len(others))]
    cols = []
    for name, other in zip(labels, others):
        if not 0 <= depth <= other.max_depth:
            raise TraceError(f"{name}: has depths 0..{other.max_depth}, cannot read depth {depth}")
        pos = align_ids(other, trace.ids, source=str(name))
        if not np.array_equal(other.labels[pos], trace.labels):
            raise TraceError(f"{name}: labels differ from the depth trace's for the same ids; it is not the same split")
        cols.append(other.logits[pos, depth].astype(np.float64))
    if not cols:
        raise ConfigError("no null traces given")
    return np.stack(cols, axis=1)


def column_subsets(n_columns: int, size: int, repeats: int, seed: int) -> list[np.ndarray]:
    """All `size`-subsets of the columns when there are at most `repeats`, else `repeats` distinct random ones.

    Sorted index arrays; one subset (all columns) when size == n_columns.
    """
    if not 1 <= size <= n_columns:
        raise ConfigError(f"cannot take {size} of {n_columns} columns")
    total = comb(n_columns, size)
    if total <= repeats:
        return [np.asarray(c, dtype=np.int64) for c in combinations(range(n_columns), size)]
    rng = np.random.default_rng(seed)
    seen: set[tuple[int, ...]] = set()
    out = []
    while len(out) < repeats:
        pick = tuple(sorted(rng.choice(n_columns, size=size, replace=False).tolist()))
        if pick not in seen:
            seen.add(pick)
            out.append(np.asarray(pick, dtype=np.int64))
    return out


def exchangeable_null(
    name: str, logits: np.ndarray, n_candidates: int, repeats: int = 20, seed: int = 0, depth: int | None = None,
) -> NullCandidates:
    """A null from S exchangeable predictions per sample (seeds or MC-dropout passes) [n, S].

    The oracle chooses among m = min(S, n_candidates) of them: all of them when S <= K+1,
    else the mean over (up to `repeats`) random m-subsets. Raw scale: the predictions keep
    their own spread.
    """
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2 or z.shape[1] < 2:
        raise ConfigError(f"{name} null needs at least 2 predictions per sample, got shape {z.shape}")
    m = min(z.shape[1], int(n_candidates))
    subsets = column_subsets(z.shape[1], m, repeats, seed)
    return NullCandidates(
        name=name,
        draws=[z[:, s] for s in subsets],
        n_sources=int(z.shape[1]),
        method=f"{z.shape[1]} predictions read at depth {depth}; oracle over {m} of them ({len(subsets)} subset(s))",
        depth=depth,
        spread_rms=spread_rms(z),
    )


def depth_candidate_draws(trace: DepthTrace, n_candidates: int, repeats: int = 20, seed: int = 0) -> list[np.ndarray]:
    """The depth trace's own candidates at m columns: all depths, or m-subsets of them when m < K+1."""
    z = trace.logits.astype(np.float64)
    m = min(int(n_candidates), trace.n_depths)
    return [z[:, s] for s in column_subsets(trace.n_depths, m, repeats, seed)]


def reference_depth(trace: DepthTrace) -> int:
    """The best fixed depth of the trace (highest AUC, ties to the shallowest)."""
    return best_column(trace.labels, trace.logits.astype(np.float64))

