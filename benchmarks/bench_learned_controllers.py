"""Learned depth controllers against the fixed-depth frontier at equal cost.

For each dataset (a validation trace and a test trace of the same LoopCTR run) and each
budget (the cost of fixed depth 1 and of fixed depth 2 by default), every controller is
tuned with Optuna on the validation trace (fit part / tune part; objective: AUC at that
budget, the budget as a constraint), refitted on the whole validation trace with the best
setting, calibrated on validation to the budget, and reported on the test trace: AUC, mean
cost, headroom captured against the interpolated and the random-mixture fixed frontier, and
a paired bootstrap interval of AUC(controller) - AUC(random-mixture frontier at the
controller's realised test cost). Allocators are also run as a stream (re-priced per test
batch). A plot per dataset shows every controller's knob sweep on test (the setting tuned
for the first budget), the fixed frontier and the budgeted oracle. On synthetic traces
(which carry the generator's `needed_depth`) it also reports how well each controller's
depths recover the needed depth; `--simulated-rows N` adds a controlled simulated trace
whose predictions do depend on the needed depth (see `simulated_trace`). The test trace is
never used to fit, tune or calibrate.

    python benchmarks/bench_learned_controllers.py \\
        --dataset frappe_x1=runs/frappe/trace_valid.parquet,runs/frappe/trace_test.parquet \\
        --dataset movielens_100k=runs/movielens/trace_valid.parquet,runs/movielens/trace_test.parquet \\
        --dataset synthetic=runs/demo/trace_valid.parquet,runs/demo/trace_test.parquet \\
        --trials 12 --out benchmarks/results

`--excess-from benchmarks/results/headroom_decomposition.json` adds each controller's share of
the dataset's excess headroom (oracle headroom minus the null's, measured on the same test
trace by `benchmarks/headroom_decomposition.py`) and checks the target against it too.

Studies are stored in `<out>/learned_controllers_studies/<dataset>.db` (SQLite): rerunning
the command resumes them. Writes `<out>/learned_controllers.json`, `.md` and one
`learned_controllers_<dataset>.png` per dataset, atomically.
"""

from __future__ import annotations

import argparse
import math
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from adaptive_loop.errors import AdaptiveLoopError, BudgetError
from adaptive_loop.harness.bootstrap import controller_vs_frontier_ci
from adaptive_loop.harness.controller_report import evaluate
from adaptive_loop.harness.controller_tuning import budget_at_depth, refit, tune_controller
from adaptive_loop.harness.curves import excess_share, fixed_frontier, headroom_captured, sweep
from adaptive_loop.harness.decomposition_report import read_excess
from adaptive_loop.io import write_json, write_text
from adaptive_loop.metrics import auc
from adaptive_loop.trace import DepthTrace, load_trace
from controllers.learned.streaming_budget import stream_trace
from controllers.learned.utility import UtilityAllocator
from oracle.agreement import depth_agreement, needed_depth_agreement
from oracle.budgeted import budgeted_oracle_curve
from oracle.headroom import headroom_table

RESULTS = Path(__file__).resolve().parent / "results"
STREAM_BATCH = 2048

# (label, registry name, fixed constructor parameters); rule-based controllers are the baselines
CONTROLLERS: list[tuple[str, str, dict[str, Any]]] = [
    ("confidence", "confidence", {}),
    ("stability", "stability", {}),
    ("act", "act", {}),
    ("exit_gate", "exit_gate", {}),
    ("lgbm_oracle", "lgbm_depth", {"target": "oracle"}),
    ("lgbm_gain", "lgbm_depth", {"target": "gain"}),
    ("lgbm_rank", "lgbm_depth", {"target": "gain", "gain_target": "rank"}),
    ("allocator_mlp", "allocator", {"gain_model": "mlp"}),
    ("allocator_rank", "allocator", {"gain_model": "mlp", "gain_target": "rank"}),
]


