"""Seeds -> mean and standard deviation per variant, per depth.

The standard deviation is the sample standard deviation over seeds (ddof = 1); with a
single seed it is None (unknown), never 0, so a one-seed run cannot look noise-free.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

import numpy as np

from adaptive_loop.reproduce.cells import CellResult
from adaptive_loop.reproduce.variants import Variant


@dataclass(frozen=True)
class Stat:
    """Mean and spread of one number over seeds."""

    mean: float
    std: float | None
    n: int
    values: tuple[float, ...]

    @classmethod
    def of(cls, values: Iterable[float]) -> "Stat":
        """Mean and sample std (ddof=1) of `values`; std is None for one value, mean NaN for none."""
        vals = tuple(float(v) for v in values)
        if not vals:
            return cls(math.nan, None, 0, ())
        std = float(np.std(vals, ddof=1)) if len(vals) > 1 else None
        return cls(float(np.mean(vals)), std, len(vals), vals)

    @property
    def spread(self) -> float:
        """The std, or 0 when unknown (one seed): use only where the caller says so."""
        return 0.0 if self.std is None else self.std

    def format(self, digits: int = 4) -> str:
        """'mean ± std' with `digits` decimals, 'mean' alone for one seed, '-' when empty."""
        if self.n == 0 or math.isnan(self.mean):
            return "-"
        text = f"{self.mean:.{digits}f}"
        return text if self.std is None else f"{text} ± {self.std:.{digits}f}"

    def to_dict(self) -> dict[str, Any]:
        """Mean, std, n and the raw values as a JSON-ready dict."""
        return {"mean": self.mean, "std": self.std, "n": self.n, "values": list(self.values)}


@dataclass
class HeadroomStats:
    """Oracle headroom over depths 0..`max_depth` across seeds."""

    max_depth: int
    best_fixed_auc: Stat
    oracle_auc: Stat
    gap: Stat
    best_fixed_depths: list[int]
    oracle_mean_depth: Stat

    def to_dict(self) -> dict[str, Any]:
        """The headroom statistics as a JSON-ready dict."""
        return {
            "max_depth": self.max_depth,
            "best_fixed_auc": self.best_fixed_auc.to_dict(),
            "oracle_auc": self.oracle_auc.to_dict(),
            "gap": self.gap.to_dict(),
            "best_fixed_depths": self.best_fixed_depths,
            "oracle_mean_depth": self.oracle_mean_depth.to_dict(),
        }


@dataclass
class VariantSummary:
    """One variant over its finished seeds: per-depth test/valid metrics, cost, size and time."""

    variant: str
    label: str
    train_loops: int
    seeds: list[int]
    test_auc: list[Stat]
    test_logloss: list[Stat]
    valid_auc: list[Stat]
    flops_per_sample: list[float]
    dense_parameters: int
    embedding_parameters: int
    train_flops_per_sample: float
    seconds_per_epoch: Stat
    samples_per_second: Stat
    epochs_run: Stat
    best_epoch: Stat
    train_rows: int
    headroom: dict[str, HeadroomStats] = field(default_factory=dict)

    @property
    def max_depth(self) -> int:
        return len(self.test_auc) - 1

    def auc(self, depth: int) -> Stat:
        """Test AUC over seeds at loop depth `depth`."""
        return self.test_auc[depth]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; per-depth metrics are regrouped under `per_depth`, one entry per depth."""
        out = {k: v for k, v in asdict(self).items() if k not in ("test_auc", "test_logloss", "valid_auc", "seconds_per_epoch",
                                                                   "samples_per_second", "epochs_run", "best_epoch", "headroom")}
        out["per_depth"] = [
            {"depth": d, "test_auc": self.test_auc[d].to_dict(), "test_logloss": self.test_logloss[d].to_dict(),
             "valid_auc": self.valid_auc[d].to_dict(), "flops_per_sample": self.flops_per_sample[d]}
            for d in range(len(self.test_auc))
        ]
        for key in ("seconds_per_epoch", "samples_per_second", "epochs_run", "best_epoch"):
            out[key] = getattr(self, key).to_dict()
        out["headroom"] = {k: v.to_dict() for k, v in self.headroom.items()}
        return out


def summarize_variant(variant: Variant, cells: list[CellResult]) -> VariantSummary:
    """Aggregate a variant's finished cells (at least one)."""
    if not cells:
        raise ValueError(f"no finished cell for {variant.name}")
    depths = min(len(c.test) for c in cells)
    first = cells[0]

    def per_depth(split: str, metric: str) -> list[Stat]:
        return [Stat.of(getattr(c, split)[d][metric] for c in cells) for d in range(depths)]

    headroom = {}
    for name in first.headroom:
        rows = [c.headroom[name] for c in cells if name in c.headroom]
        headroom[name] = HeadroomStats(
            max_depth=rows[0].max_depth,
            best_fixed_auc=Stat.of(r.best_fixed_auc for r in rows),
            oracle_auc=Stat.of(r.oracle_auc for r in rows),
            gap=Stat.of(r.gap for r in rows),
            best_fixed_depths=[r.best_fixed_depth for r in rows],
            oracle_mean_depth=Stat.of(r.oracle_mean_depth for r in rows),
        )
    return VariantSummary(
        variant=variant.name,
        label=variant.label,
        train_loops=variant.train_loops,
        seeds=[c.seed for c in cells],
        test_auc=per_depth("test", "auc"),
        test_logloss=per_depth("test", "logloss"),
        valid_auc=per_depth("valid", "auc"),
        flops_per_sample=[float(first.test[d]["flops_per_sample"]) for d in range(depths)],
        dense_parameters=first.dense_parameters,
        embedding_parameters=first.embedding_parameters,
        train_flops_per_sample=first.train_flops_per_sample,
        seconds_per_epoch=Stat.of(c.seconds_per_epoch for c in cells),
        samples_per_second=Stat.of(c.samples_per_second for c in cells),
        epochs_run=Stat.of(c.epochs_run for c in cells),
        best_epoch=Stat.of(c.best_epoch + 1 for c in cells),
        train_rows=first.train_rows,
        headroom=headroom,
    )
