"""Training and scoring speed of LoopCTR as a share of this machine's speed, and peak memory of a CSV run.

One command measures, in one run and with one thread setting (`--threads`, default 2):

1. this machine's dense-matmul GFLOP/s: a float32 1024 x 1024 x 1024 matmul, median over
   repeats, taken before and after the training measurements (the reference is the median
   of both sets);
2. LoopCTR(L=3) training with the built-in `frappe_x1` and `movielens_100k` configs: the real
   trainer (`adaptive_loop.training.Trainer`, its batch size, AdamW, gradient clipping) timed
   step by step (median step time after warm-up steps; batch assembly included). Training
   GFLOP/s = samples/s x training FLOPs per sample, where the training FLOPs are the
   analytic forward FLOPs at every depth 0..L as trained (Entry + L Loop steps + L + 1 Exit
   evaluations) times 3 for forward plus backward (the usual rule; matmul FLOPs only, the
   convention of `adaptive_loop.model.flops`);
3. scoring at batch 4,096 (the first 4,096 validation rows): LoopCTR at depth L (Entry, L Loop
   steps, one Exit) and DCNv2 built from the same config and feature spec, both in eval mode
   under `torch.inference_mode()`, timed in alternation; GFLOP/s = rows/s x analytic FLOPs
   per row (`model.flops().at_depth`);
4. peak resident memory of `adaptive-loop train` and of `adaptive-loop evaluate --split test`
   on a generated CSV (190,000 rows: 4 categorical fields, a 30-event item history column, a
   label; split 60/20/20; the movielens_100k model sizes; one training epoch), each command
   run as its own subprocess under a small wrapper that reports `getrusage(RUSAGE_CHILDREN)`
   of that command alone; and the same training with `train.train_memory_mb` set
   (`--train-memory-mb`, default 256: micro-batches, `adaptive_loop.training.micro_batches`),
   with both trainings' wall seconds side by side.

It writes `benchmarks/results/bench_throughput.json` (atomically) with the summary keys
`train_gflops_ratio_to_matmul` {"frappe_x1", "movielens_100k"}, `score_gflops_ratio_to_dcnv2`
(the smaller of the two configs' LoopCTR / DCNv2 scoring GFLOP/s ratios; both are listed
under `scoring`), and `peak_rss_mb` {"train", "evaluate", "train_within_budget"}, next to the raw figures they come
from. `--quick` makes every measurement smaller (fewer steps and repeats, a 6,000-row CSV
trained for one step) with the same definitions, finishing in about 90 seconds, and writes to
`--out`.

    python benchmarks/bench_throughput.py [--threads 2] [--quick] [--out PATH]

Timings on a shared CPU are noisy (+-25%; with other processes competing for the cores, two
threads can be many times slower than one): compare figures from one run only, and look at
the load average the JSON records. Needs the
frappe_x1 and movielens_100k datasets (found as for `adaptive-loop train`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import yaml

from adaptive_loop.config import RunConfig, load_config, resolve_config
from adaptive_loop.data.pipeline import PreparedData, prepare_data
from adaptive_loop.io import write_json
from adaptive_loop.model import ModelConfig, build_model, config_from_dict, own_keys
from adaptive_loop.reproduce.throughput import matmul_rate, measure_training

RESULTS = Path(__file__).resolve().parent / "results" / "bench_throughput.json"
CONFIGS = ("frappe_x1", "movielens_100k")
SCORE_BATCH = 4096
TRAIN_FLOPS_NOTE = (
    "training FLOPs per sample = 3 x forward FLOPs at every depth 0..L as trained (Entry + L Loop steps + "
    "(L + 1) Exit evaluations); 3 = forward + backward (backward counted as 2x forward); matmul FLOPs only"
)


@dataclass(frozen=True)
class Plan:
    """How much to measure (full or --quick)."""

    matmul_repeats: int
    train_steps: int
    train_warmup: int
    score_repeats: int
    csv_rows: int
    csv_max_steps: int  # 0 = one whole epoch


FULL = Plan(matmul_repeats=15, train_steps=30, train_warmup=5, score_repeats=7, csv_rows=190_000, csv_max_steps=0)
# --quick trains the CSV for one step, which keeps it under 90 s on a 2-core CPU; one step peaks
# lower than several, so quick memory figures understate the full run's (the README says by how
# much). Three timed steps per config keep an odd count for the median.
QUICK = Plan(matmul_repeats=5, train_steps=3, train_warmup=1, score_repeats=3, csv_rows=6_000, csv_max_steps=1)


# --------------------------------------------------------------------------- training
def run_config(name: str, threads: int) -> RunConfig:
    """A built-in config with the benchmark's thread count and no progress bars."""
    return load_config(resolve_config(name), [f"train.num_threads={threads}", "train.progress=false"])


