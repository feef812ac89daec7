"""Short training runs for choosing a training recipe on the validation split, logged to one table.

Each call trains one config (a built-in config name or a YAML path, plus `--set` overrides)
into `runs/recipe/<dataset>/<name>/`, then appends one record to
`benchmarks/results/recipe_exploration.jsonl` and rewrites the run table of
`benchmarks/results/recipe_exploration.md` (between its `runs:start` / `runs:end` markers;
the prose around them is kept). A record holds the config diff, the best epoch, validation
AUC and logloss at every trained depth at that epoch, the learning rate per epoch and the
wall time. Test metrics are computed only with `--test` (for final candidates: choices
are made on validation).

    python benchmarks/recipe_exploration.py --config dcnv2_frappe_x1 --name dcn_bars --note "BARS recipe"
    python benchmarks/recipe_exploration.py --config frappe_x1 --name loop_l2_0.05 \\
        --set train.embedding_l2=0.05 --set train.max_steps_per_epoch=20
    python benchmarks/recipe_exploration.py --report-only

Training uses one torch thread unless `--set train.num_threads=...` says otherwise.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from adaptive_loop.config import load_config, resolve_config
from adaptive_loop.data.pipeline import prepare_data
from adaptive_loop.io import write_text
from adaptive_loop.runs import load_run
from adaptive_loop.training import per_depth_metrics, predict_depths, train

RESULTS = Path(__file__).resolve().parent / "results"
LOG = RESULTS / "recipe_exploration.jsonl"
TABLE = RESULTS / "recipe_exploration.md"
START, END = "<!-- runs:start -->", "<!-- runs:end -->"
# The BARS recipe as overrides on a LoopCTR config; the table writes it as `R`.
RECIPE = ("train.optimizer=adam", "train.weight_decay=0", "train.embedding_l2=0.05", "train.lr_schedule=plateau",
          "train.patience=2", "train.min_delta=0.000001", "train.batch_size=4096", "train.lr=0.001",
          "train.grad_clip=10", "train.epochs=30")


def run_one(args: argparse.Namespace) -> dict[str, Any]:
    """Train one config and return its log record."""
    overrides = ["train.num_threads=1", "train.progress=false"] + list(args.set or [])
    path = resolve_config(args.config)
    config = load_config(path, overrides)
    run_dir = Path(args.runs_root) / config.data.dataset / args.name
    if run_dir.exists():
        if not args.overwrite:
            raise SystemExit(f"error: {run_dir} exists; pass --overwrite or another --name")
        shutil.rmtree(run_dir)
    data = prepare_data(config.data, seed=config.seed, show_progress=False)
    started = time.perf_counter()
    result = train(config, run_dir, data=data, progress=False)
    seconds = time.perf_counter() - started
    best = result.history[[r.epoch for r in result.history].index(result.best_epoch)]
    record: dict[str, Any] = {
        "name": args.name,
        "dataset": config.data.dataset,
        "model": config.model.name,
        "config": args.config,
        "overrides": list(args.set or []),
        "note": args.note or "",
        "seed": config.seed,
        "train_loops": config.model.train_loops,
        "best_epoch": result.best_epoch + 1,
        "epochs_run": len(result.history),
        "stopped_early": result.stopped_early,
        "valid_auc": [round(a, 5) for a in best.valid_auc],
        "valid_logloss": [round(v, 5) for v in best.valid_logloss],
        "valid_auc_by_epoch": [round(r.monitor, 5) for r in result.history],
        "valid_logloss_at_L_by_epoch": [round(r.valid_logloss[-1], 5) for r in result.history],
        "train_bce_by_epoch": [round(r.train_bce, 5) for r in result.history],
        "lr_by_epoch": [r.lr for r in result.history],
        "seconds": round(seconds, 1),
        "seconds_per_epoch": round(float(np.mean([r.seconds for r in result.history])), 1),
    }
    if args.test:
        record.update(test_metrics(run_dir, data.test, config.train.eval_batch_size))
    return record


def test_metrics(run_dir: Path, test, batch_size: int) -> dict[str, list[float]]:
    """Test AUC and logloss at depths 0..L of a run's best checkpoint."""
    run = load_run(run_dir, checkpoint="best")
    logits, _ = predict_depths(run.model, test, run.model.train_loops, batch_size)
    rows = per_depth_metrics(test.labels, logits, run.model.flops(), split="test")
    return {"test_auc": [round(r.auc, 5) for r in rows], "test_logloss": [round(r.logloss, 5) for r in rows]}


