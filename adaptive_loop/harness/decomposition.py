"""Headroom decomposition: oracle headroom, what noise alone gives the oracle, what is left, what is learnable.

One call, `decompose_headroom(trace, ...)`, puts together:

- the oracle headroom of the depth trace (`oracle.headroom`);
- the exchangeable nulls asked for (`oracle.null`: parametric, seeds, MC dropout) and, for
  each, the excess headroom with a paired bootstrap interval (`oracle.excess`);
- optionally the predictability bound (`adaptive_loop.harness.predictability`), its gain scored on the
  same bootstrap resamples;
- the budgeted oracle curve of the depths and, for the parametric null, of its first draw
  (its candidates stand in for the depths, so the same costs apply).

The headline excess (`primary`) is taken against the nulls built from measured noise
(seeds, MC dropout), the smallest excess among them (the most conservative); only when
neither is given, against the parametric null. The parametric null is matched to the
observed between-depth spread, so it reproduces nearly all of the oracle headroom whatever
causes that spread (see `oracle.null.parametric_null`); it says whether the headroom is
explained by the size of the spread, not whether the spread is depth.

`adaptive_loop.harness.decomposition_report.write_decomposition` writes `<stem>.json`, `<stem>.md` and
`<stem>.png` atomically.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from adaptive_loop.errors import ConfigError
from adaptive_loop.trace import DepthTrace, check_same_model
from oracle.budgeted import BudgetedOracleCurve, budgeted_oracle_curve
from oracle.excess import Interval, NullComparison, ScoreBank, compare_with_nulls
from oracle.headroom import HeadroomTable, headroom_table
from oracle.null import (  # NULL_NAMES re-exported: the nulls this decomposition compares with
    NULL_NAMES,
    NullCandidates,
    candidate_trace,
    exchangeable_null,
    logits_at_depth,
    parametric_null,
    reference_depth,
)
from adaptive_loop.harness.predictability import PredictabilityBound, predictability_bound

MEASURED_NULLS = ("seeds", "mc-dropout")


def json_key(name: str) -> str:
    """A null's key in JSON results ("mc-dropout" -> "mc_dropout")."""
    return name.replace("-", "_")