def training_flops(config: RunConfig, data: PreparedData) -> tuple[float, float]:
    """(forward FLOPs per sample over depths 0..L as trained, training FLOPs per sample = 3 x that)."""
    flops = build_model(config.model, data.spec).flops()
    loops = config.model.train_loops
    forward = flops.entry + loops * flops.loop + (loops + 1) * flops.exit
    return float(forward), 3.0 * float(forward)


def measure_train(config: RunConfig, data: PreparedData, plan: Plan) -> dict[str, Any]:
    """Median step time of the real trainer, samples/s and GFLOP/s."""
    seconds, steps = measure_training(config, data, steps=plan.train_steps, warmup=plan.train_warmup)
    forward, train = training_flops(config, data)
    samples = config.train.batch_size / seconds
    return {
        "batch_size": config.train.batch_size,
        "measured_steps": steps,
        "warmup_steps": plan.train_warmup,
        "seconds_per_step": seconds,
        "samples_per_s": samples,
        "forward_flops_per_sample_all_depths": forward,
        "train_flops_per_sample": train,
        "train_gflops": samples * train / 1e9,
    }


# --------------------------------------------------------------------------- scoring
def scorer(model: torch.nn.Module, batch: Any, depth: int) -> Callable[[], torch.Tensor]:
    """Fixed-depth scoring as a server runs it: Entry, `depth` Loop steps, one Exit."""

    def run() -> torch.Tensor:
        with torch.inference_mode():
            state = model.enter(batch)
            for _ in range(depth):
                state = model.loop_step(state)
            return model.exit(state)

    return run


