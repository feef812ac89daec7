"""Streaming parquet vs in-memory data: peak memory and throughput on 10M generated rows.

Generates the embedded synthetic dataset (seq_len 20) chunk by chunk into parquet files
outside the repository (default /tmp/adaptive_loop_bench_streaming; reused when present),
then measures, each in a fresh process so that the peak resident set size (`ru_maxrss`)
belongs to that path alone:

- `stream` over all rows: encoder fitted on a streamed pass over the training rows
  (seeded per-row 80/10/10 split), one full read+validate+encode pass over every row,
  and training for a capped number of optimiser steps on the streamed, shuffled batches;
- the same on a 2M-row subset, to show the streaming peak does not grow with the data;
- `memory` (the in-memory pipeline: read, split, fit, encode everything, then train the
  same capped steps) on 1M and 2M rows; its data-phase peak grows linearly, and the slope
  gives the estimate for the full size (labelled as extrapolated: it is not run, it would
  not fit comfortably next to the other jobs on a shared machine).

    python benchmarks/bench_streaming.py [--rows 10000000] [--subset 2000000] [--train-steps 50]

Writes `benchmarks/results/bench_streaming.json` atomically. torch uses 1 thread.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "bench_streaming.json"
CHUNK_ROWS = 1_000_000
ROW_GROUP = 131_072
SEQ_LEN = 20
MODEL = {"name": "loopctr", "embed_dim": 4, "d_model": 16, "n_heads": 2, "ffn_mult": 2, "train_loops": 2,
         "tower_hidden": [32]}


def rss_mb() -> float:
    """Current resident set size (MB), from /proc (Linux)."""
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (MB; ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------- generation
def generate(folder: Path, rows: int, seed: int = 0) -> list[Path]:
    """Write `rows` synthetic rows as parquet files of 1M rows (row groups of 131072), unless present."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tqdm.auto import tqdm

    from adaptive_loop.data.datasets.synthetic import generate_synthetic

    manifest = folder / "manifest.json"
    expected = {"rows": rows, "seed": seed, "seq_len": SEQ_LEN, "chunk_rows": CHUNK_ROWS, "row_group": ROW_GROUP}
    n_files = -(-rows // CHUNK_ROWS)
    files = [folder / f"part-{i:05d}.parquet" for i in range(n_files)]
    if manifest.is_file() and json.loads(manifest.read_text()) == expected and all(f.is_file() for f in files):
        return files
    folder.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(tqdm(files, desc="generating parquet", unit="file")):
        n = min(CHUNK_ROWS, rows - i * CHUNK_ROWS)
        frame = generate_synthetic(n_rows=n, seed=seed, seq_len=SEQ_LEN, row_seed=i)
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=ROW_GROUP)
    manifest.write_text(json.dumps(expected))
    return files


# --------------------------------------------------------------------------- measurements
def _config(path: str, train_steps: int) -> Any:
    from adaptive_loop.config import load_config
    from adaptive_loop.data.datasets.synthetic import synthetic_schema

    config = load_config(None, [
        "data.dataset=parquet", f"data.path={path}", "data.options={extra_columns: [needed_depth]}",
        "train.epochs=1", "train.batch_size=1024", "train.eval_batch_size=1024", f"train.max_steps_per_epoch={train_steps}",
        "train.num_threads=1", "train.progress=false", "seed=0",
    ] + [f"model.{k}={json.dumps(v)}" for k, v in MODEL.items()])
    config.data.schema = synthetic_schema(SEQ_LEN).to_dict()
    return config