@dataclass
class HeadroomDecomposition:
    """Everything `decompose_headroom` found on one trace."""

    table: HeadroomTable
    comparisons: list[NullComparison]
    primary: str | None
    oracle_interval: Interval | None = None  # the oracle headroom with its bootstrap interval
    predictability: PredictabilityBound | None = None
    predictable: Interval | None = None  # AUC gain of the predicted depths over the best fixed depth
    curve: BudgetedOracleCurve | None = None
    null_curve: BudgetedOracleCurve | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def oracle_headroom(self) -> float:
        return self.table.gap

    def comparison(self, name: str) -> NullComparison | None:
        """The comparison with the null called `name`, if it was computed."""
        return next((c for c in self.comparisons if c.null == name), None)

    @property
    def primary_comparison(self) -> NullComparison | None:
        return None if self.primary is None else self.comparison(self.primary)

    @property
    def excess(self) -> Interval | None:
        """Excess headroom over the primary null, with its interval."""
        c = self.primary_comparison
        return None if c is None else c.excess

    @property
    def predictable_share(self) -> float:
        """Predictable gain as a share of the oracle headroom."""
        return self.predictability.share if self.predictability is not None else float("nan")

    @property
    def predictable_share_of_excess(self) -> float:
        """Predictable gain as a share of the headline excess (NaN when the excess is not positive)."""
        e = self.excess
        if self.predictability is None or e is None or not e.estimate > 0:
            return float("nan")
        return self.predictability.gain / e.estimate

    def summary(self) -> dict[str, Any]:
        """The issue's per-dataset record (without `best_controller`), plus what it rests on."""
        e = self.excess
        return {
            "oracle_headroom": self.oracle_headroom,
            "oracle_headroom_ci": None if self.oracle_interval is None else [self.oracle_interval.low, self.oracle_interval.high],
            "null_headroom": {json_key(n): (c.null_headroom.estimate if (c := self.comparison(n)) else None) for n in NULL_NAMES},
            "excess": None if e is None else e.estimate,
            "excess_ci": None if e is None else [e.low, e.high],
            "excess_null": self.primary,
            "excess_by_null": {json_key(c.null): {"excess": c.excess.estimate, "excess_ci": [c.excess.low, c.excess.high],
                                                  "n_candidates": c.n_candidates, "spread_ratio": c.spread_ratio}
                               for c in self.comparisons},
            "predictable_share": self.predictable_share if self.predictability is not None else None,
            "predictable_gain": None if self.predictability is None else self.predictability.gain,
            "predictable_gain_ci": None if self.predictable is None else [self.predictable.low, self.predictable.high],
            "predictable_share_of_excess": self.predictable_share_of_excess if self.predictability is not None else None,
            "reference_depth": self.table.best_fixed.depth,
            "n_samples": self.table.n_samples,
        }

    def to_dict(self) -> dict[str, Any]:
        """Summary, the full headroom table, every null comparison, the bound and the curves."""
        return {
            **self.summary(),
            "dataset": self.table.dataset,
            "split": self.table.split,
            "headroom": self.table.to_dict(),
            "nulls": [c.to_dict() for c in self.comparisons],
            "predictability": None if self.predictability is None else self.predictability.to_dict(),
            "budgeted_oracle": None if self.curve is None else self.curve.to_dict(),
            "budgeted_oracle_parametric_null": None if self.null_curve is None else self.null_curve.to_dict(),
            "settings": self.settings,
        }

    def to_markdown(self, title: str | None = None) -> str:
        """A titled report: headroom, one row per null, the predictability bound, and how to read it."""
        t = self.table
        best = t.best_fixed
        lines = [
            f"### {title or 'Headroom decomposition'}: {t.dataset or 'trace'}{'/' + t.split if t.split else ''} ({t.n_samples:,} samples)",
            "",
            f"Best fixed depth {best.depth} (AUC {best.auc:.5f}); oracle over depths 0..{len(t.fixed) - 1} "
            f"AUC {t.oracle.auc:.5f}; oracle headroom **{self.oracle_headroom:+.5f}**"
            + (f" [{self.oracle_interval.low:+.5f}, {self.oracle_interval.high:+.5f}]."
               if self.oracle_interval is not None and np.isfinite(self.oracle_interval.low) else "."),
            "",
        ]
        if self.comparisons:
            level = self.settings.get("level", 0.95)
            lines += [
                f"| null | candidates | sources | spread vs depths | null headroom | depth headroom (same candidates) | excess [{level:.0%} CI] | P(excess <= 0) | MC s.e. |",
                "|---|---|---|---|---|---|---|---|---|",
            ]
            for c in self.comparisons:
                mark = " (headline)" if c.null == self.primary else ""
                lines.append(
                    f"| {c.null}{mark} | {c.n_candidates} | {c.n_sources} | {c.spread_ratio:.2f}x | {c.null_headroom.estimate:+.5f} "
                    f"| {c.depth_headroom.estimate:+.5f} | {c.excess.estimate:+.5f} [{c.excess.low:+.5f}, {c.excess.high:+.5f}] "
                    f"| {c.excess.prob_not_positive:.3f} | {c.mc_se:.5f} |"
                )
            lines.append("")
        if self.predictability is not None:
            p = self.predictability
            ci = "" if self.predictable is None else f" [{self.predictable.low:+.5f}, {self.predictable.high:+.5f}]"
            lines.append(
                f"Predictability bound ({p.folds}-fold cross-fitted LightGBM on label-free inputs, target {p.target}): "
                f"AUC {p.auc:.5f}, gain over the best fixed depth {p.gain:+.5f}{ci}, "
                f"{p.share:.1%} of the oracle headroom"
                + (f", {self.predictable_share_of_excess:.1%} of the excess" if np.isfinite(self.predictable_share_of_excess) else "")
                + ". What a controller could learn at best, up to that model's power."
            )
            lines.append("")
        lines += [
            "Reading: *null headroom* is what the same oracle gains choosing among predictions that differ in no depth "
            "(seeds: models of one config with different seeds; mc-dropout: dropout passes of this model; parametric: "
            "each sample's mean logit plus deviation vectors of the observed size resampled within its logit quantile). "
            "*Spread vs depths* compares how far those predictions disagree with how far the depths do. The parametric "
            "null is matched to the depths' spread and so reproduces nearly all headroom whatever causes the spread; "
            "seeds and MC dropout measure the noise actually present. A negative excess means the depths give the "
            "oracle less than that noise does: no evidence of headroom that is depth, not harm.",
            "",
        ]
        return "\n".join(lines)


