"""`adaptive-loop controllers list|evaluate`.

    adaptive-loop controllers list
    adaptive-loop controllers evaluate --trace TEST.parquet --controller confidence \\
        [--param criterion=entropy ...] (--budget FLOPS | --budget-depth 1.5) \\
        [--calibration-trace VALID.parquet] --out DIR

`evaluate` fits the controller and calibrates its knob on the calibration trace (the
validation split; without it, on --trace itself, which the report flags), then reports on
--trace: AUC, logloss, gAUC, cost percentiles, depth histogram, headroom captured against
the fixed-depth frontier at the same cost, a paired bootstrap CI of the AUC difference to
the random-mixture frontier, and an AUC-vs-FLOPs plot with the knob sweep, the fixed-depth
frontier and the budgeted oracle. `--budget-depth 1.5` means the cost of a fixed-depth
prediction at depth 1.5 (Entry + 1.5 Loop + one Exit). Files are written atomically:
`DIR/controller_report.json` and `DIR/auc_vs_flops.png`.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path
from typing import Any

from adaptive_loop.config_loading import parse_scalar
from adaptive_loop.errors import ConfigError

# The harness and the controllers (scikit-learn, matplotlib) are imported by the handlers, not
# here: every subcommand's parser is built at start-up, and `adaptive-loop train` should not pay
# for libraries it never calls (about 90 MB of resident memory).

REPORT_JSON = "controller_report.json"
PLOT_FILE = "auc_vs_flops.png"


def add_subcommand(subparsers: Any) -> None:
    """Register `controllers` (with `list` and `evaluate`) on an argparse subparsers object."""
    parser = subparsers.add_parser(
        "controllers", help="list depth controllers or evaluate one on a trace",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="controllers_command", required=True)
    lister = sub.add_parser("list", help="list available controllers and their parameters")
    lister.set_defaults(func=run)
    ev = sub.add_parser("evaluate", help="calibrate a controller to a budget and evaluate it")
    ev.add_argument("--trace", required=True, type=Path, help="trace to report on (test split)")
    ev.add_argument("--controller", required=True, help="controller name (see `controllers list`)")
    ev.add_argument("--param", action="append", default=[], metavar="K=V", help="constructor parameter; repeatable")
    budget = ev.add_mutually_exclusive_group()
    budget.add_argument("--budget", type=float, help="mean cost target in FLOPs/sample")
    budget.add_argument("--budget-depth", type=float, help="mean cost target as a fixed depth (may be fractional)")
    ev.add_argument("--calibration-trace", type=Path, help="trace to fit and calibrate on (validation split)")
    ev.add_argument("--out", required=True, type=Path, help="output directory")
    ev.add_argument("--curve-points", type=int, default=25, help="knob values on the plotted sweep")
    ev.add_argument("--bootstrap", type=int, default=200, help="paired bootstrap resamples (0 to skip)")
    ev.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and the random-mixture frontier")
    ev.set_defaults(func=run)


def parse_params(items: list[str]) -> dict[str, Any]:
    """`["k=v", ...]` to a dict, with ints, floats, booleans and None recognised."""
    params: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--param expects key=value, got {item!r}")
        params[key.strip()] = parse_scalar(raw.strip())
    return params


def run(args: argparse.Namespace) -> int:
    """Dispatch `controllers list` / `controllers evaluate`; returns the exit code."""
    if args.controllers_command == "list":
        return _list()
    return _evaluate(args)


def _list() -> int:
    import inspect

    from controllers.registry import available_controllers, controller_class

    for name in available_controllers():
        cls = controller_class(name)
        sig = inspect.signature(cls.__init__)
        params = ", ".join(f"{p.name}={p.default!r}" for p in sig.parameters.values() if p.name != "self")
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        print(f"{name:<12} knob={cls.budget_param:<10} {params}\n{'':<12} {doc}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from adaptive_loop.cost import CostModel
    from adaptive_loop.harness.bootstrap import controller_vs_frontier_ci
    from adaptive_loop.harness.controller_report import evaluate
    from adaptive_loop.harness.curves import fixed_frontier, headroom_captured, sweep
    from adaptive_loop.harness.plots import plot_auc_vs_flops
    from adaptive_loop.io import write_json
    from adaptive_loop.trace import check_same_model, load_trace
    from controllers.registry import make_controller
    from oracle.budgeted import budgeted_oracle_curve
    from oracle.headroom import headroom_table

    if args.curve_points < 2:
        raise ConfigError(f"--curve-points must be >= 2, got {args.curve_points}")
    if args.bootstrap < 0:
        raise ConfigError(f"--bootstrap must be >= 0, got {args.bootstrap}")
    test = load_trace(args.trace)
    calib = load_trace(args.calibration_trace) if args.calibration_trace else test
    check_same_model(test.meta, calib.meta, f"--trace {args.trace}", f"--calibration-trace {args.calibration_trace}")
    controller = make_controller(args.controller, **parse_params(args.param))
    controller.fit(calib)

    budget = args.budget
    if args.budget_depth is not None:
        budget = float(CostModel.from_trace(calib).fixed_depth(args.budget_depth))
    if budget is not None:
        controller.calibrate(calib, budget)

    decision = controller.decide(test)
    report = evaluate(controller, test, decision)
    table = headroom_table(test)
    frontier = fixed_frontier(test)
    captured = headroom_captured(report.auc, report.mean_cost, test, table.oracle.auc, frontier, seed=args.seed)
    ci = None
    if args.bootstrap > 0:
        ci = controller_vs_frontier_ci(decision, test, frontier, n_resamples=args.bootstrap, seed=args.seed)
    curve = sweep(controller, test, n_points=args.curve_points)
    oracle_curve = budgeted_oracle_curve(test, n_points=max(args.curve_points, 11))

    out = Path(args.out)
    plot_auc_vs_flops(
        out / PLOT_FILE, [curve], frontier, oracle_curve,
        points=[(f"{report.controller} at {report.knob_name}={report.knob:.4g}", report.mean_cost, report.auc)],
        title=f"{report.controller} on {test.meta.dataset or args.trace.stem}/{test.meta.split or 'trace'}",
    )
    payload = {
        "trace": str(args.trace),
        "calibration_trace": str(args.calibration_trace) if args.calibration_trace else None,
        "calibrated_on_test_trace": args.calibration_trace is None and budget is not None,
        "budget": budget,
        "calibration": None if budget is None else asdict(controller.calibration_),
        "report": report.to_dict(),
        "headroom_captured": captured.to_dict(),
        "bootstrap_vs_mixture_frontier": None if ci is None else ci.to_dict(),
        "fixed_frontier": frontier.to_dict(),
        "oracle": {"auc": table.oracle.auc, "best_fixed_depth": table.best_fixed.depth, "best_fixed_auc": table.best_fixed.auc},
        "sweep": curve.to_dict(),
        "budgeted_oracle": oracle_curve.to_dict(),
        "files": {"plot": PLOT_FILE},
    }
    write_json(out / REPORT_JSON, payload)
    print(report.to_markdown(), end="")
    line = f"headroom captured {captured.captured:+.3f} (vs interpolated frontier), {captured.captured_mixture:+.3f} (vs random mixture)"
    if ci is not None:
        line += f"; AUC - mixture frontier {ci.estimate:+.5f} [{ci.low:+.5f}, {ci.high:+.5f}] ({ci.level:.0%})"
    print(line)
    print(f"wrote {out / REPORT_JSON} and {out / PLOT_FILE}")
    return 0
