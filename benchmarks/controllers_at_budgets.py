"""Rule-based (or any registered) controllers on real depth traces, at the costs of fixed depths.

Fits and calibrates every controller on the validation trace and reports on the test trace
(protocol in `adaptive_loop/harness/comparison.py`): AUC, mean cost, headroom captured and a paired
bootstrap interval against the fixed-depth mixture at equal cost, plus one AUC-vs-FLOPs
figure per dataset with every controller's knob sweep, the fixed-depth frontier and the
budgeted oracle.

    python benchmarks/controllers_at_budgets.py --dataset frappe_x1 \
        --valid runs/frappe/trace_valid.parquet --test runs/frappe/trace_test.parquet \
        --excess-from benchmarks/results/headroom_decomposition.json

`--excess-from` adds each controller's share of the dataset's excess headroom (the oracle
headroom minus the null's, `benchmarks/headroom_decomposition.py`, measured on the same test
trace) beside its share of the oracle headroom.

Writes `benchmarks/results/controllers_<dataset>.{json,md,png}` (atomically).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from adaptive_loop.harness.comparison import ControllerSpec, compare_controllers
from adaptive_loop.harness.decomposition_report import read_excess
from adaptive_loop.harness.plots import plot_auc_vs_flops
from adaptive_loop.io import write_json, write_text
from adaptive_loop.trace import load_trace

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_CONTROLLERS = (
    "confidence:criterion=margin",
    "confidence:criterion=entropy,per_depth=true",
    "stability:criterion=delta_p,patience=1",
    "stability:criterion=delta_p,patience=2",
    "stability:criterion=kl,patience=1",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, help="name used in the output file names")
    parser.add_argument("--valid", required=True, type=Path, help="validation trace (fit + calibration)")
    parser.add_argument("--test", required=True, type=Path, help="test trace (reporting)")
    parser.add_argument("--controller", action="append", help="name[:key=value,...] (repeatable; default: the rule-based set)")
    parser.add_argument("--budget-depth", type=float, action="append", help="budget as a fixed depth's cost (default 1 and 2)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS, help="output folder (default benchmarks/results)")
    parser.add_argument("--excess-from", type=Path, help="headroom_decomposition.json holding this dataset's excess headroom")
    args = parser.parse_args()

    excess = None
    if args.excess_from is not None:
        excess = read_excess(args.excess_from).get(args.dataset)
        if excess is None:
            raise SystemExit(f"{args.excess_from}: no finite excess headroom for dataset {args.dataset!r}")

    specs = [ControllerSpec.parse(s) for s in (args.controller or DEFAULT_CONTROLLERS)]
    start = time.perf_counter()
    comparison = compare_controllers(
        load_trace(args.valid), load_trace(args.test), specs, budget_depths=args.budget_depth or (1.0, 2.0),
        n_bootstrap=args.bootstrap, seed=args.seed, dataset=args.dataset, excess=excess,
    )
    stem = args.out / f"controllers_{args.dataset}"
    payload = comparison.to_dict()
    payload["command"] = (
        f"python benchmarks/controllers_at_budgets.py --dataset {args.dataset} --valid {args.valid} --test {args.test}"
        + (f" --excess-from {args.excess_from}" if args.excess_from is not None else "")
    )
    payload["seconds"] = time.perf_counter() - start
    write_json(stem.with_suffix(".json"), payload)
    text = comparison.headroom.to_markdown() + "\n" + comparison.to_markdown()
    write_text(stem.with_suffix(".md"), text)
    plot_auc_vs_flops(
        stem.with_suffix(".png"), comparison.curves, comparison.frontier, comparison.oracle_curve,
        title=f"Controllers on {args.dataset} (test; knobs calibrated on valid)",
    )
    print(text)
    print(f"wrote {stem}.json, .md and .png in {payload['seconds']:.1f} s")


if __name__ == "__main__":
    main()