def measure_stream(files: list[str], train_steps: int, run_dir: str) -> dict[str, Any]:
    """Streamed fit, full read+encode pass and capped training over `files`."""
    import torch

    from adaptive_loop.data.schema import load_schema
    from adaptive_loop.data.streaming import ParquetSplit, iter_encoded_batches, prepare_streaming
    from adaptive_loop.training import Trainer

    torch.set_num_threads(1)
    base = rss_mb()
    config = _config(files[0], train_steps)
    out: dict[str, Any] = {"mode": "stream", "baseline_rss_mb": base}
    started = time.perf_counter()
    # what prepare_data does for `data.path` = these files with data.streaming=true
    data = prepare_streaming(load_schema(config.data.schema), seed=config.seed, path=files,
                             extra_columns=("needed_depth",), chunk_rows=config.data.stream_chunk_rows)
    rows = len(data.train) + len(data.valid) + len(data.test)
    seconds = time.perf_counter() - started
    out.update(rows=rows, fit_rows=len(data.train), fit_seconds=seconds, fit_rows_per_s=len(data.train) / seconds,
               peak_rss_after_fit_mb=peak_rss_mb())

    started = time.perf_counter()
    seen = 0
    for batch in iter_encoded_batches(files, data.encoder, batch_size=8192, extras=("needed_depth",)):
        seen += len(batch)
    seconds = time.perf_counter() - started
    out.update(read_encode_rows=seen, read_encode_seconds=seconds, read_encode_rows_per_s=seen / seconds,
               peak_rss_after_read_mb=peak_rss_mb())

    small_valid = ParquetSplit("valid", data.valid.groups[:1], data.encoder, extras=data.valid.extras,
                               selection=data.valid.selection)  # keep validation out of the timing
    trainer = Trainer(config, replace(data, valid=small_valid), run_dir, progress=False)
    started = time.perf_counter()
    record = trainer._run_epoch(0)  # noqa: SLF001 - one epoch, no checkpoint files needed
    out.update(train_steps=record.steps, train_samples_per_s=record.samples_per_second,
               train_epoch_seconds=time.perf_counter() - started, peak_rss_mb=peak_rss_mb())
    return out


