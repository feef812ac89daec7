"""One cell of the benchmark: train one variant with one seed, evaluate it at every depth.

A cell lives in `<out_root>/<variant>/seed<seed>/`, a normal run directory (checkpoints,
history, config) plus:
    cell.json          the settings fingerprint the cell was started with
    trace_valid.parquet, trace_test.parquet   per-depth logits (no hidden summaries)
    result.json        written last, atomically: the cell is finished iff it exists

A rerun skips finished cells and resumes unfinished ones from `checkpoints/last.pt` (the
trainer continues exactly where the last completed epoch left off). A cell started with
other settings is refused instead of being mixed into the results.

Run directories are machine-local (checkpoints are large and never committed), but a full
grid takes days, on whichever machine is at hand. So every finished cell's `result.json` is
also copied into an *archive* folder that is kept with the reports (by default
`benchmarks/results/reproduce_<dataset>_cells/<variant>/seed<seed>.json`, small, committed):
on a fresh checkout the runner reuses an archived result as a finished cell, with the same
settings check, and trains only the cells that are in neither place.

Evaluation uses the best checkpoint (highest validation AUC at the trained depth), for every
depth; the oracle headroom is computed on the test trace over depths 0..K ("all evaluated
depths") and 0..L ("trained depths").
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from adaptive_loop.data.pipeline import PreparedData
from adaptive_loop.errors import ConfigError
from adaptive_loop.io import json_ready, write_json
from adaptive_loop.model.flops import count_parameters
from adaptive_loop.reproduce.settings import BenchmarkSettings, saved_fingerprint
from adaptive_loop.reproduce.variants import Variant
from adaptive_loop.trace import DepthTrace, save_trace
from adaptive_loop.training.per_depth import per_depth_metrics

RESULT_FILE = "result.json"
FINGERPRINT_FILE = "cell.json"


@dataclass
class HeadroomSummary:
    """Oracle vs best fixed depth on the test split, over depths 0..`max_depth`."""

    max_depth: int
    best_fixed_depth: int
    best_fixed_auc: float
    oracle_auc: float
    gap: float
    oracle_mean_depth: float
    oracle_depth_counts: list[int]


@dataclass
class CellResult:
    """Everything one trained (variant, seed) contributes to the tables.

    `test` / `valid` hold one `DepthMetrics` dict per evaluated depth; `headroom` maps
    'all' (depths 0..K) and 'trained' (0..L) to a `HeadroomSummary` (absent for models with
    a single depth). `train_flops_per_sample` is one training forward (Entry, L loops and
    L + 1 exits); `seconds_per_epoch` is the mean wall time of the training passes
    (validation excluded).
    """

    variant: str
    seed: int
    train_loops: int
    test: list[dict[str, Any]]
    valid: list[dict[str, Any]]
    headroom: dict[str, HeadroomSummary]
    dense_parameters: int
    embedding_parameters: int
    flops_entry: float
    flops_loop: float
    flops_exit: float
    train_flops_per_sample: float
    epochs_run: int
    best_epoch: int
    stopped_early: bool
    seconds_per_epoch: float
    samples_per_second: float
    train_rows: int
    fingerprint: dict[str, Any] = field(default_factory=dict)

    def test_auc(self, depth: int) -> float:
        """Test AUC of this cell at loop depth `depth`."""
        return float(self.test[depth]["auc"])

    def to_dict(self) -> dict[str, Any]:
        """The result as a JSON-ready dict (the content of `result.json`)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "CellResult":
        """Rebuild a result from `to_dict` output (e.g. a cell's `result.json`)."""
        raw = dict(raw)
        raw["headroom"] = {k: HeadroomSummary(**v) for k, v in raw.get("headroom", {}).items()}
        return cls(**raw)


def cell_dir(out_root: Path, variant: Variant, seed: int) -> Path:
    """The run directory of one cell: `<out_root>/<variant name>/seed<seed>`."""
    return Path(out_root) / variant.name / f"seed{seed}"


def archived_path(archive: Path, variant: Variant, seed: int) -> Path:
    """Where a finished cell's result is kept beside the reports: `<archive>/<variant>/seed<seed>.json`."""
    return Path(archive) / variant.name / f"seed{seed}.json"


def load_finished(out_root: Path, variant: Variant, seed: int, fingerprint: dict[str, Any],
                  archive: Path | None = None) -> CellResult | None:
    """The cell's result if it finished, else None.

    Looks in the cell's run directory first (and archives what it finds there, for cells that
    finished before the archive existed), then in `archive` (results of cells finished on
    another machine). A result obtained with settings other than `fingerprint` is refused
    with a ConfigError that names its file.
    """
    local = cell_dir(out_root, variant, seed) / RESULT_FILE
    if local.is_file():
        result = _read_result(local, fingerprint)
        if archive is not None:
            archive_result(archive, variant, result)
        return result
    if archive is not None and archived_path(archive, variant, seed).is_file():
        return _read_result(archived_path(archive, variant, seed), fingerprint)
    return None


def _read_result(path: Path, fingerprint: dict[str, Any]) -> CellResult:
    """The result in `path`, refused (ConfigError naming the file) if obtained with other settings."""
    result = CellResult.from_dict(json.loads(path.read_text(encoding="utf-8")))
    _require_same_settings(path, saved_fingerprint(result.fingerprint), fingerprint)
    return result


def archive_result(archive: Path, variant: Variant, result: CellResult) -> Path:
    """Copy a finished cell's result into the archive (atomically; unchanged files are left alone)."""
    path = archived_path(archive, variant, result.seed)
    payload = result.to_dict()
    if not path.is_file() or json.loads(path.read_text(encoding="utf-8")) != json_ready(payload):
        write_json(path, payload)
    return path