def simulated_trace(n: int, max_depth: int, seed: int, split: str) -> DepthTrace:
    """A simulated trace whose predictions converge at a known per-sample needed depth.

    Not a model's output: a controlled check that a controller *can* recover the needed depth
    when the per-depth predictions depend on it (the trained LoopCTR traces may not). Each
    sample's logit walks from an uninformed prior to its true logit, reaching it at
    `needed_depth` (0..K); 30% drift away afterwards (overthinking). The side column
    `hist_len` is a noisy hint of the needed depth (longer histories need more hops); the
    ground truth `needed_depth` is stored but never read by a controller. FLOPs are those of
    the synthetic LoopCTR run (Entry 509k, Loop 528k, Exit 125k).
    """
    from adaptive_loop.metrics import sigmoid
    from adaptive_loop.trace import TraceMeta

    rng = np.random.default_rng(seed)
    k = max_depth
    needed = rng.integers(0, k + 1, n)
    u = rng.normal(-0.8, 1.6, n)
    labels = (rng.random(n) < sigmoid(u)).astype(np.float32)
    prior = rng.normal(-0.8, 0.3, n)
    t = np.arange(k + 1)[None, :]
    progress = np.minimum(1.0, (t + 1) / (needed[:, None] + 1.0))
    walk = np.cumsum(rng.normal(0.0, 0.25, (n, k + 1)), axis=1)
    drift = np.maximum(t - needed[:, None], 0) * ((rng.random(n) < 0.3) * rng.normal(0, 0.3, n))[:, None]
    logits = prior[:, None] + progress * (u - prior)[:, None] + (1 - progress) * walk + drift
    hist_len = np.maximum(0, np.round(4 * needed + rng.normal(0, 3, n))).astype(np.int64)
    meta = TraceMeta(flops_entry=509440.0, flops_loop=528384.0, flops_exit=125056.0, max_depth=k, train_loops=3,
                     dataset="simulated", split=split)
    return DepthTrace(ids=np.arange(n), labels=labels, logits=logits.astype(np.float32), meta=meta,
                      features={"needed_depth": needed.astype(np.int64), "hist_len": hist_len})


def parse_dataset(text: str) -> tuple[str, Path, Path]:
    name, sep, paths = text.partition("=")
    parts = paths.split(",")
    if not sep or len(parts) != 2:
        raise SystemExit(f"--dataset expects NAME=VALID.parquet,TEST.parquet, got {text!r}")
    return name, Path(parts[0]), Path(parts[1])