def alternate_medians(fns: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1) -> dict[str, float]:
    """Median wall seconds of each callable, timed in alternation."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in times.items()}


def dcnv2_config(loopctr: ModelConfig) -> ModelConfig:
    """DCNv2 with the keys every model shares taken from the LoopCTR config (embedding width, dropout, init)."""
    return config_from_dict(own_keys({**loopctr.to_dict(), "name": "dcnv2", "train_loops": 0}))


def measure_scoring(config: RunConfig, data: PreparedData, plan: Plan) -> dict[str, Any]:
    """Scoring GFLOP/s of LoopCTR at depth L and of DCNv2, batch 4,096, same spec and config sizes."""
    batch = data.valid.to_batch(slice(0, min(SCORE_BATCH, len(data.valid))))
    torch.manual_seed(config.seed)
    loopctr = build_model(config.model, data.spec).eval()
    dcnv2 = build_model(dcnv2_config(config.model), data.spec).eval()
    depth = config.model.train_loops
    seconds = alternate_medians({"loopctr": scorer(loopctr, batch, depth), "dcnv2": scorer(dcnv2, batch, 0)},
                                plan.score_repeats)
    out: dict[str, Any] = {"batch_size": len(batch), "loopctr_depth": depth}
    for name, model, d in (("loopctr", loopctr, depth), ("dcnv2", dcnv2, 0)):
        flops = float(model.flops().at_depth(d))
        rows = len(batch) / seconds[name]
        out[name] = {"seconds": seconds[name], "rows_per_s": rows, "flops_per_row": flops, "gflops": rows * flops / 1e9}
    out["gflops_ratio_loopctr_to_dcnv2"] = out["loopctr"]["gflops"] / out["dcnv2"]["gflops"]
    return out


# --------------------------------------------------------------------------- peak memory of a CSV run
def write_csv(path: Path, rows: int, history: int = 30, seed: int = 0) -> None:
    """A click log: user, item, category, hour, a `|`-separated history of up to `history` items, a label."""
    rng = np.random.default_rng(seed)
    n_users, n_items, n_cats = 6_000, 3_000, 20
    user = rng.integers(0, n_users, rows)
    item = np.minimum(rng.zipf(1.3, rows), n_items) - 1
    category = item % n_cats
    hour = rng.integers(0, 24, rows)
    taste = rng.integers(0, n_cats, n_users)  # each user's favourite category drives the label
    lengths = rng.integers(0, history + 1, rows)
    events = np.minimum(rng.zipf(1.3, (rows, history)), n_items) - 1
    hist = ["|".join(map(str, events[i, : lengths[i]])) for i in range(rows)]
    logit = -1.0 + 2.0 * (category == taste[user]) + 0.3 * np.sin(hour / 4.0)
    label = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))).astype(int)
    import pandas as pd

    pd.DataFrame({"user": user, "item": item, "category": category, "hour": hour, "hist": hist,
                  "label": label}).to_csv(path, index=False)


def csv_run_config(csv: Path, threads: int, plan: Plan) -> dict[str, Any]:
    """A run config for the CSV with the model and train sizes of the built-in movielens_100k config."""
    base = run_config("movielens_100k", threads)
    train = {"epochs": 1, "batch_size": base.train.batch_size, "lr": base.train.lr, "num_threads": threads,
             "progress": False, "max_steps_per_epoch": plan.csv_max_steps}
    return {
        "seed": 0,
        "data": {
            "dataset": "csv",
            "path": str(csv),
            "options": {"split": "random", "fractions": [0.6, 0.2, 0.2]},
            "schema": {
                "label": "label",
                "group": "user",
                "categorical": ["user", "item", "category", "hour"],
                "sequences": [{"name": "hist", "max_len": 30, "vocab_from": "item"}],
            },
        },
        "model": json.loads(json.dumps(dataclasses.asdict(base.model))),  # tuples -> lists for YAML
        "train": train,
    }


_WRAPPER = (
    "import json, resource, subprocess, sys, time\n"
    "start = time.perf_counter()\n"
    "code = subprocess.run(sys.argv[1:]).returncode\n"
    "print(json.dumps({'returncode': code, 'seconds': time.perf_counter() - start,\n"
    "                  'maxrss_kb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))\n"
)


def peak_rss(command: list[str], folder: Path) -> dict[str, Any]:
    """Run `command` in a wrapper process; its peak RSS (MB, Linux ru_maxrss is in KiB) and wall seconds.

    The recorded command names the temporary `folder` as `<tmp>`: result files name no machine paths.
    """
    done = subprocess.run([sys.executable, "-c", _WRAPPER, *command], capture_output=True, text=True)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    report = json.loads(lines[-1])
    if report["returncode"] != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {report['returncode']}:\n{done.stderr[-3000:]}")
    shown = ["python" if arg == sys.executable else arg.replace(str(folder), "<tmp>") for arg in command]
    return {"peak_rss_mb": report["maxrss_kb"] / 1024.0, "seconds": report["seconds"], "command": shown}


def measure_csv_memory(threads: int, plan: Plan, train_memory_mb: float) -> dict[str, Any]:
    """Peak RSS of `adaptive-loop train` (whole batches, then within `train_memory_mb`) and `evaluate` on a generated CSV."""
    cli = [sys.executable, "-m", "adaptive_loop.cli"]
    with tempfile.TemporaryDirectory(prefix="adaptive-loop-bench-") as tmp:
        folder = Path(tmp)
        csv = folder / "clicks.csv"
        write_csv(csv, plan.csv_rows)
        config = folder / "config.yaml"
        config.write_text(yaml.safe_dump(csv_run_config(csv, threads, plan), sort_keys=False), encoding="utf-8")
        run_dir = folder / "run"
        train = peak_rss([*cli, "train", "--config", str(config), "--run-dir", str(run_dir), "--no-progress"], folder)
        evaluate = peak_rss([*cli, "evaluate", "--run", str(run_dir), "--split", "test", "--no-progress",
                             "--out", str(folder / "eval")], folder)
        within = peak_rss([*cli, "train", "--config", str(config), "--run-dir", str(folder / "run_within_budget"),
                           "--no-progress", "--set", f"train.train_memory_mb={train_memory_mb}"], folder)
        csv_mb = csv.stat().st_size / 2**20
    return {"csv_rows": plan.csv_rows, "csv_mb": csv_mb, "history_len": 30, "categorical_fields": 4,
            "split": [0.6, 0.2, 0.2], "train_max_steps": plan.csv_max_steps or "one epoch",
            "train": train, "evaluate": evaluate, "train_within_budget": {**within, "train_memory_mb": train_memory_mb}}


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads everywhere (default 2)")
    parser.add_argument("--train-memory-mb", type=float, default=256.0,
                        help="train.train_memory_mb of the second CSV training (default 256)")
    parser.add_argument("--quick", action="store_true", help="smaller measurements, same definitions (about 90 seconds)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON file to write (default benchmarks/results/bench_throughput.json)")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    started = time.perf_counter()
    load_before = os.getloadavg()
    torch.set_num_threads(args.threads)

    before = [matmul_rate(1024, 1024, 1024, repeats=plan.matmul_repeats)]
    train: dict[str, Any] = {}
    scoring: dict[str, Any] = {}
    for name in CONFIGS:
        config = run_config(name, args.threads)
        data = prepare_data(config.data, seed=config.seed, show_progress=False)
        train[name] = measure_train(config, data, plan)
        torch.set_num_threads(args.threads)
        scoring[name] = measure_scoring(config, data, plan)
        print(f"{name}: training {train[name]['samples_per_s']:,.0f} samples/s = {train[name]['train_gflops']:.2f} "
              f"GFLOP/s; scoring LoopCTR {scoring[name]['loopctr']['gflops']:.2f} vs DCNv2 "
              f"{scoring[name]['dcnv2']['gflops']:.2f} GFLOP/s", flush=True)
    after = [matmul_rate(1024, 1024, 1024, repeats=plan.matmul_repeats)]
    matmul = statistics.median(m.gflops for m in before + after)
    memory = measure_csv_memory(args.threads, plan, args.train_memory_mb)

    payload = {
        "train_gflops_ratio_to_matmul": {name: train[name]["train_gflops"] / matmul for name in CONFIGS},
        "score_gflops_ratio_to_dcnv2": min(scoring[name]["gflops_ratio_loopctr_to_dcnv2"] for name in CONFIGS),
        "peak_rss_mb": {"train": memory["train"]["peak_rss_mb"], "evaluate": memory["evaluate"]["peak_rss_mb"],
                        "train_within_budget": memory["train_within_budget"]["peak_rss_mb"]},
        "matmul": {"shape": [1024, 1024, 1024], "gflops": matmul,
                   "runs": [dataclasses.asdict(m) for m in before + after]},
        "training": train,
        "training_flops": TRAIN_FLOPS_NOTE,
        "scoring": scoring,
        "scoring_note": "score_gflops_ratio_to_dcnv2 is the smaller of the two configs' LoopCTR/DCNv2 ratios",
        "memory": memory,
        "setup": {"threads": args.threads, "quick": args.quick, "plan": dataclasses.asdict(plan),
                  "torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
                  "cpus": os.cpu_count(), "load_average_1_5_15min": {"start": load_before, "end": os.getloadavg()},
                  "command": "python benchmarks/bench_throughput.py " + " ".join(sys.argv[1:] if argv is None else argv)},
        "seconds": time.perf_counter() - started,
    }
    write_json(args.out, payload)
    print(f"dense matmul {matmul:.1f} GFLOP/s ({args.threads} threads); {TRAIN_FLOPS_NOTE}")
    for name in CONFIGS:
        print(f"train_gflops_ratio_to_matmul[{name}] = {payload['train_gflops_ratio_to_matmul'][name]:.3f}; "
              f"score ratio LoopCTR/DCNv2 = {scoring[name]['gflops_ratio_loopctr_to_dcnv2']:.3f}")
    print(f"score_gflops_ratio_to_dcnv2 = {payload['score_gflops_ratio_to_dcnv2']:.3f}")
    print(f"peak RSS ({memory['csv_rows']:,}-row CSV): train {memory['train']['peak_rss_mb']:.0f} MB, "
          f"evaluate {memory['evaluate']['peak_rss_mb']:.0f} MB; train with train.train_memory_mb="
          f"{args.train_memory_mb:g} {memory['train_within_budget']['peak_rss_mb']:.0f} MB "
          f"({memory['train_within_budget']['seconds']:.0f} s against {memory['train']['seconds']:.0f} s)")
    print(f"wrote {args.out} in {payload['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
