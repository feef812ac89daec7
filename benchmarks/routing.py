"""Depth routing trained with the model against the process-supervised model, at equal mean FLOPs.

For each dataset the command needs two LoopCTR runs of the same config: a process-supervised
one (the plain recipe) and a routed one (`train.routing.mode=expert_choice` with the
capacities of `--capacity`). It trains whichever is not given (`--ps-run NAME=DIR`,
`--routed-run NAME=DIR`) into `--runs-dir`, resuming a killed run from its last checkpoint,
writes their validation and test traces (K = L), and at the mean cost of fixed depth 1 of the
process-supervised model (the budget) reports:

- `frontier_auc`: the process-supervised model's interpolated fixed-depth frontier;
- `routed_auc`: the router as a per-sample controller (`controllers.learned.router`: per-step
  thresholds fitted on validation to the trained capacities, its shift calibrated on
  validation to the budget), on test; `ci`: the paired bootstrap interval of
  AUC(routed) - AUC(random-mixture frontier at the budget) on the same test rows
  (`adaptive_loop.harness.bootstrap`);
- `best_posthoc_auc`: the best of the library's post-hoc controllers on the process-supervised
  model (`adaptive_loop.harness.comparison`: fitted and calibrated on validation), the best
  chosen on test (an optimistic baseline);
- how far the per-sample decisions differ from the batch top-k the router was trained with
  (batches of the training batch size, in test order), and the AUC under each;
- the excess headroom of the routed model over the parametric null (`oracle.excess`,
  `oracle.null`), beside the process-supervised model's.

    python benchmarks/routing.py --dataset synthetic --dataset movielens_100k --dataset frappe_x1 \\
        --epochs frappe_x1=4 --max-steps frappe_x1=25 [--routed-set train.routing.process_weight=1.0]

The routed loss weights the depths unequally (a row's BCE at its exit depth plus
`process_weight` x the mean over depths, so shallow depths weigh more than under the uniform
process supervision). `--matched-ps` trains the process-supervised runs with those average
weights per depth (`train.depth_loss_weights` from `RoutingConfig.matched_depth_weights`): against
that control, what is left is what the per-sample routing itself adds.

Each dataset's record is kept in `<runs-dir>/<dataset>/record.json`: a rerun skips finished
datasets (`--recompute` redoes the evaluation, never the training) and assembles
`routing.{json,md,png}` in `--out` from every finished record, atomically. Runs capped with
`--epochs` / `--max-steps` are labelled as such in the outputs.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from adaptive_loop.config import load_config, resolve_config
from adaptive_loop.cost import CostModel
from adaptive_loop.errors import AdaptiveLoopError, ConfigError
from adaptive_loop.harness.bootstrap import paired_bootstrap_auc_diff
from adaptive_loop.harness.comparison import ControllerSpec, compare_controllers
from adaptive_loop.harness.curves import fixed_frontier, mixture_depths, sweep
from adaptive_loop.harness.decomposition import decompose_headroom
from adaptive_loop.io import write_json, write_text, write_with
from adaptive_loop.metrics import auc
from adaptive_loop.routing_rules import agreement, expert_choice_depths
from adaptive_loop.trace import DepthTrace, load_trace
from controllers.learned.router import RouterController, router_scores

RESULTS = Path(__file__).resolve().parent / "results"
STEM = "routing"
CONFIGS = {"synthetic": "demo", "frappe_x1": "frappe_x1", "movielens_100k": "movielens_100k"}
POSTHOC = ("confidence:criterion=margin", "stability:criterion=delta_p,patience=1", "act", "lgbm_depth:target=gain")


# --------------------------------------------------------------------------- runs
def named(items: list[str] | None, option: str) -> dict[str, str]:
    """NAME=VALUE options as a dict; `ConfigError` naming the option for anything else."""
    out = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise ConfigError(f"{option} expects NAME=VALUE, got {item!r}")
        out[name.strip()] = value.strip()
    return out


def run_overrides(name: str, args: argparse.Namespace) -> list[str]:
    """Config overrides shared by both runs of a dataset: one thread, the epoch / step caps."""
    sets = ["train.num_threads=1", f"train.progress={'false' if args.no_progress else 'true'}"]
    if name in args.epoch_caps:
        sets.append(f"train.epochs={int(args.epoch_caps[name])}")
    if name in args.step_caps:
        sets.append(f"train.max_steps_per_epoch={int(args.step_caps[name])}")
    return sets


def matched_weights(config_name: str, routed_sets: list[str]) -> list[str]:
    """The override giving a process-supervised run the routed run's average weight per depth."""
    config = load_config(resolve_config(config_name), routed_sets)
    weights = config.train.routing.matched_depth_weights(config.model.train_loops)
    return [f"train.depth_loss_weights=[{', '.join(f'{w:.6g}' for w in weights)}]"]


