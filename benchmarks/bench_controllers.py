"""Speed of oracle analysis and controller evaluation on a 1M-sample, 8-depth trace.

Targets: one controller at one knob evaluates in under 1 s; a 50-point knob sweep in under
30 s. Also times calibration, the headroom table, the budgeted oracle curve and a paired
bootstrap (1000 resamples on 100k rows). Times are medians of a few repetitions.

    python benchmarks/bench_controllers.py [--n 1000000] [--depths 8] [--repeats 3]

Writes `benchmarks/results/bench_controllers.json` atomically.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from adaptive_loop.harness import evaluate, paired_bootstrap_auc_diff, sweep
from adaptive_loop.io import write_json
from adaptive_loop.metrics import sigmoid
from adaptive_loop.trace import DepthTrace, TraceMeta
from controllers import make_controller
from oracle import budgeted_oracle_curve, headroom_table

RESULTS = Path(__file__).resolve().parent / "results" / "bench_controllers.json"


def synthetic_trace(n: int, n_depths: int, seed: int = 0) -> DepthTrace:
    """Logits that converge to a true logit at a per-sample needed depth, some overthinking."""
    rng = np.random.default_rng(seed)
    k = n_depths - 1
    needed = rng.integers(0, n_depths, n)
    u = rng.normal(-0.8, 1.6, n).astype(np.float32)
    labels = (rng.random(n) < sigmoid(u)).astype(np.float32)
    prior = rng.normal(-0.8, 0.3, n).astype(np.float32)
    t = np.arange(n_depths, dtype=np.float32)[None, :]
    progress = np.minimum(1.0, (t + 1) / (needed[:, None] + 1.0)).astype(np.float32)
    walk = np.cumsum(rng.normal(0.0, 0.12, (n, n_depths)).astype(np.float32), axis=1)
    drift = np.maximum(t - needed[:, None], 0) * ((rng.random(n) < 0.3) * rng.normal(0, 0.4, n))[:, None]
    logits = prior[:, None] + progress * (u - prior)[:, None] + (1 - progress) * walk + drift.astype(np.float32)
    meta = TraceMeta(flops_entry=2.0e6, flops_loop=1.5e6, flops_exit=0.3e6, max_depth=k, train_loops=3,
                     dataset="bench", split="test")
    return DepthTrace(ids=np.arange(n), labels=labels, logits=logits, meta=meta,
                      groups=rng.integers(0, n // 50, n))


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--depths", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    results: dict[str, Any] = {
        "n_samples": args.n, "n_depths": args.depths, "repeats": args.repeats,
        "python": platform.python_version(), "numpy": np.__version__, "cpu_count": os.cpu_count(),
    }
    t0 = time.perf_counter()
    trace = synthetic_trace(args.n, args.depths)
    results["generate_trace_s"] = time.perf_counter() - t0
    print(f"trace {args.n} x {args.depths} generated in {results['generate_trace_s']:.2f} s")

    results["headroom_table_s"], table = timed(lambda: headroom_table(trace), 1)
    results["budgeted_oracle_curve_11pts_s"], _ = timed(lambda: budgeted_oracle_curve(trace, n_points=11), 1)
    print(f"headroom table {results['headroom_table_s']:.2f} s (gap {table.gap:.4f}); "
          f"budgeted oracle curve (11 budgets, 3 methods) {results['budgeted_oracle_curve_11pts_s']:.2f} s")

    budget = float(table.fixed[0].flops + 0.4 * (table.fixed[-1].flops - table.fixed[0].flops))
    controllers = {
        "fixed": {"depth": 3},
        "confidence": {"threshold": 0.6},
        "confidence_per_depth": {"threshold": 0.6, "per_depth": True},
        "stability": {"delta": 0.02},
        "stability_kl": {"delta": 0.002, "criterion": "kl", "patience": 2},
    }
    per_controller: dict[str, Any] = {}
    for label, params in controllers.items():
        name = label.split("_")[0]
        c = make_controller(name, **params).fit(trace)
        row: dict[str, Any] = {}
        start = time.perf_counter()
        evaluate(c, trace, with_gauc=False)
        row["first_evaluate_s"] = time.perf_counter() - start  # includes computing the score matrix
        row["evaluate_s"], _ = timed(lambda: evaluate(c, trace, with_gauc=False), args.repeats)
        row["evaluate_with_gauc_s"], _ = timed(lambda: evaluate(c, trace), args.repeats)
        row["sweep_50_s"], _ = timed(lambda: sweep(c, trace, n_points=50), 1)
        row["calibrate_s"], _ = timed(lambda: c.calibrate(trace, budget), 1)
        per_controller[label] = row
        print(f"{label:<22} first evaluate {row['first_evaluate_s']:.3f} s | evaluate {row['evaluate_s']:.3f} s "
              f"(+gAUC {row['evaluate_with_gauc_s']:.3f} s) | 50-pt sweep {row['sweep_50_s']:.2f} s | "
              f"calibrate {row['calibrate_s']:.2f} s")
    results["controllers"] = per_controller

    rng = np.random.default_rng(1)
    m = 100_000
    y = (rng.random(m) < 0.3).astype(float)
    a, b = y + rng.normal(size=m), 0.8 * y + rng.normal(size=m)
    results["bootstrap_1000x100k_s"], _ = timed(lambda: paired_bootstrap_auc_diff(y, a, b, 1000, seed=0), 1)
    print(f"paired bootstrap 1000 resamples x 100k rows {results['bootstrap_1000x100k_s']:.2f} s")

    results["targets"] = {
        "evaluate_under_1s": all(r["evaluate_s"] < 1.0 for r in per_controller.values()),
        "sweep_50_under_30s": all(r["sweep_50_s"] < 30.0 for r in per_controller.values()),
    }
    write_json(args.out, results)
    print(f"targets {results['targets']}; wrote {args.out}")


if __name__ == "__main__":
    main()