def measure_memory(files: list[str], train_steps: int, run_dir: str) -> dict[str, Any]:
    """The in-memory pipeline on `files`: read all, split, fit, encode all, then capped training."""
    import pandas as pd
    import torch

    from adaptive_loop.data.datasets.base import random_split
    from adaptive_loop.data.datasets.synthetic import synthetic_schema
    from adaptive_loop.data.encoders import FeatureEncoder
    from adaptive_loop.data.pipeline import PreparedData
    from adaptive_loop.data.readers import read_table
    from adaptive_loop.training import Trainer

    torch.set_num_threads(1)
    base = rss_mb()
    config = _config(files[0], train_steps)
    started = time.perf_counter()
    frame = pd.concat([read_table(f) for f in files], ignore_index=True)  # the in-memory reader
    train, valid, test = random_split(frame, (0.8, 0.1, 0.1), seed=0)
    del frame
    schema = synthetic_schema(SEQ_LEN)
    encoder = FeatureEncoder(schema).fit(train)
    extras = ("needed_depth",)
    encoded = {name: encoder.transform(part, extras=extras) for name, part in
               (("train", train), ("valid", valid), ("test", test))}
    rows = len(train) + len(valid) + len(test)
    del train, valid, test
    seconds = time.perf_counter() - started
    out: dict[str, Any] = {"mode": "memory", "baseline_rss_mb": base, "rows": rows, "load_encode_seconds": seconds,
                           "read_encode_rows_per_s": rows / seconds, "peak_rss_after_encode_mb": peak_rss_mb()}
    data = PreparedData("parquet", encoded["train"], encoded["valid"].subset(slice(0, ROW_GROUP // 10)),
                        encoded["test"], encoder.feature_spec(), encoder, schema)
    trainer = Trainer(config, data, run_dir, progress=False)
    started = time.perf_counter()
    record = trainer._run_epoch(0)  # noqa: SLF001
    out.update(train_steps=record.steps, train_samples_per_s=record.samples_per_second,
               train_epoch_seconds=time.perf_counter() - started, peak_rss_mb=peak_rss_mb())
    return out


def in_subprocess(mode: str, files: list[Path], train_steps: int, run_dir: Path) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter (so its peak RSS is its own)."""
    args = [sys.executable, __file__, "--measure", mode, "--train-steps", str(train_steps), "--run-dir", str(run_dir),
            "--files", *map(str, files)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(args, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{mode} measurement failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows to generate (default 10M)")
    parser.add_argument("--subset", type=int, default=2_000_000, help="rows of the smaller comparison runs")
    parser.add_argument("--train-steps", type=int, default=50, help="optimiser steps timed per training run")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/adaptive_loop_bench_streaming"))
    parser.add_argument("--measure", choices=["stream", "memory"], help=argparse.SUPPRESS)
    parser.add_argument("--files", nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        fn = measure_stream if args.measure == "stream" else measure_memory
        print(json.dumps(fn(args.files, args.train_steps, args.run_dir)))
        return

    from adaptive_loop.io import write_json

    files = generate(args.workdir / "data", args.rows)
    subset = files[: max(1, args.subset // CHUNK_ROWS)]
    half = files[: max(1, len(subset) // 2)]
    runs: dict[str, Any] = {}
    for name, mode, chosen in (("stream_full", "stream", files), ("stream_subset", "stream", subset),
                               ("memory_subset", "memory", subset), ("memory_half_subset", "memory", half)):
        print(f"measuring {name}: {mode} over {len(chosen)} file(s) ...", flush=True)
        runs[name] = in_subprocess(mode, chosen, args.train_steps, args.workdir / f"run_{name}")
        r = runs[name]
        data_peak = r.get("peak_rss_after_read_mb", r.get("peak_rss_after_encode_mb"))
        print(f"  rows {r['rows']:,}  peak RSS data phase {data_peak:.0f} MB, with training {r['peak_rss_mb']:.0f} MB  "
              f"read+encode {r['read_encode_rows_per_s']:,.0f} rows/s  training {r['train_samples_per_s']:,.0f} samples/s",
              flush=True)

    full, part = runs["stream_full"], runs["stream_subset"]
    small, big = runs["memory_half_subset"], runs["memory_subset"]
    # the data phase (read, split, fit, encode) is what grows with rows; training adds a fixed
    # amount for the model's activations and, when streaming, the shuffle buffer
    slope = (big["peak_rss_after_encode_mb"] - small["peak_rss_after_encode_mb"]) / max(big["rows"] - small["rows"], 1)
    summary = {
        "rows": full["rows"],
        "stream_data_peak_rss_mb": full["peak_rss_after_read_mb"],
        "stream_data_peak_rss_mb_subset": part["peak_rss_after_read_mb"],
        "stream_peak_rss_mb_with_training": full["peak_rss_mb"],
        "stream_peak_rss_mb_with_training_subset": part["peak_rss_mb"],
        "memory_data_peak_rss_mb_subset": big["peak_rss_after_encode_mb"],
        "memory_data_peak_rss_mb_half_subset": small["peak_rss_after_encode_mb"],
        "memory_data_rss_mb_per_million_rows": slope * 1e6,
        "memory_data_peak_rss_mb_full_extrapolated": big["peak_rss_after_encode_mb"] + slope * (full["rows"] - big["rows"]),
        "memory_peak_rss_mb_with_training_subset": big["peak_rss_mb"],
        "stream_fit_rows_per_s": full["fit_rows_per_s"],
        "stream_read_encode_rows_per_s": full["read_encode_rows_per_s"],
        "stream_prepare_rows_per_s": full["rows"] / (full["fit_seconds"] + full["read_encode_seconds"]),
        "memory_prepare_rows_per_s_subset": big["read_encode_rows_per_s"],
        "stream_train_samples_per_s": full["train_samples_per_s"],
        "memory_train_samples_per_s_subset": big["train_samples_per_s"],
    }
    payload = {
        "benchmark": "bench_streaming",
        "command": "python benchmarks/bench_streaming.py " + " ".join(sys.argv[1:]),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "settings": {"rows": args.rows, "subset": args.subset, "train_steps": args.train_steps, "seq_len": SEQ_LEN,
                     "row_group": ROW_GROUP, "model": MODEL, "torch_threads": 1},
        "summary": summary,
        "runs": runs,
        "notes": "peak RSS = ru_maxrss of a fresh process per run (includes ~350 MB of imports, see baseline_rss_mb). "
                 "'data' peaks are taken after the data phase (stream: streamed encoder fit + one read/encode pass "
                 "over every row; memory: read, split, fit and encode everything); 'with training' adds the timed "
                 "training steps (model activations, and the shuffle buffer when streaming). "
                 "memory_data_peak_rss_mb_full_extrapolated is linear in rows from the two in-memory runs, not "
                 "measured. stream_prepare_rows_per_s = rows / (fit pass + encode pass), comparable to the in-memory "
                 "read+split+fit+encode rate. The machine is shared: throughputs vary +-25% between runs.",
    }
    write_json(RESULTS, payload)
    print(json.dumps(summary, indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