def ensure_run(run_dir: Path, config_name: str, overrides: list[str]) -> dict[str, Any]:
    """Train (or resume) a run into `run_dir` unless it finished; returns its `done.json` record."""
    done = run_dir / "done.json"
    if done.is_file():
        return json.loads(done.read_text(encoding="utf-8"))
    from adaptive_loop.training import train

    config = load_config(resolve_config(config_name), overrides)
    started = time.perf_counter()
    result = train(config, run_dir, resume=True)
    record = {"config": config_name, "overrides": overrides, "best_epoch": result.best_epoch,
              "best_monitor": result.best_monitor, "epochs_run": len(result.history),
              "stopped_early": result.stopped_early, "seconds_last_session": time.perf_counter() - started}
    write_json(done, record)
    return record


def traces(run_dir: Path) -> tuple[DepthTrace, DepthTrace]:
    """(valid, test) traces of a run at K = L, written beside it when missing."""
    from adaptive_loop.workflows import trace_run

    config = load_config(run_dir / "config.yaml", saved_run=True)
    depth = int(config.model.train_loops)
    out = []
    for split in ("valid", "test"):
        path = run_dir / f"trace_{split}_k{depth}.parquet"
        if not path.is_file():
            trace_run(run_dir, split, path, max_depth=depth)
        out.append(load_trace(path))
    return out[0], out[1]


