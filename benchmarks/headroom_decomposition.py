"""How much of the oracle headroom is depth, and how much is the label choosing among noisy copies?

For each dataset (a LoopCTR run directory, or its validation and test traces):

1. the oracle headroom of the test trace and the same oracle over predictions that differ in
   no depth: the parametric null, models of the same config trained with other seeds, and
   MC-dropout passes of the model, all read at the best fixed depth (`oracle.null`);
2. the excess headroom over each null with a paired bootstrap interval (`oracle.excess`);
   the headline excess is over the measured noise (seeds, MC dropout; the most
   conservative of them), over the parametric null only when neither is available;
3. the predictability bound: a 5-fold cross-fitted LightGBM choosing each sample's depth
   from label-free inputs, as a share of the oracle headroom and of the excess;
4. the best controller of the library's comparison protocol (`adaptive_loop.harness.comparison`:
   fitted and calibrated on valid, measured on test at the cost of fixed depths 1 and 2),
   its headroom captured against the oracle headroom and against the excess.

    python benchmarks/headroom_decomposition.py \\
        --dataset synthetic=runs/demo --train-seeds synthetic=6 --mc-dropout-p synthetic=0.1 \\
        --dataset frappe_x1=runs/frappe --seed-runs frappe_x1=runs/frappe_s1,runs/frappe_s2 \\
        --dataset movielens_100k=runs/movielens/trace_valid.parquet,runs/movielens/trace_test.parquet \\
        --seed-traces movielens_100k=runs/ml_s1/trace_test.parquet,runs/ml_s2/trace_test.parquet \\
        --mc-dropout-traces movielens_100k=runs/movielens/null_traces/mc_dropout_test

From a run directory the script writes what is missing: `trace_valid/test.parquet`, the
MC-dropout passes (`<run>/null_traces/mc_dropout_test/`, K+1 passes; `--mc-dropout-p` applies
dropout at inference to a model trained without it), the seed runs (`--train-seeds N` trains
`<run>_seed<s>` siblings on the same split) and their test traces. Everything is reused when
it exists, so an interrupted command resumes.

`--claim3 NAME=RUN` (repeatable; runs trained with different numbers of loops L) asks the
paper's claim 3 against the null: is the higher ceiling of shallow training excess headroom,
or more noise between depths? Those runs get the same decomposition (parametric and MC-
dropout nulls, predictability), written to `headroom_decomposition_claim3.{json,md,png}`.
Give them the same deepest depth (`--max-depth K`, traces then named `trace_<split>_k<K>`):
the oracle's noise gain grows with the number of depths it chooses among, so headrooms over
different K are not comparable (the table lists each model's depths).

Writes `headroom_decomposition.{json,md,png}` into `--out` (default `benchmarks/results`),
atomically; the markdown names the command at the top.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from tqdm.auto import tqdm

from adaptive_loop.errors import AdaptiveLoopError, ConfigError
from adaptive_loop.io import write_json, write_text
from adaptive_loop.trace import DepthTrace, load_trace
from adaptive_loop.harness.decomposition import HeadroomDecomposition, decompose_headroom
from adaptive_loop.harness.decomposition_report import plot_decompositions

RESULTS = Path(__file__).resolve().parent / "results"
STEM = "headroom_decomposition"
RULE_CONTROLLERS = ("confidence:criterion=margin", "stability:criterion=delta_p,patience=1")
LEARNED_CONTROLLERS = ("lgbm_depth:target=gain", "lgbm_depth:target=gain,gain_target=rank")


@dataclass
class DatasetInputs:
    """Where one dataset's traces come from."""

    name: str
    run_dir: Path | None = None
    valid: Path | None = None
    test: Path | None = None
    seed_traces: list[Path] = field(default_factory=list)
    seed_runs: list[Path] = field(default_factory=list)
    train_seeds: int = 0
    mc_traces: list[Path] = field(default_factory=list)
    mc_p: float | None = None


def parse_named(items: Sequence[str] | None, option: str) -> dict[str, str]:
    """`NAME=VALUE` pairs of a repeatable option; a malformed one is a `ConfigError`."""
    out: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise ConfigError(f"{option} expects NAME=VALUE, got {item!r}")
        out[name] = value
    return out


def split_paths(value: str) -> list[Path]:
    """Comma-separated paths, as given (run directories stay directories)."""
    return [Path(part) for part in filter(None, (p.strip() for p in value.split(",")))]


def expand_paths(value: str) -> list[Path]:
    """Comma-separated trace paths; a directory stands for the `*.parquet` files in it, sorted."""
    paths: list[Path] = []
    for path in split_paths(value):
        paths.extend(sorted(path.glob("*.parquet")) if path.is_dir() else [path])
    return paths