def add_test(name: str, dataset: str, runs_root: str) -> dict[str, Any]:
    """Evaluate a finished run's best checkpoint on test and store the numbers in its log record."""
    run_dir = Path(runs_root) / dataset / name
    run = load_run(run_dir, checkpoint="best")
    data = prepare_data(run.config.data, seed=run.config.seed, show_progress=False)
    metrics = test_metrics(run_dir, data.test, run.config.train.eval_batch_size)
    with open(LOG, "r+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        records = [json.loads(line) for line in handle.read().splitlines() if line.strip()]
        hits = [r for r in records if r["name"] == name and r["dataset"] == dataset]
        if not hits:
            raise SystemExit(f"error: no record named {name!r} for {dataset} in {LOG}")
        hits[-1].update(metrics)
        handle.seek(0)
        handle.truncate()
        handle.write("".join(json.dumps(r) + "\n" for r in records))
        fcntl.flock(handle, fcntl.LOCK_UN)
    return {"name": name, **metrics}


def append_record(record: dict[str, Any]) -> None:
    """Append one JSON line under an exclusive lock (several runs may finish at once)."""
    LOG.parent.mkdir(parents=True, exist_ok=True)
    with open(LOG, "a", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.write(json.dumps(record) + "\n")
        handle.flush()
        fcntl.flock(handle, fcntl.LOCK_UN)


def load_records() -> list[dict[str, Any]]:
    if not LOG.exists():
        return []
    return [json.loads(line) for line in LOG.read_text(encoding="utf-8").splitlines() if line.strip()]


def _fmt(values: list[float] | None) -> str:
    if not values:
        return ""
    return " / ".join(f"{v:.4f}" for v in values)


def render_table(records: list[dict[str, Any]]) -> str:
    """One markdown table per dataset, runs in the order they finished."""
    out = []
    for dataset in sorted({r["dataset"] for r in records}):
        out.append(f"\n### {dataset}\n")
        out.append("| # | run | model | config diff | best ep / run | valid AUC (depth 0..L) | valid logloss (depth 0..L) "
                   "| test AUC | test logloss | s/epoch | note |")
        out.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for i, r in enumerate((r for r in records if r["dataset"] == dataset), start=1):
            diff = "<br>".join(f"`{o}`" for o in _compact(r["overrides"])) or "-"
            out.append(
                f"| {i} | {r['name']} | {r['model']} (`{r['config']}`) | {diff} | {r['best_epoch']} / {r['epochs_run']} "
                f"| {_fmt(r['valid_auc'])} | {_fmt(r['valid_logloss'])} | {_fmt(r.get('test_auc'))} "
                f"| {_fmt(r.get('test_logloss'))} | {r['seconds_per_epoch']} | {r.get('note', '')} |"
            )
    return "\n".join(out) + "\n"


def _compact(overrides: list[str]) -> list[str]:
    """Overrides with the whole BARS recipe block written as `R` (a later override of the same key wins)."""
    if not all(o in overrides for o in RECIPE):
        return overrides
    rest = [o for o in overrides if o not in RECIPE]
    return ["R"] + rest


def write_table() -> None:
    """Rewrite the run table between the markers of the markdown file (creating the file if needed)."""
    table = render_table(load_records())
    text = TABLE.read_text(encoding="utf-8") if TABLE.exists() else f"# Training-recipe exploration\n\n{START}\n{END}\n"
    if START not in text or END not in text:
        text = text.rstrip() + f"\n\n{START}\n{END}\n"
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    with open(LOG.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        write_text(TABLE, f"{head}{START}\n{table}{END}{tail}")
        fcntl.flock(lock, fcntl.LOCK_UN)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="built-in config name or YAML path")
    parser.add_argument("--name", help="run name (folder under runs/recipe/<dataset>/)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override (repeatable)")
    parser.add_argument("--note", default="", help="free text for the table")
    parser.add_argument("--test", action="store_true", help="also evaluate the best checkpoint on the test split")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run folder of the same name")
    parser.add_argument("--runs-root", default="runs/recipe")
    parser.add_argument("--report-only", action="store_true", help="only rewrite the markdown table from the log")
    parser.add_argument("--add-test", metavar="DATASET",
                        help="evaluate the finished run --name of DATASET on test and add it to its record")
    args = parser.parse_args(argv)
    if args.add_test:
        if not args.name:
            parser.error("--add-test needs --name")
        print(add_test(args.name, args.add_test, args.runs_root))
    elif not args.report_only:
        if not args.config or not args.name:
            parser.error("--config and --name are required unless --report-only")
        record = run_one(args)
        append_record(record)
        print(yaml.safe_dump(record, sort_keys=False, width=200))
    write_table()
    return 0


if __name__ == "__main__":
    sys.exit(main())