def parse_joint(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not path:
        raise SystemExit(f"--joint-checkpoint expects NAME=CHECKPOINT.pt, got {text!r}")
    return name, Path(path)


def evaluate_at(controller, valid: DepthTrace, test: DepthTrace, budget: float, oracle_auc: float, frontier,
                n_boot: int, seed: int, excess: float | None = None) -> dict[str, Any]:
    """Calibrate on valid to `budget`, report on test (frontier comparison at the realised test cost).

    With `excess` (the test trace's excess headroom) the row also holds the gain over the
    interpolated frontier as a share of it.
    """
    lo, hi = controller.cost_range(valid)
    if budget < lo:
        return {"budget": budget, "feasible": False, "reason": f"cheapest setting costs {lo:.6g} on validation"}
    controller.calibrate(valid, min(budget, hi))
    decision = controller.decide(test)
    report = evaluate(controller, test, decision, with_gauc=test.groups is not None)
    captured = headroom_captured(report.auc, report.mean_cost, test, oracle_auc, frontier, seed=seed)
    ci = controller_vs_frontier_ci(decision, test, frontier, n_resamples=n_boot, seed=seed) if n_boot else None
    out: dict[str, Any] = {
        "budget": budget, "feasible": True, "knob": float(controller.knob), "valid_mean_cost": controller.calibration_.mean_cost,
        "test": report.to_dict(), "headroom_captured": captured.to_dict(),
        "bootstrap_vs_mixture_frontier": None if ci is None else ci.to_dict(),
    }
    agreement = needed_depth_agreement(test, decision.depth)
    if agreement is not None:
        out["needed_depth_agreement"] = agreement.to_dict()
    if excess is not None:
        out["captured_of_excess"] = excess_share(report.auc, captured.frontier_auc, excess)
    if isinstance(controller, UtilityAllocator):  # the same predictor, re-priced batch by batch on test
        streamed = stream_trace(controller, test, budget, batch_size=STREAM_BATCH)
        z = test.logits[np.arange(test.n_samples), streamed.depth]
        out["stream"] = {"batch_size": STREAM_BATCH, "mean_cost": streamed.mean_cost, "auc": auc(test.labels, z),
                         "lam_min": float(np.min(streamed.lams)), "lam_max": float(np.max(streamed.lams))}
    return out


def run_dataset(name: str, valid_path: Path | None, test_path: Path | None, args: argparse.Namespace,
                excess: float | None = None) -> dict[str, Any]:
    if valid_path is None or test_path is None:  # the simulated check
        valid = simulated_trace(args.simulated_rows, 5, seed=args.seed + 1, split="valid")
        test = simulated_trace(args.simulated_rows, 5, seed=args.seed + 2, split="test")
    else:
        valid, test = load_trace(valid_path), load_trace(test_path)
    table = headroom_table(test)
    frontier = fixed_frontier(test)
    budgets = {f"depth{d}": budget_at_depth(valid, d) for d in args.budget_depths}
    oracle_curve = budgeted_oracle_curve(test, n_points=21)
    result: dict[str, Any] = {
        "valid_trace": str(valid_path) if valid_path else f"simulated_trace(n={args.simulated_rows}, seed={args.seed + 1})",
        "test_trace": str(test_path) if test_path else f"simulated_trace(n={args.simulated_rows}, seed={args.seed + 2})",
        "n_valid": valid.n_samples, "n_test": test.n_samples, "max_depth": test.max_depth,
        "has_hidden": test.hidden is not None, "features": sorted(test.features),
        "headroom_test": table.to_dict(), "fixed_frontier_test": frontier.to_dict(),
        "budgets": budgets, "budgeted_oracle_test": oracle_curve.to_dict(),
        "excess_headroom": excess, "controllers": {},
    }
    if "needed_depth" in test.features:
        result["oracle_needed_depth_agreement"] = needed_depth_agreement(test).to_dict()
        result["fixed_depth_needed_depth_agreement"] = {
            f"depth{d}": depth_agreement(np.full(test.n_samples, d), test.features["needed_depth"]).to_dict()
            for d in range(test.n_depths)
        }
    studies = Path("learned_controllers_studies") / f"{name}.db"  # recorded relative to --out: no machine paths
    storage = f"sqlite:///{(args.out / studies).resolve()}"
    curves, points = [], []
    chosen = [c for c in CONTROLLERS if not args.controllers or c[0] in args.controllers]
    joint = dict(parse_joint(j) for j in args.joint_checkpoint)
    if name in joint:  # an ACT head trained together with this run's model (train.halting)
        chosen.append(("act_joint", "act", {"mode": "joint", "checkpoint": str(joint[name])}))
    for label, reg, base in tqdm(chosen, desc=name, leave=False):
        started = time.perf_counter()
        entry: dict[str, Any] = {"registry_name": reg, "base_params": base, "at_budget": {}}
        sweep_source = None
        for key, budget in budgets.items():
            # one study per budget: the controller is tuned for the cost it is evaluated at
            try:
                trials = 1 if base.get("mode") == "joint" else args.trials  # nothing to tune but the knob
                tuned = tune_controller(reg, valid, budget=budget, n_trials=trials, base_params=base,
                                        storage=storage, out_dir=str(args.out), study_name=f"{label}-{key}", seed=args.seed)
            except BudgetError as exc:
                entry["at_budget"][key] = {"budget": budget, "feasible": False, "reason": str(exc)}
                continue
            try:
                controller = refit(reg, {**base, **tuned.best_params}, valid)
                row = evaluate_at(controller, valid, test, budget, table.oracle.auc, frontier, args.bootstrap, args.seed,
                                  excess)
            except AdaptiveLoopError as exc:  # reported in the results, not fatal for the other controllers
                entry["at_budget"][key] = {"budget": budget, "feasible": False, "reason": f"{type(exc).__name__}: {exc}"}
                continue
            row["tuning"] = {"best_params": tuned.best_params, "best_tune_auc": tuned.best_value,
                             "n_trials": tuned.n_trials, "study": tuned.study_name, "storage": f"sqlite:///{studies}"}
            row["params"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in controller.get_params().items()}
            entry["at_budget"][key] = row
            if row["feasible"]:
                points.append((f"{label} @ {key}", row["test"]["mean_cost"], row["test"]["auc"]))
                sweep_source = sweep_source or controller
        if sweep_source is None:
            entry["error"] = "; ".join(v["reason"] for v in entry["at_budget"].values())
            result["controllers"][label] = entry
            tqdm.write(f"{name}/{label}: infeasible at every budget")
            continue
        curve = sweep(sweep_source, test, n_points=args.curve_points, name=label)  # the first budget's setting
        entry["sweep_test"] = curve.to_dict()
        curves.append(curve)
        entry["seconds"] = time.perf_counter() - started
        result["controllers"][label] = entry
        summary = ", ".join(
            f"{k}: AUC {v['test']['auc']:.5f} @ {v['test']['mean_cost']:.4g} captured {v['headroom_captured']['captured_mixture']:+.3f}"
            + (f" CI [{v['bootstrap_vs_mixture_frontier']['low']:+.5f}, {v['bootstrap_vs_mixture_frontier']['high']:+.5f}]"
               if v.get("bootstrap_vs_mixture_frontier") else "")
            for k, v in entry["at_budget"].items() if v["feasible"]
        )
        tqdm.write(f"{name}/{label} ({entry['seconds']:.0f} s): {summary}")
    plot = args.out / f"learned_controllers_{name}.png"
    plot_benchmark(plot, curves, frontier, oracle_curve, points, title=f"{name} test split: controllers vs fixed depths")
    result["plot"] = plot.name
    result["target"] = target_check(result)
    return result


def plot_benchmark(path: Path, curves, frontier, oracle_curve, points, title: str) -> None:
    """Two panels: everything with the budgeted oracle (left), and a zoom on the fixed frontier (right).

    Each controller's knob sweep is a line; its calibrated points are a star (first budget)
    and a diamond (second budget) in the same colour.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from adaptive_loop.io import write_with

    fig, axes = plt.subplots(1, 2, figsize=(14, 5.5), dpi=110)
    try:
        colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        kc, ka = frontier.costs[frontier.kept], frontier.aucs[frontier.kept]
        xmax = max([float(frontier.costs[-1])] + [float(c.costs.max()) for c in curves if c.costs.size])
        for panel, ax in enumerate(axes):
            ax.plot(frontier.costs, frontier.aucs, "o", color="0.4", label="fixed depths")
            for t, (c, a) in enumerate(zip(frontier.costs, frontier.aucs)):
                ax.annotate(str(t), (c, a), textcoords="offset points", xytext=(3, -10), fontsize=7, color="0.3")
            ax.plot(list(kc) + [xmax], list(ka) + [ka[-1]], "-", color="0.2", lw=2, label="fixed-depth frontier")
            if panel == 0:
                ax.plot(oracle_curve.budgets, oracle_curve.auc, "--", color="tab:red", label="budgeted oracle (uses labels)")
            for i, curve in enumerate(curves):
                colour = colours[i % len(colours)]
                ax.plot(curve.costs, curve.aucs, ".-", color=colour, lw=1, ms=3, label=f"{curve.name}")
                mine = [p for p in points if p[0].startswith(curve.name + " @ ")]
                for j, (_, cost, point_auc) in enumerate(mine):
                    ax.plot([cost], [point_auc], "*" if j == 0 else "D", color=colour, ms=11 if j == 0 else 6, mec="k", mew=0.5)
            ax.set_xlabel("mean cost (FLOPs/sample)")
            ax.set_ylabel("AUC (test)")
            ax.grid(True, alpha=0.3)
        ys = np.concatenate([frontier.aucs] + [c.aucs for c in curves if c.aucs.size])
        pad = 0.15 * max(float(ys.max() - ys.min()), 1e-4)
        axes[1].set_ylim(float(ys.min()) - pad, float(ys.max()) + pad)
        axes[0].set_title("with the budgeted oracle")
        axes[1].set_title("zoom on the fixed frontier (star: 1st budget, diamond: 2nd)")
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="center right", fontsize=8)
        fig.suptitle(title)
        fig.tight_layout(rect=(0, 0, 0.84, 1))
        write_with(path, lambda tmp: fig.savefig(tmp, format="png"))
    finally:
        plt.close(fig)


def target_check(result: dict[str, Any]) -> dict[str, Any]:
    """Does any controller beat the frontier (bootstrap low > 0) and capture >= 25% of the headroom?

    Checked against the oracle headroom (the mixture frontier's share) and, when the excess
    headroom is known, against the excess (`winners_of_excess`).
    """
    winners, winners_of_excess = [], []
    for label, entry in result["controllers"].items():
        for key, row in entry.get("at_budget", {}).items():
            ci = row.get("bootstrap_vs_mixture_frontier")
            if not row.get("feasible") or ci is None or not ci["low"] > 0:
                continue
            cap = row["headroom_captured"]["captured_mixture"]
            if cap >= 0.25:
                winners.append({"controller": label, "budget": key, "ci_low": ci["low"], "captured_mixture": cap})
            of_excess = row.get("captured_of_excess")
            if of_excess is not None and of_excess >= 0.25:
                winners_of_excess.append({"controller": label, "budget": key, "ci_low": ci["low"], "captured_of_excess": of_excess})
    out: dict[str, Any] = {"met": bool(winners), "winners": winners}
    if result.get("excess_headroom") is not None:
        out.update(met_of_excess=bool(winners_of_excess), winners_of_excess=winners_of_excess)
    return out


def markdown(results: dict[str, Any]) -> str:
    lines = ["# Learned depth controllers vs the fixed-depth frontier (test split)", "",
             f"Command: `{results['command']}`", ""]
    for name, res in results["datasets"].items():
        head = res["headroom_test"]
        excess = res.get("excess_headroom")
        empty_cells = " |" * (5 if excess is None else 6)  # after a row's first three cells
        lines += [f"## {name}", "",
                  f"test rows {res['n_test']}, K = {res['max_depth']}; best fixed depth {head['best_fixed_depth']} "
                  f"(AUC {head['best_fixed_auc']:.5f}), oracle AUC {head['oracle']['auc']:.5f}, gap {head['gap_auc']:+.5f}"
                  + ("" if excess is None else f"; excess headroom over the null {excess:+.5f}"), "",
                  "| controller | budget | AUC | mean cost (FLOPs) | frontier AUC (mixture) | captured (interp.) | captured (mixture) | "
                  + ("" if excess is None else "captured of excess (interp.) | ") + "95% CI of AUC - mixture |",
                  "|---|---|---|---|---|---|---|" + ("" if excess is None else "---|") + "---|"]
        for label, entry in res["controllers"].items():
            if "error" in entry:
                lines.append(f"| {label} | - | error: {entry['error']} |{empty_cells}")
                continue
            for key, row in entry["at_budget"].items():
                if not row["feasible"]:
                    lines.append(f"| {label} | {key} | infeasible ({row['reason']}) |{empty_cells}")
                    continue
                t, hc, ci = row["test"], row["headroom_captured"], row["bootstrap_vs_mixture_frontier"]
                ci_text = "" if ci is None else f"{ci['estimate']:+.5f} [{ci['low']:+.5f}, {ci['high']:+.5f}]"
                share = row.get("captured_of_excess", float("nan"))
                of_excess = "" if excess is None else (f"{share:+.3f} | " if math.isfinite(share) else "- (excess <= 0) | ")
                lines.append(f"| {label} | {key} | {t['auc']:.5f} | {t['mean_cost']:.5g} | {hc['mixture_auc']:.5f} | "
                             f"{hc['captured']:+.3f} | {hc['captured_mixture']:+.3f} | {of_excess}{ci_text} |")
        if "oracle_needed_depth_agreement" in res:
            lines += ["", "Recovery of the generator's needed depth (exact / within one / Spearman):", "",
                      "| depths from | budget | exact | within one | Spearman |", "|---|---|---|---|---|"]
            o = res["oracle_needed_depth_agreement"]
            lines.append(f"| oracle (uses labels) | - | {o['exact']:.3f} | {o['within_one']:.3f} | {o['spearman']:.3f} |")
            for label, entry in res["controllers"].items():
                for key, row in entry.get("at_budget", {}).items():
                    a = row.get("needed_depth_agreement")
                    if a:
                        lines.append(f"| {label} | {key} | {a['exact']:.3f} | {a['within_one']:.3f} | {a['spearman']:.3f} |")
        tgt = res["target"]
        lines += ["", f"Target (bootstrap low > 0 and >= 25% of the headroom captured): "
                      f"{'met by ' + ', '.join(w['controller'] + ' @ ' + w['budget'] for w in tgt['winners']) if tgt['met'] else 'not met'}"]
        if "met_of_excess" in tgt:
            lines += ["", "Against the excess headroom (bootstrap low > 0 and >= 25% of the excess captured): "
                          + ("met by " + ", ".join(w["controller"] + " @ " + w["budget"] for w in tgt["winners_of_excess"])
                             if tgt["met_of_excess"] else "not met")]
        lines += ["", f"![{name}]({res['plot']})", ""]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", action="append", default=[], metavar="NAME=VALID,TEST")
    parser.add_argument("--trials", type=int, default=12, help="Optuna trials per controller and dataset")
    parser.add_argument("--bootstrap", type=int, default=1000, help="paired bootstrap resamples")
    parser.add_argument("--curve-points", type=int, default=25)
    parser.add_argument("--budget-depths", type=float, nargs="+", default=[1.0, 2.0])
    parser.add_argument("--controllers", nargs="*", help="subset of controller labels")
    parser.add_argument("--joint-checkpoint", action="append", default=[], metavar="NAME=CHECKPOINT",
                        help="also run ACT with the head trained jointly with this dataset's model (train.halting)")
    parser.add_argument("--simulated-rows", type=int, default=0,
                        help="also run the controlled simulated check with this many rows per split (0 = skip)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--excess-from", type=Path, metavar="JSON",
                        help="headroom_decomposition.json: report shares of each dataset's excess headroom too")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    started = time.perf_counter()
    results: dict[str, Any] = {
        "command": "python benchmarks/bench_learned_controllers.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
        "trials_per_controller_and_budget": args.trials, "seed": args.seed, "datasets": {},
    }
    items: list[tuple[str, Path | None, Path | None]] = [parse_dataset(item) for item in args.dataset]
    if args.simulated_rows > 0:
        items.append(("simulated", None, None))
    excess = read_excess(args.excess_from) if args.excess_from is not None else {}
    for name, valid_path, test_path in items:
        results["datasets"][name] = run_dataset(name, valid_path, test_path, args, excess.get(name))
        results["seconds"] = time.perf_counter() - started
        write_json(args.out / "learned_controllers.json", results)  # keep what is done if a later dataset fails
    write_text(args.out / "learned_controllers.md", markdown(results))
    for name, res in results["datasets"].items():
        print(f"{name}: target {'MET' if res['target']['met'] else 'not met'} {res['target']['winners']}")
    print(f"wrote {args.out / 'learned_controllers.json'} and {args.out / 'learned_controllers.md'}")


if __name__ == "__main__":
    main()
