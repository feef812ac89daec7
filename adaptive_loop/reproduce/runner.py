"""Run the whole reproduction benchmark for one dataset: cells, throughput, aggregation, reports.

The data is prepared once and shared by every cell, so all models see the same split and
encoders. Cells run seed by seed (every variant with the first seed, then the second, ...),
so an interrupted run already holds a complete one-seed picture. Rerunning the same command
skips finished cells and resumes unfinished ones; `--report-only` rebuilds the reports from
the finished cells without training.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from tqdm.auto import tqdm

from adaptive_loop.data.pipeline import PreparedData
from adaptive_loop.errors import AdaptiveLoopError, ConfigError
from adaptive_loop.io import write_json, write_text
from adaptive_loop.reproduce.aggregate import VariantSummary, summarize_variant
from adaptive_loop.reproduce.cells import CellResult, load_finished, run_cell
from adaptive_loop.reproduce.claims import check_claims
from adaptive_loop.reproduce.report import (
    BARS_NOTE,
    BARS_TEST_AUC,
    TARGET_AUC,
    markdown_report,
    plot_headroom,
    plot_loop_scaling,
)
from adaptive_loop.reproduce.settings import BenchmarkSettings, base_config_path
from adaptive_loop.reproduce.throughput import ThroughputResult, measure_throughput, profile_training
from adaptive_loop.reproduce.variants import MAIN_VARIANT, VARIANTS, Variant, resolve_variants

DEFAULT_RESULTS = Path("benchmarks") / "results"
THROUGHPUT_FILE = "throughput.json"
PROFILE_FILE = "profile_train_step_{dataset}.txt"  # one per dataset, so runs on two datasets do not overwrite


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `python benchmarks/reproduce.py`."""
    parser = argparse.ArgumentParser(
        prog="python benchmarks/reproduce.py",
        description="Reproduce the LoopCTR paper's claims on one dataset: baselines, the loop-scaling grid, "
        "oracle headroom and ablations, with several seeds; resumable.",
    )
    parser.add_argument("--dataset", required=True, help="frappe_x1, movielens_100k, synthetic, ... (results file stem)")
    parser.add_argument("--config", help="base config (file or built-in name); default: the built-in <dataset> config")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a base config key for every variant (repeatable; marks the run as reduced)")
    parser.add_argument("--seeds", type=int, default=3, help="model seeds per variant (default 3)")
    parser.add_argument("--variants", default=None,
                        help="comma-separated variant names or groups (baselines, scaling, ablations, all); default all: "
                        + ", ".join(VARIANTS))
    parser.add_argument("--epochs", type=int, help="override train.epochs (early stopping still applies)")
    parser.add_argument("--max-train-rows", type=int, help="subsample the training split (quick runs; labelled reduced)")
    parser.add_argument("--max-depth", type=int, default=6, help="deepest inference depth K of the grid (default 6)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per training (default 1: shared machine)")
    parser.add_argument("--shared-baseline-config", action="store_true",
                        help="train DeepFM and DCNv2 on the LoopCTR base config instead of their own tuned "
                             "<model>_<dataset> configs")
    parser.add_argument("--out-root", type=Path, help="run directories (default runs/reproduce/<dataset>[_<tag>])")
    parser.add_argument("--data-root", help="folder holding the public datasets")
    parser.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS,
                        help="where the JSON, markdown, figures and profile go (default benchmarks/results)")
    parser.add_argument("--tag", help="suffix of the run directories, archive and result files "
                        "(reproduce_<dataset>_<tag>.*); default: none for the full benchmark, 'reduced' for a "
                        "smaller run (its cells keep the full grid's folders when only seeds or variants are left out)")
    parser.add_argument("--archive", type=Path,
                        help="folder keeping every finished cell's result.json, so that a fresh checkout resumes the "
                             "grid (default <results-dir>/reproduce_<dataset>[_<tag>]_cells)")
    parser.add_argument("--skip-throughput", action="store_true", help="do not measure training throughput")
    parser.add_argument("--throughput-steps", type=int, default=30, help="timed training steps (default 30, after 5 warm-up)")
    parser.add_argument("--report-only", action="store_true", help="only rebuild the reports from finished cells")
    parser.add_argument("--shard", type=parse_shard, metavar="K/N",
                        help="train only the K-th of every N cells (K = 1..N), so that N processes share the grid "
                             "without ever taking the same cell; no report is written (use --report-only when all are done)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return parser


def parse_shard(text: str) -> tuple[int, int]:
    """`"K/N"` -> (K, N) with 1 <= K <= N (otherwise a usage error that says so)."""
    k, sep, n = text.partition("/")
    if not sep or not k.strip().isdigit() or not n.strip().isdigit() or not 1 <= int(k) <= int(n):
        raise argparse.ArgumentTypeError(f"expected K/N with 1 <= K <= N, got {text!r}")
    return int(k), int(n)


@dataclasses.dataclass
class BenchmarkOutput:
    """Where the reports went and what they hold."""

    json_path: Path
    markdown_path: Path
    payload: dict[str, Any]


def prepare_benchmark_data(settings: BenchmarkSettings, progress: bool = True) -> PreparedData:
    """The one prepared dataset every cell trains on (training split subsampled if asked, seeded)."""
    from adaptive_loop.data.pipeline import prepare_data

    base = settings.base
    data = prepare_data(base.data, seed=base.seed, show_progress=progress)
    if not isinstance(data, PreparedData):
        raise ConfigError("the reproduction benchmark needs an in-memory dataset (set data.streaming=false)")
    if settings.max_train_rows is not None and settings.max_train_rows < len(data.train):
        rows = np.sort(np.random.default_rng(base.seed).choice(len(data.train), settings.max_train_rows, replace=False))
        data = dataclasses.replace(data, train=data.train.subset(rows))
    return data


def run_cells(settings: BenchmarkSettings, variants: list[Variant], data: PreparedData, out_root: Path,
              progress: bool = True, shard: tuple[int, int] = (1, 1),
              archive: Path | None = None) -> dict[str, list[CellResult]]:
    """Train / resume / reuse every (variant, seed) cell, seed-major; returns results by variant.

    `shard` (K, N) keeps the K-th of every N cells of that order: N processes with shards
    1/N .. N/N train disjoint cells of the same grid. Finished results are kept in `archive`
    too, and reused from there on a machine that never ran the cell.
    """
    k, n = shard
    cells = [(seed, v) for seed in settings.seeds for v in variants][k - 1 :: n]
    results: dict[str, list[CellResult]] = {v.name: [] for v in variants}
    bar = tqdm(cells, desc="cells", unit="cell", disable=not progress)
    for seed, variant in bar:
        bar.set_description(f"{variant.name} seed {seed}")

        def on_epoch(epoch: int, record: Any, _bar: Any = bar) -> None:
            _bar.set_postfix(epoch=epoch + 1, valid_auc=f"{record.monitor:.4f}", s=f"{record.seconds:.0f}")

        result, reused = run_cell(variant, seed, settings, data, out_root, on_epoch=on_epoch, archive=archive)
        if reused:
            bar.set_postfix(status="done earlier")
        results[variant.name].append(result)
    return results


def finished_cells(settings: BenchmarkSettings, variants: list[Variant], out_root: Path,
                   archive: Path | None = None) -> dict[str, list[CellResult]]:
    """Results of the cells that finished, here or in `archive` (for --report-only); archives the new ones."""
    out: dict[str, list[CellResult]] = {v.name: [] for v in variants}
    for seed in settings.seeds:
        for v in variants:
            result = load_finished(out_root, v, seed, settings.fingerprint(v, seed), archive)
            if result is not None:
                out[v.name].append(result)
    return out


def throughput(settings: BenchmarkSettings, data: PreparedData | None, out_root: Path, archive: Path,
               profile_path: Path, steps: int, measure: bool) -> ThroughputResult | None:
    """The cached measurement when its settings match, else a new one (and a new profile) when `measure`.

    The measurement is cached in the run directory and, like the cells, in `archive`, so that a
    report rebuilt on a fresh checkout (`--report-only`) keeps the throughput measured elsewhere.
    """
    caches = [out_root / THROUGHPUT_FILE, archive / THROUGHPUT_FILE]
    main = VARIANTS[MAIN_VARIANT]
    key = {"cell": settings.fingerprint(main, settings.seeds[0]), "steps": steps, "threads": settings.threads}
    for cache in caches:
        if cache.is_file():
            saved = json.loads(cache.read_text(encoding="utf-8"))
            if saved.get("key") == key:
                return ThroughputResult.from_dict(saved["result"])
    if not measure or data is None:
        return None
    config = settings.cell_config(main, settings.seeds[0])
    result = measure_throughput(config, data, steps=steps)
    header = (f"Training-step profile: {settings.dataset}, {config.model.name} L={config.model.train_loops}, batch "
              f"{config.train.batch_size}, {settings.threads} thread(s), torch {_torch_version()}\n{result.summary()}\n")
    profile_training(config, data, profile_path, header=header)
    for cache in caches:
        write_json(cache, {"key": key, "result": result.to_dict()})
    return result


def _torch_version() -> str:
    import torch

    return torch.__version__


def build_reports(settings: BenchmarkSettings, variants: list[Variant], results: dict[str, list[CellResult]],
                  tput: ThroughputResult | None, results_dir: Path, stem: str, command: str,
                  out_root: Path, profile_path: Path | None) -> BenchmarkOutput:
    """Aggregate, check the claims, write JSON + markdown + figures."""
    summaries: dict[str, VariantSummary] = {
        v.name: summarize_variant(v, results[v.name]) for v in variants if results.get(v.name)
    }
    missing = [f"{v.name}/seed{s}" for v in variants for s in settings.seeds
               if s not in {c.seed for c in results.get(v.name, [])}]
    claims = check_claims(summaries, target_auc=TARGET_AUC.get(settings.dataset))
    reduced = settings.reduced_reasons(variants, len(VARIANTS))
    if missing:
        reduced.append(f"{len(missing)} unfinished cell(s): {', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''}")
    train_rows = next((c.train_rows for cells in results.values() for c in cells), 0)
    payload: dict[str, Any] = {
        "benchmark": "LoopCTR paper claims (arXiv 2604.19550), reproduced",
        "generated": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": command,
        "settings": settings.to_dict(variants),
        "reduced": reduced,
        "train_rows": train_rows,
        "out_root": str(out_root),
        "missing_cells": missing,
        "variants": {name: s.to_dict() for name, s in summaries.items()},
        "claims": [c.to_dict() for c in claims],
        "throughput": None if tput is None else tput.to_dict(),
    }
    if settings.dataset in BARS_TEST_AUC:
        payload["published_bars_test_auc"] = {"values": BARS_TEST_AUC[settings.dataset], "note": BARS_NOTE}
    if profile_path is not None and tput is not None:
        payload["profile_file"] = str(profile_path)
    title = f"{settings.dataset}{' (REDUCED)' if reduced else ''}"
    written = {
        "loop_scaling": plot_loop_scaling(summaries, results_dir / f"{stem}_loop_scaling.png", f"LoopCTR loop scaling on {title}"),
        "headroom": plot_headroom(summaries, results_dir / f"{stem}_headroom.png", f"Oracle headroom vs training loops on {title}"),
    }
    payload["figures"] = {name: path.name for name, path in written.items() if path is not None}
    json_path = write_json(results_dir / f"{stem}.json", payload)
    md_path = write_text(results_dir / f"{stem}.md", markdown_report(payload, summaries, claims, tput))
    return BenchmarkOutput(json_path, md_path, payload)


@dataclasses.dataclass(frozen=True)
class ResultNames:
    """Where one run's cells and report go: its tags, appended to the dataset's names.

    Cells live in `runs/reproduce/<dataset>[_<cell_tag>]` and are archived in
    `<results-dir>/reproduce_<dataset>[_<cell_tag>]_cells/`; the report is
    `<results-dir>/reproduce_<dataset>[_<report_tag>].*`. `--tag` sets both. Without it, a
    smaller request never takes the full benchmark's names: its report is tagged `reduced`, so
    that a quick run cannot replace the full report. Its cells keep the full grid's folders when
    they train exactly as there (only seeds or variants left out), so such a run can finish
    missing cells of the full grid; cells trained otherwise (epochs, rows, config overridden)
    are tagged `reduced` too.
    """

    dataset: str
    cell_tag: str | None
    report_tag: str | None

    @classmethod
    def choose(cls, dataset: str, tag: str | None, settings: BenchmarkSettings,
               variants: list[Variant]) -> "ResultNames":
        """The names for a run: `tag` when given, else `reduced` wherever the run is not the full benchmark."""
        if tag:
            return cls(dataset, tag, tag)
        return cls(dataset, "reduced" if settings.trains_differently else None,
                   "reduced" if settings.reduced_reasons(variants, len(VARIANTS)) else None)

    @property
    def run_root(self) -> Path:
        """Default folder of the cells' run directories (checkpoints, traces)."""
        return Path("runs") / "reproduce" / _tagged(self.dataset, self.cell_tag)

    def archive(self, results_dir: Path) -> Path:
        """Folder beside the reports that keeps every finished cell's result (committed)."""
        return results_dir / f"reproduce_{_tagged(self.dataset, self.cell_tag)}_cells"

    @property
    def report_stem(self) -> str:
        """File name of the report without extension (`.json`, `.md`, figures)."""
        return f"reproduce_{_tagged(self.dataset, self.report_tag)}"


def _tagged(name: str, tag: str | None) -> str:
    return f"{name}_{tag}" if tag else name


def run_benchmark(args: argparse.Namespace, argv: Sequence[str]) -> BenchmarkOutput | None:
    """Everything `main` does, returning the outputs (tests call this); None for a `--shard` run (no report)."""
    settings = BenchmarkSettings(
        dataset=args.dataset, config_path=base_config_path(args.dataset, args.config), overrides=tuple(args.set),
        n_seeds=args.seeds, epochs=args.epochs, max_train_rows=args.max_train_rows, grid_depth=args.max_depth,
        threads=args.threads, data_root=args.data_root, own_baseline_configs=not args.shared_baseline_config,
    )
    variants = resolve_variants(args.variants)
    names = ResultNames.choose(args.dataset, args.tag, settings, variants)
    out_root = args.out_root or names.run_root
    stem = names.report_stem
    archive = args.archive or names.archive(args.results_dir)
    profile_path = args.results_dir / PROFILE_FILE.format(dataset=args.dataset)
    progress = not args.no_progress
    # the command that reproduces the numbers (a rerun of it skips finished cells, so --report-only is left out)
    command = "python benchmarks/reproduce.py " + shlex.join([a for a in argv if a != "--report-only"])
    if args.report_only:
        results = finished_cells(settings, variants, out_root, archive)
        tput = throughput(settings, None, out_root, archive, profile_path, args.throughput_steps, measure=False)
    else:
        data = prepare_benchmark_data(settings, progress=progress)
        results = run_cells(settings, variants, data, out_root, progress=progress, shard=args.shard or (1, 1),
                            archive=archive)
        if args.shard is not None:
            return None
        tput = None if args.skip_throughput else throughput(settings, data, out_root, archive, profile_path,
                                                            args.throughput_steps, measure=True)
    if not any(results.values()):
        raise ConfigError(f"no finished cell under {out_root} or {archive}: nothing to report "
                          "(run without --report-only first)")
    return build_reports(settings, variants, results, tput, args.results_dir, stem, command, out_root, profile_path)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark on `argv` and print the claim verdicts and output paths.

    Returns 0 on success, 2 on a user-fixable `AdaptiveLoopError`.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        output = run_benchmark(args, argv)
    except AdaptiveLoopError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if output is None:
        print(f"shard {args.shard[0]}/{args.shard[1]} done; once every shard is, build the report with the same "
              f"command, --report-only instead of --shard")
        return 0
    for claim in output.payload["claims"]:
        print(f"claim {claim['claim']}: {claim['verdict']}")
    if output.payload["reduced"]:
        print("REDUCED RUN: " + "; ".join(output.payload["reduced"]))
    print(f"wrote {output.json_path} and {output.markdown_path}")
    return 0