def dataset_inputs(args: argparse.Namespace, option: str = "--dataset", entries: Sequence[str] | None = None) -> list[DatasetInputs]:
    """Parse the dataset options into `DatasetInputs`, one per `--dataset` (or `--claim3`) entry."""
    datasets = parse_named(entries if entries is not None else args.dataset, option)
    seeds = parse_named(args.seed_traces, "--seed-traces")
    seed_runs = parse_named(args.seed_runs, "--seed-runs")
    train = parse_named(args.train_seeds, "--train-seeds")
    mc = parse_named(args.mc_dropout_traces, "--mc-dropout-traces")
    mc_p = parse_named(args.mc_dropout_p, "--mc-dropout-p")
    out = []
    for name, value in datasets.items():
        entry = DatasetInputs(name)
        path = Path(value)
        if path.is_dir():
            entry.run_dir = path
        else:
            parts = expand_paths(value)
            if len(parts) != 2:
                raise ConfigError(f"{option} {name}: expected a run directory or VALID.parquet,TEST.parquet, got {value!r}")
            entry.valid, entry.test = parts
        entry.seed_traces = expand_paths(seeds[name]) if name in seeds else []
        entry.seed_runs = split_paths(seed_runs[name]) if name in seed_runs else []  # directories, not their traces
        entry.train_seeds = int(train.get(name, 0))
        entry.mc_traces = expand_paths(mc[name]) if name in mc else []
        entry.mc_p = float(mc_p[name]) if name in mc_p else None
        out.append(entry)
    return out


def resolve_traces(entry: DatasetInputs, args: argparse.Namespace) -> dict[str, Any]:
    """Valid/test trace paths, seed and MC-dropout trace paths, writing what a run directory lacks."""
    seed_traces = list(entry.seed_traces)
    mc_traces = list(entry.mc_traces)
    valid, test = entry.valid, entry.test
    if entry.run_dir is not None:
        from adaptive_loop.null_traces import mc_dropout_traces, seed_run_traces, train_seed_runs
        from adaptive_loop.workflows import trace_run

        suffix = "" if args.max_depth is None else f"_k{args.max_depth}"
        valid, test = (entry.run_dir / f"trace_{split}{suffix}.parquet" for split in ("valid", "test"))
        for split, path in (("valid", valid), ("test", test)):
            if not path.is_file():
                trace_run(entry.run_dir, split, path, max_depth=args.max_depth)
        runs = list(entry.seed_runs)
        if entry.train_seeds > 1:
            runs = train_seed_runs(entry.run_dir, entry.train_seeds, progress=not args.no_progress)[1:] + runs
        if runs:
            seed_traces = seed_run_traces(runs, "test", max_depth=args.max_depth, progress=not args.no_progress,
                                          suffix=suffix) + seed_traces
        if not mc_traces and args.mc_passes != 0:
            try:
                mc_traces = mc_dropout_traces(
                    entry.run_dir, entry.run_dir / "null_traces" / f"mc_dropout_test{suffix}", split="test",
                    n_passes=args.mc_passes if args.mc_passes > 0 else None, p=entry.mc_p, seed=args.seed,
                    max_depth=load_trace(test).max_depth, progress=not args.no_progress,
                )
            except ConfigError as exc:  # a model without dropout and no --mc-dropout-p: say so, go on
                print(f"{entry.name}: no MC-dropout null ({exc})", file=sys.stderr)
    if valid is None or test is None:
        raise ConfigError(f"{entry.name}: no validation/test traces")
    if seed_traces and all(p.resolve() != test.resolve() for p in seed_traces):
        seed_traces = [test] + seed_traces  # the depth trace's own model is one of the seeds
    return {"valid": valid, "test": test, "seed_traces": seed_traces, "mc_traces": mc_traces}


def best_controller(valid: DepthTrace, test: DepthTrace, excess: float | None, args: argparse.Namespace) -> dict[str, Any] | None:
    """The controller of the comparison protocol that captures most headroom at any budget."""
    from adaptive_loop.harness.comparison import ControllerSpec, compare_controllers

    texts = list(args.controller or RULE_CONTROLLERS + LEARNED_CONTROLLERS)
    if not args.controller and (valid.hidden is None or test.hidden is None):
        texts = [t + ",use_hidden=false" if t.startswith("lgbm_depth") else t for t in texts]
    comparison = compare_controllers(
        valid, test, [ControllerSpec.parse(t) for t in texts], budget_depths=args.budget_depth or (1.0, 2.0),
        n_bootstrap=args.bootstrap, seed=args.seed, dataset=test.meta.dataset, progress=not args.no_progress, risk=None,
        excess=excess,
    )
    ok = [r for r in comparison.results if r.status == "ok" and math.isfinite(r.headroom_captured)]
    if not ok:
        return None
    best = max(ok, key=lambda r: r.headroom_captured)
    gain = best.auc - best.frontier_auc
    of_excess = comparison.captured_of_excess(best)
    return {
        "name": best.controller,
        "budget_depth": best.budget_depth,
        "captured_of_oracle": best.headroom_captured,
        "captured_of_excess": of_excess if math.isfinite(of_excess) else None,
        "ci_low": best.diff_low,
        "ci_high": best.diff_high,
        "auc_minus_frontier": gain,
        "auc_minus_mixture": best.diff_vs_mixture,
        "controllers": texts,
    }