def run_cell(
    variant: Variant,
    seed: int,
    settings: BenchmarkSettings,
    data: PreparedData,
    out_root: Path,
    on_epoch: Callable[[int, Any], None] | None = None,
    archive: Path | None = None,
) -> tuple[CellResult, bool]:
    """(result, reused): the finished result if there is one (run directory or `archive`), else
    train (or resume) and evaluate, and archive the result."""
    from adaptive_loop.training import train

    folder = cell_dir(out_root, variant, seed)
    fingerprint = settings.fingerprint(variant, seed)
    _check_fingerprint(folder, fingerprint)
    finished = load_finished(out_root, variant, seed, fingerprint, archive)
    if finished is not None:
        return finished, True
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / FINGERPRINT_FILE, fingerprint)
    config = settings.cell_config(variant, seed)
    resume = (folder / "checkpoints" / "last.pt").is_file()
    outcome = train(config, folder, resume=resume, data=data, progress=False,
                    epoch_callbacks=[on_epoch] if on_epoch is not None else None)
    result = evaluate_cell(variant, seed, folder, data, settings.grid_depth, outcome)
    result.fingerprint = fingerprint
    write_json(folder / RESULT_FILE, result.to_dict())
    if archive is not None:
        archive_result(archive, variant, result)
    return result, False


def evaluate_cell(variant: Variant, seed: int, folder: Path, data: PreparedData, grid_depth: int, outcome: Any) -> CellResult:
    """Per-depth metrics, traces and oracle headroom of the cell's best checkpoint."""
    from adaptive_loop.runs import load_run

    run = load_run(folder, checkpoint="best")
    depth = variant.eval_depth(grid_depth)
    traces = {split: _trace(run, data, split, depth) for split in ("valid", "test")}
    for split, trace in traces.items():
        save_trace(trace, folder / f"trace_{split}.parquet")
    flops = run.model.flops()
    metrics = {
        split: [row.to_dict() for row in per_depth_metrics(t.labels, t.logits, flops, groups=t.groups, split=split)]
        for split, t in traces.items()
    }
    dense, embedding = count_parameters(run.model)
    history = outcome.history
    loops = variant.train_loops
    return CellResult(
        variant=variant.name,
        seed=seed,
        train_loops=loops,
        test=metrics["test"],
        valid=metrics["valid"],
        headroom=_headroom(traces["test"], loops),
        dense_parameters=dense,
        embedding_parameters=embedding,
        flops_entry=float(flops.entry),
        flops_loop=float(flops.loop),
        flops_exit=float(flops.exit),
        train_flops_per_sample=float(flops.entry + loops * flops.loop + (loops + 1) * flops.exit),
        epochs_run=len(history),
        best_epoch=int(outcome.best_epoch),
        stopped_early=bool(outcome.stopped_early),
        seconds_per_epoch=float(sum(r.seconds for r in history) / max(len(history), 1)),
        samples_per_second=float(sum(r.samples_per_second for r in history) / max(len(history), 1)),
        train_rows=len(data.train),
    )


def _trace(run: Any, data: PreparedData, split: str, depth: int) -> DepthTrace:
    from adaptive_loop.trace_builder import build_trace

    return build_trace(
        run.model, data.split(split), depth, dataset=run.config.data.dataset, split=split,
        model_config=run.config.to_dict()["model"], hidden=False, batch_size=run.config.train.eval_batch_size,
        memory_mb=run.config.train.eval_memory_mb, device=run.device, categorical_names=[f.name for f in run.spec.categorical],
    )


def _headroom(trace: DepthTrace, train_loops: int) -> dict[str, HeadroomSummary]:
    """Oracle headroom over all evaluated depths and over the trained depths (when either has > 1 depth)."""
    from oracle.headroom import headroom_table

    out: dict[str, HeadroomSummary] = {}
    candidates = {"all": trace.max_depth, "trained": min(train_loops, trace.max_depth)}
    for name, max_depth in candidates.items():
        if max_depth < 1:
            continue
        table = headroom_table(trace.truncate_depth(max_depth) if max_depth < trace.max_depth else trace)
        best = table.best_fixed
        out[name] = HeadroomSummary(
            max_depth=max_depth, best_fixed_depth=best.depth, best_fixed_auc=best.auc, oracle_auc=table.oracle.auc,
            gap=table.gap, oracle_mean_depth=table.oracle.mean_depth, oracle_depth_counts=table.oracle.depth_counts,
        )
    return out


def _check_fingerprint(folder: Path, fingerprint: dict[str, Any]) -> None:
    """Refuse to reuse a cell that was started with other settings."""
    path = folder / FINGERPRINT_FILE
    if path.is_file():
        _require_same_settings(folder, saved_fingerprint(json.loads(path.read_text(encoding="utf-8"))), fingerprint)


def _require_same_settings(where: Path, saved: dict[str, Any], fingerprint: dict[str, Any]) -> None:
    """ConfigError naming `where` (a cell folder or result file) when its settings differ from `fingerprint`."""
    if saved == fingerprint:
        return
    differences = _differences(saved, fingerprint)
    raise ConfigError(
        f"{where} was started with other settings ({'; '.join(differences[:3])}{'; ...' if len(differences) > 3 else ''}); "
        f"use another --out-root (or --tag) for these settings, or delete {where} to retrain the cell"
    )


def _differences(old: Any, new: Any, key: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for k in sorted(set(old) | set(new)):
            out += _differences(old.get(k), new.get(k), f"{key}.{k}" if key else k)
        return out
    return [] if old == new else [f"{key}: {old!r} then, {new!r} now"]