def decompose_headroom(
    trace: DepthTrace,
    *,
    parametric: bool = True,
    seed_traces: Sequence[DepthTrace] = (),
    seed_names: Sequence[str] | None = None,
    mc_traces: Sequence[DepthTrace] = (),
    mc_names: Sequence[str] | None = None,
    null_depth: int | None = None,
    repeats: int = 10,
    noise: str = "resample",
    n_bins: int = 20,
    n_bootstrap: int = 1000,
    level: float = 0.95,
    predictability: bool = False,
    folds: int = 5,
    predictability_target: str = "bce",
    predictability_options: Mapping[str, Any] | None = None,
    budget_points: int = 11,
    seed: int = 0,
    progress: bool = False,
) -> HeadroomDecomposition:
    """Oracle headroom, nulls, excess with intervals and (optionally) the predictability bound.

    Args:
        trace: the depth trace (test split, usually).
        parametric: build the parametric null (`oracle.null.parametric_null`).
        seed_traces: traces of the same split from models of the same config trained with
            other seeds (include the trace's own model to use every seed).
        mc_traces: traces of the same split, one per MC-dropout pass of the trace's model
            (`adaptive_loop.null_traces.mc_dropout_traces`).
        null_depth: depth the seed and MC-dropout traces are read at (default: the trace's
            best fixed depth).
        repeats: draws of random nulls (parametric draws, random subsets).
        n_bootstrap: paired bootstrap resamples (0: point estimates only).
        predictability_options: more keyword arguments of `predictability_bound`
            (`use_hidden`, `n_estimators`, ...).
        budget_points: budgets on the budgeted oracle curves (0: no curves).
    """
    if not (parametric or seed_traces or mc_traces or predictability):
        raise ConfigError("nothing to decompose: ask for at least one null or the predictability bound")
    table = headroom_table(trace)
    depth = reference_depth(trace) if null_depth is None else int(null_depth)
    if not 0 <= depth <= trace.max_depth:
        raise ConfigError(f"null depth {depth} is outside the trace's depths 0..{trace.max_depth}")
    nulls: list[NullCandidates] = []
    if parametric:
        nulls.append(parametric_null(trace, repeats=repeats, n_bins=n_bins, noise=noise, seed=seed))
    for name, traces, names in (("seeds", seed_traces, seed_names), ("mc-dropout", mc_traces, mc_names)):
        if not traces:
            continue
        labels = list(names) if names is not None else [f"{name} trace {k}" for k in range(len(traces))]
        for label, other in zip(labels, traces):
            check_same_model(other.meta, trace.meta, what=label, reference_name="the depth trace")
        z = logits_at_depth(trace, traces, depth, labels)
        nulls.append(exchangeable_null(name, z, trace.n_depths, repeats=repeats, seed=seed, depth=depth))
    bank = ScoreBank(trace.labels)
    bound = None
    pair = None
    if predictability:
        bound = predictability_bound(trace, folds=folds, seed=seed, target=predictability_target, progress=progress,
                                     **dict(predictability_options or {}))
        chosen = trace.logits[np.arange(trace.n_samples), bound.depths]
        pair = (bank.add("predictable", chosen), bank.add("predictable-reference", trace.logits[:, bound.reference_depth]))
    analysis = compare_with_nulls(trace, nulls, n_bootstrap=n_bootstrap, level=level, seed=seed,
                                  depth_repeats=repeats, bank=bank, progress=progress)
    comparisons, reps = analysis.comparisons, analysis.replicates
    predictable = None
    if pair is not None and bound is not None:
        predictable = analysis.interval(bound.gain, None if reps is None else reps[pair[0]] - reps[pair[1]])
    measured = [c for c in comparisons if c.null in MEASURED_NULLS]
    pool = measured or comparisons
    primary = min(pool, key=lambda c: c.excess.estimate).null if pool else None
    curve = null_curve = None
    if budget_points >= 2:
        curve = budgeted_oracle_curve(trace, n_points=budget_points)
        par = next((n for n in nulls if n.name == "parametric"), None)
        if par is not None:
            null_curve = budgeted_oracle_curve(candidate_trace(trace, par.draws[0]), n_points=budget_points)
    settings = {"null_depth": depth, "repeats": repeats, "noise": noise, "n_bins": n_bins, "n_bootstrap": n_bootstrap,
                "level": level, "folds": folds if predictability else None, "seed": seed,
                "nulls": [n.describe() for n in nulls]}
    return HeadroomDecomposition(table, comparisons, primary, analysis.oracle_headroom, bound, predictable, curve,
                                 null_curve, settings)