def analyse(entry: DatasetInputs, args: argparse.Namespace, controllers: bool = True) -> tuple[dict[str, Any], HeadroomDecomposition]:
    """One dataset's record (the issue's JSON shape plus provenance) and its decomposition."""
    paths = resolve_traces(entry, args)
    valid, test = load_trace(paths["valid"]), load_trace(paths["test"])
    result = decompose_headroom(
        test,
        seed_traces=[load_trace(p) for p in paths["seed_traces"]], seed_names=[str(p) for p in paths["seed_traces"]],
        mc_traces=[load_trace(p) for p in paths["mc_traces"]], mc_names=[str(p) for p in paths["mc_traces"]],
        repeats=args.repeats, n_bootstrap=args.bootstrap, predictability=True, folds=args.folds,
        predictability_options={"use_hidden": not args.predictability_no_hidden},
        budget_points=args.budget_points, seed=args.seed, progress=not args.no_progress,
    )
    summary = result.summary()
    record: dict[str, Any] = {
        **summary,
        "best_controller": best_controller(valid, test, summary["excess"], args) if controllers else None,
        "train_loops": test.meta.train_loops,
        "n_depths": test.n_depths,
        "depth_spread_rms": result.comparisons[0].depth_spread_rms if result.comparisons else None,
        "sources": {"run_dir": None if entry.run_dir is None else str(entry.run_dir), "valid": str(paths["valid"]),
                    "test": str(paths["test"]), "seed_traces": [str(p) for p in paths["seed_traces"]],
                    "mc_dropout_traces": [str(p) for p in paths["mc_traces"]]},
        "details": result.to_dict(),
    }
    return record, result


def _fmt(value: Any, spec: str = "+.5f") -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else format(value, spec)


