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
from adaptive_loop.errors import ConfigError
from adaptive_loop.evaluation import DepthMetrics, format_depth_table, per_depth_metrics, predict_depths
from adaptive_loop.model.flops import count_parameters
from adaptive_loop.reports import DepthReportFiles, write_depth_report
from adaptive_loop.runs import LoadedRun, load_run
from adaptive_loop.trace import DepthTrace, save_trace
from adaptive_loop.tracing import build_trace

SPLITS = ("train", "valid", "test")


def load_split(run: LoadedRun, split: str, show_progress: bool = False) -> EncodedData:
    """Encode one split of the run's dataset exactly as in training (same seed, same encoders).

    A streamed run's split is read with the run's saved encoder and gathered in memory
    (evaluation and traces need every row's logits; for data too large for that, score
    with `adaptive_loop.data.streaming.iter_encoded_batches`).
    """
    from adaptive_loop.data.encoders import FeatureEncoder
    from adaptive_loop.data.pipeline import prepare_data, uses_streaming
    from adaptive_loop.data.streaming import ParquetSplit

    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    encoder = None
    if uses_streaming(run.config.data) and run.encoder_path.is_file():
        encoder = FeatureEncoder.load(run.encoder_path)
    prepared = prepare_data(run.config.data, seed=run.config.seed, show_progress=show_progress, encoder=encoder)
    data = getattr(prepared, split)
    return data.to_encoded() if isinstance(data, ParquetSplit) else data


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
    """Baselines without a loop answer at depth 0 only; StackCTR at most at L."""
    name = run.config.model.name
    if name in ("deepfm", "dcnv2"):
        return 0
    if name == "stackctr":
        return min(depth, run.config.model.train_loops)
    return depth


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
