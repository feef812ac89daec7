"""`adaptive-loop score`: score data with a trained run and a depth controller.

    adaptive-loop score --model runs/frappe --controller runs/frappe/confidence_ctrl \\
        --data new_rows.parquet --out scores.parquet
    adaptive-loop score --model runs/frappe --controller confidence --param criterion=entropy \\
        --calibration-trace runs/frappe/trace_valid.parquet --budget-depth 1 \\
        --data test --out scores.csv [--save-controller runs/frappe/confidence_ctrl]

`--controller` is a saved controller folder (`controller.json`, as written by
`--save-controller` or `controllers.persistence.save_controller`) or a controller name
fitted on `--calibration-trace` and calibrated there to `--budget` FLOPs/sample or to
`--budget-depth` (the cost of a fixed depth, may be fractional). `--data` is a parquet
file/folder/glob, a CSV/TSV file, or a split of the run's own dataset (train, valid, test).
Rows are encoded with the run's encoder (unseen categories -> OOV), scored in batches of
`--batch-size` with the adaptive engine and written atomically to `--out` (.parquet or
.csv): id, label (when the data has labels), prob, logit, depth, exits, controller_flops,
flops. A summary (rows/s, mean depth and FLOPs, depth histogram, AUC when labelled) is
printed and written beside the output as `<out>.summary.json`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

SUMMARY_SUFFIX = ".summary.json"


def add_subcommand(subparsers: Any) -> None:
    """Register `score` on an argparse subparsers object."""
    p = subparsers.add_parser(
        "score", help="score data with a trained run and a depth controller (adaptive inference engine)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", "--run", dest="model", required=True, help="run directory written by `adaptive-loop train`")
    p.add_argument("--controller", required=True, help="saved controller folder, or a controller name (see `controllers list`)")
    p.add_argument("--param", action="append", default=[], metavar="K=V", help="constructor parameter of a named controller; repeatable")
    p.add_argument("--calibration-trace", type=Path, help="trace to fit a named controller on (validation split of the same run)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--budget", type=float, help="calibrate a named controller to this mean cost in FLOPs/sample")
    budget.add_argument("--budget-depth", type=float, help="calibrate a named controller to the cost of this fixed depth")
    p.add_argument("--data", required=True, help="parquet file/folder/glob, CSV/TSV file, or split name (train, valid, test)")
    p.add_argument("--out", required=True, type=Path, help="output file (.parquet or .csv)")
    p.add_argument("--batch-size", type=int, default=4096, help="rows scored at a time (default 4096)")
    p.add_argument("--share-sequence", action="store_true",
                   help="compute the sequence side once per distinct behaviour sequence in a batch (same results)")
    p.add_argument("--extra-column", action="append", default=[], metavar="NAME",
                   help="raw column to carry into the controller's side features (repeatable)")
    p.add_argument("--checkpoint", default="best", help="'best', 'last' or a checkpoint file (default best)")
    p.add_argument("--save-controller", type=Path, help="also save the fitted controller to this folder")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """`adaptive-loop score`: resolve the controller, score `--data` with the run and write `--out`.

    Also writes the summary JSON beside the output (`<out>.summary.json`) and, with
    `--save-controller`, the fitted controller. Returns 0.
    """
    from adaptive_loop.cli.controllers_command import parse_params
    from adaptive_loop.engine.controller_source import check_trace_matches_model, resolve_controller
    from adaptive_loop.engine.dataset import iter_scoring_chunks, score_stream
    from adaptive_loop.engine.scorer import AdaptiveScorer
    from adaptive_loop.errors import ConfigError
    from adaptive_loop.io import write_json
    from adaptive_loop.runs import load_run

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    controller, origin = resolve_controller(
        args.controller, parse_params(args.param), args.calibration_trace, args.budget, args.budget_depth
    )
    run_info = load_run(args.model, checkpoint=args.checkpoint)
    check_trace_matches_model(run_info.model, origin.trace_flops)
    if args.save_controller is not None:
        from controllers.persistence import save_controller

        save_controller(controller, args.save_controller)
    scorer = AdaptiveScorer(run_info.model, controller, share_sequence=args.share_sequence)
    chunks, total = iter_scoring_chunks(run_info, args.data, args.batch_size, tuple(args.extra_column))
    summary = score_stream(scorer, chunks, args.out, total_rows=total, progress=not args.no_progress, device=run_info.device)
    summary.extra.update(
        run=str(run_info.run_dir), data=str(args.data), batch_size=args.batch_size, controller=controller.name,
        knob={controller.budget_param: controller.knob}, controller_origin=origin.kind, controller_source=origin.source,
        budget=origin.budget,
    )
    summary_path = args.out.with_name(args.out.name + SUMMARY_SUFFIX)
    write_json(summary_path, summary.to_dict())
    print(f"controller {controller.name} ({controller.budget_param}={controller.knob:.6g}, {origin.kind} from {origin.source})")
    print(summary.to_text())
    print(f"summary in {summary_path}")
    return 0
