"""`adaptive-loop tune controller|model`: Optuna studies for controllers and for LoopCTR.

    adaptive-loop tune controller --trace VALID.parquet --controller act --budget-depth 1 \\
        --trials 30 --out runs/frappe/tune_act [--test-trace TEST.parquet] [--storage URL]
    adaptive-loop tune controller --trace VALID.parquet --controller lgbm_depth --multi-objective \\
        --trials 40 --out runs/frappe/tune_lgbm_pareto
    adaptive-loop tune model --config frappe_x1 --trials 12 --out runs/frappe/tune_model [--epochs 4] \\
        [--space recipe | --space SPACE.yaml]

`tune controller` splits the validation trace into a fit part and a tune part, searches the
controller's hyperparameters (single objective: AUC at the budget, the budget being a
constraint; `--multi-objective`: AUC and mean FLOPs with NSGA-II, a Pareto front), refits
the best setting on the whole validation trace, calibrates it and saves it in
`OUT/controller/`. With `--test-trace` the refitted controller is also reported on test.
`tune model` tunes LoopCTR's config keys with per-epoch pruning; each trial is a run folder
under `OUT/trials/`. The default space is L, width, learning rate and aux weight; `--space`
names a built-in space (`recipe`: regularisation, learning rate, batch size, widths, experts)
or a YAML file mapping dotted config keys to `{low, high, log, integer}` or `{choices}`.

Studies live in `--storage` (default `sqlite:///OUT/study.db`; any database URL such as
`postgresql://user@host/db`; or `journal:PATH` for a journal file shared by several
processes). Running the same command again resumes the study and keeps finished trials.
Writes `OUT/tune_report.json` (and `OUT/trials.csv`, `OUT/pareto.png`) atomically.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from adaptive_loop.errors import ConfigError
from adaptive_loop.io import write_json, write_with

REPORT = "tune_report.json"


def add_subcommand(subparsers: Any) -> None:
    """Register `tune` (with `controller` and `model`) on an argparse subparsers object."""
    parser = subparsers.add_parser(
        "tune", help="tune a controller's or LoopCTR's hyperparameters with Optuna",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="tune_command", required=True)

    c = sub.add_parser("controller", help="tune a depth controller on a validation trace")
    c.add_argument("--trace", required=True, type=Path, help="validation trace (fit + tune parts are drawn from it)")
    c.add_argument("--controller", required=True, help="controller name (see `controllers list`)")
    c.add_argument("--param", action="append", default=[], metavar="K=V", help="fixed constructor parameter; repeatable")
    budget = c.add_mutually_exclusive_group()
    budget.add_argument("--budget", type=float, help="mean cost constraint in FLOPs/sample")
    budget.add_argument("--budget-depth", type=float, help="mean cost constraint as a fixed depth (may be fractional)")
    c.add_argument("--multi-objective", action="store_true", help="NSGA-II on (AUC, mean FLOPs): a Pareto front")
    c.add_argument("--trials", type=int, default=20, help="finished trials wanted in the study (default 20)")
    c.add_argument("--tune-fraction", type=float, default=0.5, help="share of validation rows used to score trials (default 0.5)")
    c.add_argument("--test-trace", type=Path, help="also report the refitted controller on this trace")
    _study_options(c)
    c.set_defaults(func=run)

    m = sub.add_parser("model", help="tune LoopCTR's config keys (default: L, width, lr, aux weight) with pruning")
    m.add_argument("--config", required=True, help="run config: a file or a built-in name")
    m.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override (repeatable)")
    m.add_argument("--epochs", type=int, help="epochs per trial (default: the config's train.epochs)")
    m.add_argument("--trials", type=int, default=10, help="finished trials wanted in the study (default 10)")
    m.add_argument("--space", help="search space: a built-in name (recipe) or a YAML file (default: L, width, lr, aux weight)")
    _study_options(m)
    m.set_defaults(func=run)


def _study_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, type=Path, help="output folder (report, default study file, trial runs)")
    p.add_argument("--storage", help="Optuna storage: database URL or journal:PATH (default sqlite:///OUT/study.db)")
    p.add_argument("--study-name", help="study name (default derived from the task)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampler and of the fit/tune split")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    """`adaptive-loop tune controller|model`: run the chosen study and write its report; returns the exit status."""
    if args.tune_command == "controller":
        return _tune_controller(args)
    return _tune_model(args)


def _tune_controller(args: argparse.Namespace) -> int:
    from adaptive_loop.cli.controllers_command import parse_params
    from adaptive_loop.harness.controller_tuning import budget_at_depth, refit, tune_controller
    from adaptive_loop.trace import load_trace
    from controllers.persistence import save_controller

    if args.tune_fraction <= 0 or args.tune_fraction >= 1:
        raise ConfigError(f"--tune-fraction must lie in (0, 1), got {args.tune_fraction}")
    valid = load_trace(args.trace)
    budget = args.budget
    if args.budget_depth is not None:
        budget = budget_at_depth(valid, args.budget_depth)
    if budget is None and not args.multi_objective:
        raise ConfigError("give --budget or --budget-depth (single objective), or --multi-objective")
    base = parse_params(args.param)
    result = tune_controller(
        args.controller, valid, budget=None if args.multi_objective else budget, multi_objective=args.multi_objective,
        n_trials=args.trials, base_params=base, storage=args.storage, out_dir=str(args.out), study_name=args.study_name,
        seed=args.seed, tune_fraction=args.tune_fraction, show_progress=not args.no_progress,
    )
    refit_budget = budget if budget is not None else result.chosen_budget
    controller = refit(args.controller, {**base, **result.best_params}, valid, refit_budget)
    out = Path(args.out)
    save_controller(controller, out / "controller")
    payload: dict[str, Any] = {"trace": str(args.trace), "result": result.to_dict(), "refit_budget": refit_budget,
                               "saved_controller": str(out / "controller")}
    if args.test_trace:
        from adaptive_loop.harness.controller_report import evaluate

        test = load_trace(args.test_trace)
        payload["test"] = evaluate(controller, test).to_dict()
    _write_trials_csv(out / "trials.csv", result.trials)
    if result.pareto:
        _plot_pareto(out / "pareto.png", result, args.controller)
    write_json(out / REPORT, payload)
    if result.multi_objective:
        print(f"Pareto front of {len(result.pareto)} trial(s) out of {result.n_trials}:")
        for p in result.pareto:
            print(f"  trial {p['number']:>3}: AUC {p['auc']:.5f} at {p['mean_cost']:.6g} FLOPs/sample")
    else:
        print(f"best AUC on the tune split {result.best_value:.5f} at <= {budget:.6g} FLOPs/sample with {result.best_params}")
    if "test" in payload:
        t = payload["test"]
        print(f"refitted on all validation rows; test AUC {t['auc']:.5f} at {t['mean_cost']:.6g} FLOPs/sample")
    print(f"study {result.study_name!r} in {result.storage}; wrote {out / REPORT} and {out / 'controller'}")
    return 0


def _tune_model(args: argparse.Namespace) -> int:
    from adaptive_loop.config import load_config, resolve_config
    from adaptive_loop.training.model_tuning import ModelSearchSpace, tune_model

    overrides = list(args.set or [])
    if args.epochs is not None:
        overrides.append(f"train.epochs={args.epochs}")
    config = load_config(resolve_config(args.config), overrides)
    space = ModelSearchSpace.load(args.space) if args.space else None
    result = tune_model(config, args.out, args.trials, storage=args.storage, study_name=args.study_name or "loopctr",
                        seed=args.seed, space=space, show_progress=not args.no_progress)
    out = Path(args.out)
    _write_trials_csv(out / "trials.csv", result.trials)
    write_json(out / REPORT, result.to_dict())
    print(f"best {config.train.monitor} = {result.best_value:.5f} with {result.best_params} "
          f"({result.n_finished} finished, {result.n_pruned} pruned); best run {result.best_run_dir}")
    print("as overrides: " + " ".join(f"--set {o}" for o in result.best_overrides()))
    print(f"study {result.study_name!r} in {result.storage}; wrote {out / REPORT}")
    return 0


def _write_trials_csv(path: Path, trials: list[dict[str, Any]]) -> None:
    import pandas as pd

    rows = []
    for t in trials:
        row = {"number": t["number"], "state": t["state"], "seconds": t["seconds"]}
        for i, v in enumerate(t["values"] or []):
            row[f"value_{i}"] = v
        row.update({f"param_{k}": v for k, v in t["params"].items()})
        row.update({f"attr_{k}": v for k, v in t["user_attrs"].items() if not isinstance(v, (list, dict))})
        rows.append(row)
    frame = pd.DataFrame(rows)
    write_with(path, lambda tmp: frame.to_csv(tmp, index=False))


def _plot_pareto(path: Path, result, name: str) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 4.5), dpi=120)
    ax = fig.subplots()
    done = [t for t in result.trials if t["state"] == "COMPLETE" and t["values"]]
    ax.plot([t["values"][1] for t in done], [t["values"][0] for t in done], ".", color="0.6", label="trials")
    ax.plot([p["mean_cost"] for p in result.pareto], [p["auc"] for p in result.pareto], "o-", color="tab:blue",
            label="Pareto front")
    ax.set_xlabel("mean cost on the tune split (FLOPs/sample)")
    ax.set_ylabel("AUC on the tune split")
    ax.set_title(f"{name}: NSGA-II Pareto front ({result.n_trials} trials)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    write_with(path, lambda tmp: fig.savefig(tmp, format="png"))