def summary_table(records: dict[str, dict[str, Any]]) -> str:
    """One row per dataset: headroom, nulls, headline excess, predictable share, best controller."""
    lines = [
        "| dataset | L | oracle headroom | null: seeds | null: MC dropout | null: parametric | excess [95% CI] (null) "
        "| predictable gain | share of oracle | share of excess | best controller | captured of oracle | of excess | AUC - mixture CI low |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in records.items():
        nh = r["null_headroom"]
        ci = r["excess_ci"] or [None, None]
        bc = r.get("best_controller") or {}
        lines.append(
            f"| {name} | {r['train_loops']} | {_fmt(r['oracle_headroom'])} | {_fmt(nh['seeds'])} | {_fmt(nh['mc_dropout'])} "
            f"| {_fmt(nh['parametric'])} | {_fmt(r['excess'])} [{_fmt(ci[0])}, {_fmt(ci[1])}] ({r['excess_null']}) "
            f"| {_fmt(r['predictable_gain'])} | {_fmt(r['predictable_share'], '.1%')} | {_fmt(r['predictable_share_of_excess'], '.1%')} "
            f"| {bc.get('name', '-')} | {_fmt(bc.get('captured_of_oracle'), '+.1%')} | {_fmt(bc.get('captured_of_excess'), '+.1%')} "
            f"| {_fmt(bc.get('ci_low'))} |"
        )
    return "\n".join(lines) + "\n"


def write_results(out: Path, stem: str, command: str, records: dict[str, dict[str, Any]],
                  results: dict[str, HeadroomDecomposition], intro: str, seconds: float, lead: str = "") -> None:
    """JSON (dataset -> record), markdown with the command on top (then `lead`), and the stacked figure."""
    write_json(out / f"{stem}.json", records)
    parts = [f"# {intro}\n", f"Command:\n\n```bash\n{command}\n```\n", lead, summary_table(records)]
    parts.append(
        "Columns: *null* = the oracle headroom over predictions that differ in no depth (seed models, MC-dropout "
        "passes, the parametric null), each at the same number of candidates as the depths unless noted below; "
        "*excess* = oracle headroom minus the headline null's headroom, paired bootstrap 95% interval; *predictable* = "
        "AUC gain of a depth chosen per sample by a cross-fitted LightGBM from label-free inputs, what a controller "
        "could learn at best up to that model's power; *captured* = (controller AUC - fixed-depth frontier AUC at its "
        "cost) / headroom; *AUC - mixture CI low* = lower 95% bound of AUC(controller) - AUC(random mixture of fixed "
        "depths at the same cost).\n"
    )
    for name, result in results.items():
        parts.append(result.to_markdown(title=name))
    parts.append(f"![headroom decomposition]({stem}.png)\n\n({seconds / 60:.1f} min)\n")
    write_text(out / f"{stem}.md", "\n".join(parts))
    plot_decompositions(out / f"{stem}.png", results)


def claim3_table(records: dict[str, dict[str, Any]]) -> str:
    """Claim 3: per number of training loops, is the larger headroom excess or noise?"""
    lines = [
        "| model | trained loops L | depths | between-depth spread (RMS logit) | oracle headroom | null: MC dropout "
        "| null: parametric | excess [95% CI] (null) | predictable gain | share of oracle |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in sorted(records.items(), key=lambda kv: kv[1]["train_loops"]):
        ci = r["excess_ci"] or [None, None]
        lines.append(
            f"| {name} | {r['train_loops']} | 0..{r['n_depths'] - 1} | {_fmt(r['depth_spread_rms'], '.4f')} | {_fmt(r['oracle_headroom'])} "
            f"| {_fmt(r['null_headroom']['mc_dropout'])} | {_fmt(r['null_headroom']['parametric'])} "
            f"| {_fmt(r['excess'])} [{_fmt(ci[0])}, {_fmt(ci[1])}] ({r['excess_null']}) | {_fmt(r['predictable_gain'])} "
            f"| {_fmt(r['predictable_share'], '.1%')} |"
        )
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", action="append", required=True, metavar="NAME=RUN|VALID,TEST",
                        help="a run directory, or validation and test traces (repeatable)")
    parser.add_argument("--seed-traces", action="append", metavar="NAME=T1,T2,...",
                        help="test traces of other seeds of the same config (a folder = its *.parquet)")
    parser.add_argument("--seed-runs", action="append", metavar="NAME=RUN1,RUN2,...", help="run directories of other seeds")
    parser.add_argument("--train-seeds", action="append", metavar="NAME=N",
                        help="train N-1 more seeds of the run (same split) for the seeds null")
    parser.add_argument("--mc-dropout-traces", action="append", metavar="NAME=T1,T2,...|DIR",
                        help="one test trace per MC-dropout pass (default from a run directory: written)")
    parser.add_argument("--mc-dropout-p", action="append", metavar="NAME=P",
                        help="dropout rate to apply at inference for a model trained without dropout")
    parser.add_argument("--mc-passes", type=int, default=-1, help="MC-dropout passes from a run (-1: K+1, 0: none)")
    parser.add_argument("--max-depth", type=int, default=None,
                        help="deepest depth K of traces written from run directories (default: each run's config)")
    parser.add_argument("--claim3", action="append", metavar="NAME=RUN|VALID,TEST",
                        help="models trained with other numbers of loops (claim 3 of the paper)")
    parser.add_argument("--controller", action="append", help="controller spec name[:k=v,...] (default: a rule-based and a learned set)")
    parser.add_argument("--budget-depth", type=float, action="append", help="controller budgets as fixed-depth costs (default 1 and 2)")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=10, help="draws of the parametric null and random subsets")
    parser.add_argument("--folds", type=int, default=5, help="cross-fitting folds of the predictability bound")
    parser.add_argument("--predictability-no-hidden", action="store_true",
                        help="leave the hidden summaries out of the predictability bound's inputs (faster)")
    parser.add_argument("--budget-points", type=int, default=11)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--no-progress", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = "python benchmarks/headroom_decomposition.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    started = time.perf_counter()
    try:
        entries = dataset_inputs(args)
        claim3 = dataset_inputs(args, "--claim3", args.claim3) if args.claim3 else []
        records: dict[str, dict[str, Any]] = {}
        results: dict[str, HeadroomDecomposition] = {}
        for entry in tqdm(entries, desc="datasets", disable=args.no_progress):
            records[entry.name], results[entry.name] = analyse(entry, args)
        write_results(args.out, STEM, command, records, results,
                      "Oracle headroom: depth or the label choosing among noisy copies?", time.perf_counter() - started)
        print(summary_table(records))
        if claim3:
            c_records: dict[str, dict[str, Any]] = {}
            c_results: dict[str, HeadroomDecomposition] = {}
            for entry in tqdm(claim3, desc="claim 3 models", disable=args.no_progress):
                c_records[entry.name], c_results[entry.name] = analyse(entry, args, controllers=False)
            text = claim3_table(c_records)
            write_results(args.out, f"{STEM}_claim3", command, c_records, c_results,
                          "Claim 3: is the higher ceiling of shallow training excess headroom or noise?",
                          time.perf_counter() - started, lead=text)
            print(text)
    except AdaptiveLoopError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out / STEM}.json, .md and .png in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