# --------------------------------------------------------------------------- evaluation
def evaluate(name: str, ps_dir: Path, routed_dir: Path, provenance: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """The dataset's record: the issue's five numbers plus what they rest on, and the curves."""
    ps_valid, ps_test = traces(ps_dir)
    ro_valid, ro_test = traces(routed_dir)
    if not np.array_equal(ps_test.ids, ro_test.ids) or not np.array_equal(ps_test.labels, ro_test.labels):
        raise ConfigError(f"{name}: the two runs' test splits differ; train both with the same data config and seed")
    ps_cost, ro_cost = CostModel.from_trace(ps_test), CostModel.from_trace(ro_test)
    budget = float(ps_cost.fixed_depth(1))
    frontier = fixed_frontier(ps_test)
    frontier_auc = float(frontier.auc_at(budget))
    y = ps_test.labels

    checkpoint = str(routed_dir / "checkpoints" / "best.pt")
    router = RouterController(checkpoint=checkpoint).fit(ro_valid)
    at_capacity = router.decide(ro_test)
    router.calibrate(ro_valid, budget)
    decision = router.decide(ro_test)
    routed_logits = decision.logits(ro_test)
    mix = mixture_depths(frontier, ps_test.n_samples, budget, args.seed)
    ci = paired_bootstrap_auc_diff(y, routed_logits, ps_test.logits[np.arange(ps_test.n_samples), mix],
                                   n_resamples=args.bootstrap, seed=args.seed)
    # does the router beat fixed depths of its own model? (separates routing from the training change)
    own = fixed_frontier(ro_test)
    own_mix = mixture_depths(own, ro_test.n_samples, decision.mean_cost, args.seed)
    own_ci = paired_bootstrap_auc_diff(y, routed_logits, ro_test.logits[np.arange(ro_test.n_samples), own_mix],
                                       n_resamples=args.bootstrap, seed=args.seed)

    # batch top-k (as trained) vs the per-sample rules, on test
    layout_batch = int(load_config(routed_dir / "config.yaml", saved_run=True).train.batch_size)
    steps = router.stop_depth_
    scores = router_scores(router.head_, ro_test.hidden, steps)
    batch_depth = expert_choice_depths(scores, router.capacity_[:steps], layout_batch)
    aux = RouterController(checkpoint=checkpoint, thresholds="aux").fit(ro_valid).decide(ro_test)
    rows = np.arange(ro_test.n_samples)
    n_depths = ro_test.n_depths
    batch_vs_sample = {
        "batch_size": layout_batch,
        "batch_topk_auc": auc(y, ro_test.logits[rows, batch_depth]),
        "capacity_thresholds_auc": auc(y, at_capacity.logits(ro_test)),
        "aux_threshold_auc": auc(y, aux.logits(ro_test)),
        "capacity_thresholds": agreement(batch_depth, at_capacity.depth, n_depths),
        "aux_threshold": agreement(batch_depth, aux.depth, n_depths),
    }

    posthoc = compare_controllers(ps_valid, ps_test, [ControllerSpec.parse(t) for t in args.posthoc], budget_depths=(1.0,),
                                  n_bootstrap=args.bootstrap, seed=args.seed, dataset=name, progress=not args.no_progress,
                                  risk=None, curve_points=20)
    ok = [r for r in posthoc.results if r.status == "ok"]
    best = max(ok, key=lambda r: r.auc) if ok else None

    excess = {}
    for label, trace in (("routed", ro_test), ("process_supervised", ps_test)):
        summary = decompose_headroom(trace, parametric=True, repeats=args.repeats, n_bootstrap=args.bootstrap,
                                     budget_points=0, seed=args.seed).summary()
        excess[label] = {k: summary[k] for k in ("oracle_headroom", "excess", "excess_ci", "excess_null", "reference_depth")}

    router_curve = sweep(router, ro_test, n_points=25, name="router")
    curves = {
        "ps_fixed": {"costs": frontier.costs.tolist(), "aucs": frontier.aucs.tolist()},
        "routed_fixed": {"costs": fixed_frontier(ro_test, pareto_only=False).costs.tolist(),
                         "aucs": fixed_frontier(ro_test, pareto_only=False).aucs.tolist()},
        "router": {"costs": router_curve.costs.tolist(), "aucs": router_curve.aucs.tolist()},
        "posthoc": {c.name: {"costs": c.costs.tolist(), "aucs": c.aucs.tolist()} for c in posthoc.curves},
    }
    return {
        "mean_flops": budget,
        "routed_auc": auc(y, routed_logits),
        "frontier_auc": frontier_auc,
        "ci": [ci.low, ci.high],
        "best_posthoc_auc": None if best is None else best.auc,
        "details": {
            "routed_mean_flops_test": decision.mean_cost,
            "routed_mean_depth_test": float(decision.depth.mean()),
            "routed_depth_share_test": (np.bincount(decision.depth, minlength=n_depths) / decision.depth.size).tolist(),
            "routed_shift": float(router.shift),
            "diff_vs_mixture": ci.estimate,
            "routed_own_frontier_auc": float(own.auc_at(decision.mean_cost)),
            "routed_vs_own_frontier_ci": [own_ci.low, own_ci.high],
            "prob_not_positive": ci.prob_not_positive,
            "best_posthoc": None if best is None else {"controller": best.controller, "auc": best.auc, "mean_cost": best.mean_cost,
                                                       "ci_vs_mixture": [best.diff_low, best.diff_high]},
            "posthoc": [{"controller": r.controller, "auc": r.auc, "mean_cost": r.mean_cost, "status": r.status}
                        for r in posthoc.results],
            "ps_test_auc_by_depth": frontier.aucs.tolist(),
            "routed_test_auc_by_depth": curves["routed_fixed"]["aucs"],
            "flops_per_part": {"entry": ps_cost.entry, "loop": ps_cost.loop, "exit": ps_cost.exit,
                               "router_per_step": router.flops_per_step},
            "same_flops_per_part": bool(np.allclose([ps_cost.entry, ps_cost.loop, ps_cost.exit],
                                                    [ro_cost.entry, ro_cost.loop, ro_cost.exit])),
            "batch_vs_per_sample": batch_vs_sample,
            "excess_headroom": excess,
            "capacity": router.capacity_.tolist(),
            "runs": provenance,
            "n_test": int(ps_test.n_samples),
        },
        "curves": curves,
    }


# --------------------------------------------------------------------------- outputs
def plot(path: Path, records: dict[str, dict[str, Any]]) -> Path:
    """AUC vs FLOPs per dataset: PS fixed depths, routed model's fixed depths, the router sweep, post-hoc controllers."""
    fig = Figure(figsize=(6.0 * max(1, len(records)), 4.6), dpi=110)
    axes = fig.subplots(1, max(1, len(records)), squeeze=False)[0]
    for ax, (name, rec) in zip(axes, records.items()):
        c = rec["curves"]
        ax.plot(c["ps_fixed"]["costs"], c["ps_fixed"]["aucs"], "o-", color="0.3", label="process-supervised, fixed depth")
        ax.plot(c["routed_fixed"]["costs"], c["routed_fixed"]["aucs"], "s:", color="tab:orange", label="routed model, fixed depth")
        ax.plot(c["router"]["costs"], c["router"]["aucs"], "-", color="tab:red", label="routed model, router")
        for label, cur in c["posthoc"].items():
            ax.plot(cur["costs"], cur["aucs"], "-", lw=0.8, alpha=0.7, label=f"post-hoc {label}")
        ax.axvline(rec["mean_flops"], color="0.6", ls="--", lw=0.8)
        ax.plot([rec["details"]["routed_mean_flops_test"]], [rec["routed_auc"]], "*", ms=12, color="tab:red")
        ax.set_title(name + (" (capped training)" if rec["details"]["runs"].get("capped") else ""))
        ax.set_xlabel("FLOPs / sample")
        ax.set_ylabel("test AUC")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=6.5, loc="lower right")
    fig.tight_layout()
    return write_with(path, lambda tmp: fig.savefig(tmp, format="png"))


