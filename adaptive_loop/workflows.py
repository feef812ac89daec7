"""High-level tasks shared by the CLI and notebooks: evaluate a run, write a trace, the demo.

Each function takes plain arguments, returns a dataclass, and writes its files atomically;
the CLI only parses arguments and prints.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from adaptive_loop.config import RunConfig
from adaptive_loop.data.batch import EncodedData
from adaptive_loop.depth_report import DepthReportFiles, write_depth_report
from adaptive_loop.errors import ConfigError
from adaptive_loop.model.flops import count_parameters
from adaptive_loop.runs import LoadedRun, load_run, load_split
from adaptive_loop.trace import DepthTrace, save_trace
from adaptive_loop.trace_builder import build_trace
from adaptive_loop.training.per_depth import DepthMetrics, format_depth_table, per_depth_metrics, predict_depths


@dataclass
class EvaluationResult:
    """Per-depth metrics of one run on one split, and where they were written."""

    split: str
    rows: list[DepthMetrics]
    train_loops: int
    files: DepthReportFiles | None
    dense_parameters: int = 0
    embedding_parameters: int = 0

    def table(self) -> str:
        """A fixed-width per-depth table (AUC, logloss, gAUC, FLOPs/sample); depths beyond L are marked."""
        return format_depth_table(self.rows, self.train_loops)

    def parameter_line(self) -> str:
        """One line with the run's dense and embedding parameter counts."""
        return f"parameters: {self.dense_parameters:,} dense, {self.embedding_parameters:,} embedding"


def evaluate_run(
    run_dir: str | Path,
    split: str = "valid",
    max_depth: int | None = None,
    checkpoint: str = "best",
    out_dir: str | Path | None = None,
    progress: bool = False,
    data: EncodedData | None = None,
) -> EvaluationResult:
    """Per-depth AUC, logloss, gAUC and FLOPs of a trained run; writes JSON, CSV and a plot."""
    run = load_run(run_dir, checkpoint=checkpoint)
    depth = run.config.trace_depth() if max_depth is None else max_depth
    if depth < 0:
        raise ConfigError(f"--max-depth must be >= 0, got {depth}")
    split_data = data if data is not None else load_split(run, split, show_progress=progress)
    depth = _depth_for_model(run, depth)
    logits, _ = predict_depths(
        run.model, split_data, depth, run.config.train.eval_batch_size, device=run.device, progress=progress
    )
    rows = per_depth_metrics(split_data.labels, logits, run.model.flops(), groups=split_data.groups, split=split)
    target = Path(out_dir) if out_dir is not None else run.run_dir
    title = f"{run.config.data.dataset} {run.config.model.name} L={run.model.train_loops}: {split} split"
    dense, embedding = count_parameters(run.model)
    extra = {"split": split, "n_samples": len(split_data), "dense_parameters": dense, "embedding_parameters": embedding}
    files = write_depth_report(rows, target, f"per_depth_{split}", title, run.model.train_loops, extra=extra)
    return EvaluationResult(split=split, rows=rows, train_loops=run.model.train_loops, files=files,
                            dense_parameters=dense, embedding_parameters=embedding)


def _depth_for_model(run: LoadedRun, depth: int) -> int:
    """A weight-shared loop answers at any depth; other models at most at their L (baselines: 0)."""
    if getattr(run.model, "shared_loop", False):
        return depth
    return min(depth, int(run.model.train_loops))


@dataclass
class TraceResult:
    """A written trace."""

    path: Path
    trace: DepthTrace
    seconds: float


def trace_run(
    run_dir: str | Path,
    split: str,
    out: str | Path,
    max_depth: int | None = None,
    hidden: bool | None = None,
    checkpoint: str = "best",
    progress: bool = False,
    data: EncodedData | None = None,
) -> TraceResult:
    """Write the depth trace of `split` to `out` (parquet)."""
    started = time.perf_counter()
    run = load_run(run_dir, checkpoint=checkpoint)
    depth = _depth_for_model(run, run.config.trace_depth() if max_depth is None else max_depth)
    split_data = data if data is not None else load_split(run, split, show_progress=progress)
    trace = build_trace(
        run.model,
        split_data,
        depth,
        dataset=run.config.data.dataset,
        split=split,
        model_config=run.config.to_dict()["model"],
        hidden=run.config.trace.hidden if hidden is None else hidden,
        batch_size=run.config.train.eval_batch_size,
        device=run.device,
        categorical_names=[f.name for f in run.spec.categorical],
        progress=progress,
    )
    path = save_trace(trace, out)
    return TraceResult(path=path, trace=trace, seconds=time.perf_counter() - started)


def default_run_dir(config: RunConfig, prefix: str = "") -> Path:
    """runs/<prefix or dataset-model>-<timestamp>, unique within the second."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = prefix or f"{config.data.dataset}-{config.model.name}"
    base = Path("runs") / f"{name}-{stamp}"
    candidate, i = base, 1
    while candidate.exists():
        candidate = Path(f"{base}-{i}")
        i += 1
    return candidate
