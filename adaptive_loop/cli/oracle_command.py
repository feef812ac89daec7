"""`adaptive-loop oracle`: headroom table, oracle labels and report for one trace.

    adaptive-loop oracle --trace T.parquet --out DIR [--cost-lambda 0.01] [--budget-points 11]
        [--null parametric] [--seed-traces S1.parquet S2.parquet ...] [--mc-dropout-traces P0.parquet ...]
        [--bootstrap 1000] [--predictability]

Prints the headroom table and writes, atomically:
- `DIR/oracle_labels.parquet`: id, oracle_depth (and oracle_depth_cost_aware), per-depth
  gains over depth 0 (`gain0_t`) and over the previous depth (`gain_prev_t`);
- `DIR/oracle_report.json` and `DIR/oracle_report.md`: headroom table, budgeted oracle
  curve and, on synthetic traces, agreement with `needed_depth`;
- with a null or `--predictability`: `DIR/headroom_decomposition.{json,md,png}`: how much
  of the headroom the same oracle gains over predictions that differ in no depth (nulls),
  the excess with a paired bootstrap interval, and the share a depth predicted without the
  label reaches (see `adaptive_loop.harness.decomposition`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pandas as pd

from adaptive_loop.depth_targets import gains_from_bce, oracle_depths, per_sample_bce
from adaptive_loop.errors import ConfigError
from adaptive_loop.io import write_json, write_text, write_with
from adaptive_loop.trace import load_trace
from oracle.agreement import needed_depth_agreement
from oracle.budgeted import budgeted_oracle_curve
from oracle.headroom import headroom_table
from oracle.null import NOISE_CHOICES, NULL_NAMES
from oracle.tables import frame_to_markdown

LABELS_FILE = "oracle_labels.parquet"
REPORT_JSON = "oracle_report.json"
REPORT_MD = "oracle_report.md"


def add_subcommand(subparsers: Any) -> None:
    """Register the `oracle` subcommand on an argparse subparsers object."""
    parser = subparsers.add_parser(
        "oracle",
        help="oracle depths, headroom table and per-sample gain labels of a depth trace",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--trace", required=True, type=Path, help="depth trace parquet file")
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument(
        "--cost-lambda", type=float, default=None,
        help="also compute the cost-aware oracle: nats of loss one Loop step must buy",
    )
    parser.add_argument("--budget-points", type=int, default=11, help="budgets on the budgeted-oracle curve")
    nulls = parser.add_argument_group("headroom decomposition (written to headroom_decomposition.{json,md,png})")
    nulls.add_argument("--null", action="append", choices=NULL_NAMES,
                       help="null to compare the oracle with (repeatable); seeds and mc-dropout are implied by their traces")
    nulls.add_argument("--seed-traces", nargs="+", type=Path, default=[], metavar="TRACE",
                       help="traces of the same split from models of the same config trained with other seeds")
    nulls.add_argument("--mc-dropout-traces", nargs="+", type=Path, default=[], metavar="TRACE",
                       help="one trace per MC-dropout pass of this trace's model (adaptive_loop.null_traces)")
    nulls.add_argument("--null-depth", type=int, default=None,
                       help="depth the seed / MC-dropout traces are read at (default: the best fixed depth)")
    nulls.add_argument("--null-repeats", type=int, default=10, help="draws of the parametric null and of random subsets")
    nulls.add_argument("--null-noise", choices=NOISE_CHOICES, default="resample",
                       help="parametric null deviations: resample (default), gaussian or per-sample")
    nulls.add_argument("--bootstrap", type=int, default=1000, help="paired bootstrap resamples (0: no intervals)")
    nulls.add_argument("--predictability", action="store_true",
                       help="also the cross-fitted label-free depth choice (LightGBM on per-depth gains)")
    nulls.add_argument("--folds", type=int, default=5, help="cross-fitting folds of --predictability")
    nulls.add_argument("--seed", type=int, default=0, help="seed of the nulls, bootstrap and folds")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the oracle analysis; returns the process exit code."""
    if args.cost_lambda is not None and not args.cost_lambda >= 0:
        raise ConfigError(f"--cost-lambda must be >= 0, got {args.cost_lambda}")
    if args.budget_points < 2:
        raise ConfigError(f"--budget-points must be >= 2, got {args.budget_points}")
    trace = load_trace(args.trace)
    out = Path(args.out)
    bce = per_sample_bce(trace)
    table = headroom_table(trace, cost_lambda=args.cost_lambda)
    print(table.to_text(), end="")

    depths = oracle_depths(trace, bce=bce)
    labels = pd.DataFrame({"id": trace.ids, "oracle_depth": depths})
    if args.cost_lambda:
        labels["oracle_depth_cost_aware"] = oracle_depths(trace, args.cost_lambda, bce=bce)
    labels = pd.concat([labels, gains_from_bce(bce).to_frame()], axis=1)
    write_with(out / LABELS_FILE, lambda tmp: labels.to_parquet(tmp, index=False))

    curve = budgeted_oracle_curve(trace, n_points=args.budget_points)
    agreement = needed_depth_agreement(trace, depths)
    report = {
        "trace": str(args.trace),
        "headroom": table.to_dict(),
        "budgeted_oracle": curve.to_dict(),
        "needed_depth_agreement": None if agreement is None else agreement.to_dict(),
        "files": {"labels": LABELS_FILE, "markdown": REPORT_MD},
    }
    write_json(out / REPORT_JSON, report)
    parts = [f"# Oracle report: {args.trace}\n", table.to_markdown(), curve.to_markdown()]
    if agreement is not None:
        parts.append(
            f"### Agreement with needed_depth\n\nexact {agreement.exact:.4f}, within one "
            f"{agreement.within_one:.4f}, Spearman {agreement.spearman:.4f}\n\n" + frame_to_markdown(agreement.to_frame())
        )
    write_text(out / REPORT_MD, "\n".join(parts))
    print(f"oracle gap {table.gap:+.4f} AUC; wrote {out / LABELS_FILE}, {out / REPORT_JSON}, {out / REPORT_MD}")
    if args.null or args.seed_traces or args.mc_dropout_traces or args.predictability:
        _run_decomposition(args, trace, out)
    return 0