def markdown(records: dict[str, dict[str, Any]]) -> str:
    """The report: one table row per dataset, then each dataset's details and the command that made it."""
    commands = [f"- {name}: `{r['details']['runs'].get('command', '?')}`" for name, r in records.items()]
    lines = ["# Depth routing trained with the model vs process supervision (equal mean FLOPs)", "",
             "Commands (each dataset's record is kept between invocations):", "", *commands, "",
             "Budget: the mean cost of fixed depth 1 of the process-supervised model (test). `routed`: the router as a "
             "per-sample controller, calibrated on validation to the budget. `CI`: paired bootstrap 95% interval of "
             "AUC(routed) - AUC(fixed-depth frontier at the budget). `best post-hoc`: the best controller on the "
             "process-supervised model at the budget (best chosen on test).", "",
             "| dataset | training | budget FLOPs | routed AUC (FLOPs) | frontier AUC | CI | best post-hoc AUC | excess headroom routed / PS |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in records.items():
        d = r["details"]
        ex = d["excess_headroom"]
        runs = d["runs"]
        cap = runs.get("cap_text") or "full recipe"
        fmt = lambda v: "-" if v is None else f"{v:+.5f}"  # noqa: E731
        best = "-" if r["best_posthoc_auc"] is None else f"{r['best_posthoc_auc']:.5f} ({d['best_posthoc']['controller']})"
        lines.append(f"| {name} | {cap} | {r['mean_flops']:,.0f} | {r['routed_auc']:.5f} ({d['routed_mean_flops_test']:,.0f}) | "
                     f"{r['frontier_auc']:.5f} | [{r['ci'][0]:+.5f}, {r['ci'][1]:+.5f}] | {best} | "
                     f"{fmt(ex['routed']['excess'])} / {fmt(ex['process_supervised']['excess'])} |")
    lines += ["", "## Per dataset", ""]
    for name, r in records.items():
        d = r["details"]
        b = d["batch_vs_per_sample"]
        lines += [f"### {name}", "",
                  f"- test AUC by depth, process-supervised: {', '.join(f'{a:.5f}' for a in d['ps_test_auc_by_depth'])}",
                  f"- test AUC by depth, routed model: {', '.join(f'{a:.5f}' for a in d['routed_test_auc_by_depth'])}",
                  (f"- the router against its own model's fixed-depth frontier at its test cost: "
                   f"{r['routed_auc']:.5f} vs {d['routed_own_frontier_auc']:.5f}, CI [{d['routed_vs_own_frontier_ci'][0]:+.5f}, "
                   f"{d['routed_vs_own_frontier_ci'][1]:+.5f}]" if "routed_own_frontier_auc" in d else
                   "- the router against its own model's fixed depths: not computed in this record"),
                  f"- capacity {d['capacity']}; at the budget the router sends test rows to depths 0..L in shares "
                  f"{', '.join(f'{s:.3f}' for s in d['routed_depth_share_test'])} (shift {d['routed_shift']:+.4f})",
                  f"- batch top-k (batches of {b['batch_size']}) vs per-sample capacity thresholds: same depth for "
                  f"{b['capacity_thresholds']['same_depth']:.1%} of test rows (AUC {b['batch_topk_auc']:.5f} vs "
                  f"{b['capacity_thresholds_auc']:.5f}); vs the auxiliary 0.5 threshold: {b['aux_threshold']['same_depth']:.1%} "
                  f"(AUC {b['aux_threshold_auc']:.5f}; depth shares {', '.join(f'{s:.3f}' for s in b['aux_threshold']['share_b'])})",
                  "- post-hoc controllers at the budget: " + "; ".join(
                      f"{p['controller']} {p['auc']:.5f}" if p["status"] == "ok" else f"{p['controller']} infeasible"
                      for p in d["posthoc"]),
                  f"- FLOPs per part: entry {d['flops_per_part']['entry']:,.0f}, loop {d['flops_per_part']['loop']:,.0f}, "
                  f"exit {d['flops_per_part']['exit']:,.0f}, router + summary per step {d['flops_per_part']['router_per_step']:,.0f}",
                  f"- runs: {json.dumps(d['runs'])}", ""]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", action="append", required=True,
                   help=f"dataset (repeatable): {', '.join(sorted(CONFIGS))}, or any name given a --config")
    p.add_argument("--config", action="append", help="NAME=CONFIG: train the runs of NAME from this config (built-in name or YAML)")
    p.add_argument("--ps-run", action="append", help="NAME=DIR: a finished process-supervised run to use")
    p.add_argument("--routed-run", action="append", help="NAME=DIR: a finished routed run to use")
    p.add_argument("--runs-dir", type=Path, default=Path("runs/routing"), help="where missing runs are trained")
    p.add_argument("--capacity", default="0.5,0.3,0.15", help="routed runs: train.routing.capacity (one share per loop step)")
    p.add_argument("--routed-set", action="append", default=[], metavar="KEY=VALUE",
                   help="routed runs only: a further config override, e.g. train.routing.process_weight=1.0 (repeatable)")
    p.add_argument("--matched-ps", action="store_true",
                   help="train the process-supervised runs with the per-depth loss weights the routed loss gives on average "
                        "(RoutingConfig.matched_depth_weights): the control for what re-weighting the depths alone adds")
    p.add_argument("--epochs", action="append", help="NAME=N: cap the epochs of both runs of a dataset (labelled)")
    p.add_argument("--max-steps", action="append", help="NAME=N: cap optimiser steps per epoch (labelled)")
    p.add_argument("--posthoc", action="append", help=f"post-hoc controller spec (repeatable; default {', '.join(POSTHOC)})")
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=10, help="parametric-null draws for the excess headroom")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--recompute", action="store_true", help="redo the evaluation of finished datasets (never the training)")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.epoch_caps = named(args.epochs, "--epochs")
        args.step_caps = named(args.max_steps, "--max-steps")
        ps_runs, routed_runs = named(args.ps_run, "--ps-run"), named(args.routed_run, "--routed-run")
        capacity = [float(v) for v in args.capacity.split(",")]
        args.posthoc = args.posthoc or list(POSTHOC)
        configs = {**CONFIGS, **named(args.config, "--config")}
        if args.matched_ps and ps_runs:
            raise ConfigError(f"--matched-ps trains the process-supervised runs itself; drop --ps-run for {', '.join(sorted(ps_runs))}")
        unknown = [n for n in args.dataset if n not in configs]
        if unknown:
            raise ConfigError(f"no config for dataset(s) {unknown}: use {', '.join(sorted(CONFIGS))} or give --config NAME=CONFIG")
        command = "python benchmarks/routing.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
        for name in dict.fromkeys(args.dataset):
            folder = args.runs_dir / name
            record_path = folder / "record.json"
            if record_path.is_file() and not args.recompute:
                print(f"{name}: finished earlier ({record_path})", file=sys.stderr)
                continue
            shared = run_overrides(name, args)
            routed_sets = shared + ["train.routing.mode=expert_choice", f"train.routing.capacity=[{', '.join(map(str, capacity))}]",
                                    *args.routed_set]
            provenance: dict[str, Any] = {"config": configs[name], "command": command,
                                          "capped": bool(name in args.epoch_caps or name in args.step_caps)}
            if provenance["capped"]:
                provenance["cap_text"] = ", ".join(
                    t for t in (f"epochs <= {args.epoch_caps[name]}" if name in args.epoch_caps else "",
                                f"<= {args.step_caps[name]} steps/epoch" if name in args.step_caps else "") if t)
            ps_dir = Path(ps_runs[name]) if name in ps_runs else folder / "process_supervised"
            routed_dir = Path(routed_runs[name]) if name in routed_runs else folder / "routed"
            ps_sets = shared + (matched_weights(configs[name], routed_sets) if args.matched_ps else [])
            provenance["process_supervised"] = {"dir": str(ps_dir), **({} if name in ps_runs else ensure_run(ps_dir, configs[name], ps_sets))}
            provenance["routed"] = {"dir": str(routed_dir), **({} if name in routed_runs else ensure_run(routed_dir, configs[name], routed_sets))}
            record = evaluate(name, ps_dir, routed_dir, provenance, args)
            write_json(record_path, record)
            print(f"{name}: routed {record['routed_auc']:.5f} vs frontier {record['frontier_auc']:.5f} at "
                  f"{record['mean_flops']:,.0f} FLOPs, CI [{record['ci'][0]:+.5f}, {record['ci'][1]:+.5f}]", file=sys.stderr)
        records = {}  # every finished dataset under --runs-dir, also from earlier invocations
        for path in sorted(args.runs_dir.glob("*/record.json")):
            records[path.parent.name] = json.loads(path.read_text(encoding="utf-8"))
        args.out.mkdir(parents=True, exist_ok=True)
        write_json(args.out / f"{STEM}.json", {k: {f: r[f] for f in ("mean_flops", "routed_auc", "frontier_auc", "ci", "best_posthoc_auc")}
                                               | {"details": r["details"]} for k, r in records.items()})
        write_text(args.out / f"{STEM}.md", markdown(records))
        plot(args.out / f"{STEM}.png", records)
    except AdaptiveLoopError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