def _run_decomposition(args: argparse.Namespace, trace: Any, out: Path) -> None:
    """The headroom decomposition of `adaptive_loop.harness.decomposition`, written next to the oracle report."""
    # imported here: the decomposition loads the harness (scikit-learn, LightGBM, matplotlib)
    from adaptive_loop.harness.decomposition import decompose_headroom
    from adaptive_loop.harness.decomposition_report import write_decomposition

    asked = set(args.null or [])
    if "seeds" in asked and not args.seed_traces:
        raise ConfigError("--null seeds needs --seed-traces (traces of the same split from other seeds)")
    if "mc-dropout" in asked and not args.mc_dropout_traces:
        raise ConfigError("--null mc-dropout needs --mc-dropout-traces (write them with adaptive_loop.null_traces)")
    if args.bootstrap < 0 or args.null_repeats < 1 or args.folds < 2:
        raise ConfigError("--bootstrap must be >= 0, --null-repeats >= 1 and --folds >= 2")
    result = decompose_headroom(
        trace,
        parametric="parametric" in asked or not (args.seed_traces or args.mc_dropout_traces or asked),
        seed_traces=[load_trace(p) for p in args.seed_traces], seed_names=[str(p) for p in args.seed_traces],
        mc_traces=[load_trace(p) for p in args.mc_dropout_traces], mc_names=[str(p) for p in args.mc_dropout_traces],
        null_depth=args.null_depth, repeats=args.null_repeats, noise=args.null_noise, n_bootstrap=args.bootstrap,
        predictability=args.predictability, folds=args.folds, budget_points=args.budget_points, seed=args.seed,
        progress=True,
    )
    paths = write_decomposition(result, out, extra={"trace": str(args.trace)})
    print(result.to_markdown(), end="")
    print(f"wrote {paths['json']}, {paths['markdown']}, {paths['figure']}")
