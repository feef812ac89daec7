"""Scoring a whole dataset in batches: bounded memory, a progress bar, atomic output files.

    summary = score_dataset("runs/frappe", controller, "new_rows.parquet", "scores.parquet", batch_size=4096)

Input (`data`): a parquet file, folder or glob (read row group by row group,
`adaptive_loop.data.streaming`), a CSV/TSV file (read in chunks of `batch_size` rows by
`adaptive_loop.data.readers.iter_table_chunks`, the library's one door for files), or a split
name of the run's own dataset (`train`, `valid`, `test`). Files are encoded with the run's
saved encoder (`encoder.json`): unseen categories become the OOV id, the label column is
optional.

Output: one row per input row, in input order - `id`, `label` (when the input has labels),
`prob`, `logit`, `depth`, `exits`, `controller_flops`, `flops` - as parquet (one row group
per batch) or CSV, chosen by the extension. The file is written to a temporary name and
moved into place only when every batch succeeded, so a crash never leaves half a file.

Memory stays bounded by a batch or a parquet chunk whatever the input size: results are
written batch by batch and the summary keeps only running sums, a depth histogram and a
binned AUC (`StreamingAUC`), never the rows themselves.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
from tqdm.auto import tqdm

from adaptive_loop.data.batch import EncodedData
from adaptive_loop.data.datasets.base import SPLITS
from adaptive_loop.data.readers import DELIMITERS, PARQUET_SUFFIXES, iter_table_chunks, table_format
from adaptive_loop.engine.scorer import AdaptiveScorer, ScoredBatch, StageTimes
from adaptive_loop.errors import ConfigError, DataError
from adaptive_loop.io import atomic_path
from adaptive_loop.metrics import auc_from_counts


# --------------------------------------------------------------------------- AUC in bounded memory
class StreamingAUC:
    """ROC AUC from label counts per logit bin (bounded memory, any number of rows).

    Logits are binned on [-limit, limit] into `bins` equal bins (values outside go to the
    end bins) and the bins are the score runs of `adaptive_loop.metrics.auc_from_counts`.
    Pairs in different bins are ordered exactly; pairs in one bin count as ties (1/2), so
    with the default 2^20 bins of width 3e-5 the result differs from the exact AUC only by
    the share of positive/negative pairs closer than that.
    """

    def __init__(self, bins: int = 1 << 20, limit: float = 16.0) -> None:
        self.bins, self.limit = int(bins), float(limit)
        self.pos = np.zeros(self.bins, dtype=np.int64)
        self.neg = np.zeros(self.bins, dtype=np.int64)

    def update(self, labels: np.ndarray, logits: np.ndarray) -> None:
        """Add a batch of labels and logits to the bin counts; rows with a NaN label are ignored."""
        y = np.asarray(labels, dtype=np.float64)
        known = ~np.isnan(y)
        z = np.clip(np.asarray(logits, dtype=np.float64)[known], -self.limit, self.limit)
        idx = np.minimum(((z + self.limit) / (2 * self.limit) * self.bins).astype(np.int64), self.bins - 1)
        pos = y[known] > 0.5
        self.pos += np.bincount(idx[pos], minlength=self.bins)
        self.neg += np.bincount(idx[~pos], minlength=self.bins)

    @property
    def n_labelled(self) -> int:
        return int(self.pos.sum() + self.neg.sum())

    def value(self) -> float | None:
        """AUC, or None without both classes."""
        if self.pos.sum() == 0 or self.neg.sum() == 0:
            return None
        return float(auc_from_counts(self.pos.astype(np.float64), self.neg.astype(np.float64)))


# --------------------------------------------------------------------------- writing results
class ResultWriter:
    """Appends `ScoredBatch` frames to a parquet or CSV file opened at a temporary path."""

    def __init__(self, tmp: Path, fmt: str, with_labels: bool) -> None:
        self.tmp, self.fmt, self.with_labels = tmp, fmt, with_labels
        self._parquet = None
        self._csv = None
        self._header = True

    def write(self, scored: ScoredBatch) -> None:
        """Append the rows of `scored` (without the label column when `with_labels` is false)."""
        frame = scored.to_frame()
        if not self.with_labels and "label" in frame:
            frame = frame.drop(columns=["label"])
        if self.fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self.tmp, table.schema)
            self._parquet.write_table(table)
        else:
            if self._csv is None:
                self._csv = open(self.tmp, "w", encoding="utf-8", newline="")
            frame.to_csv(self._csv, header=self._header, index=False, float_format="%.9g")
            self._header = False

    def close(self) -> None:
        """Close the temporary file; with no rows written, write a valid empty file (columns id, prob) instead."""
        if self._parquet is not None:
            self._parquet.close()
        if self._csv is not None:
            self._csv.close()
        if self._parquet is None and self._csv is None:  # no rows: still a valid, empty file
            if self.fmt == "parquet":
                import pyarrow as pa
                import pyarrow.parquet as pq

                pq.write_table(pa.table({"id": pa.array([], pa.int64()), "prob": pa.array([], pa.float64())}), self.tmp)
            else:
                self.tmp.write_text("id,prob\n", encoding="utf-8")


def output_format(path: str | Path, fmt: str | None = None) -> str:
    """'parquet' or 'csv', from `fmt` or the file extension."""
    if fmt is not None:
        if fmt not in ("parquet", "csv"):
            raise ConfigError(f"output format must be 'parquet' or 'csv', got {fmt!r}")
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    if suffix == ".csv":
        return "csv"
    raise ConfigError(f"cannot tell the output format of {path}: use a .parquet or .csv file name")


# --------------------------------------------------------------------------- summary
@dataclass
class ScoreSummary:
    """What a scoring run did, without the rows."""

    out_path: str
    n_rows: int
    n_batches: int
    seconds: float  # wall-clock of the whole run: reading, encoding, scoring, writing
    scoring_seconds: float  # inside the scorer only
    controller_seconds: float  # inside the controller (part of scoring_seconds)
    mean_depth: float
    mean_flops: float
    fixed_full_depth_flops: float
    depth_histogram: list[int]
    auc: float | None
    n_labelled: int
    max_depth: int
    share_sequence: bool
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rows_per_second(self) -> float:
        """Scoring throughput (rows per second inside the scorer)."""
        return self.n_rows / self.scoring_seconds if self.scoring_seconds > 0 else float("nan")

    @property
    def controller_share(self) -> float:
        """Share of the scoring time spent in the controller."""
        return self.controller_seconds / self.scoring_seconds if self.scoring_seconds > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """The summary as a JSON-ready dict, with `rows_per_second` and `controller_share` added."""
        out = asdict(self)
        out.update(rows_per_second=self.rows_per_second, controller_share=self.controller_share)
        return out

    def to_text(self) -> str:
        """Human-readable lines: throughput, mean depth and FLOPs/row, depth histogram, AUC, output.

        The AUC line appears only when the data had labels.
        """
        lines = [
            f"scored {self.n_rows:,} rows in {self.n_batches} batches: {self.scoring_seconds:.2f} s scoring "
            f"({self.rows_per_second:,.0f} rows/s; controller {100 * self.controller_share:.1f}% of it), "
            f"{self.seconds:.2f} s with reading and writing",
            f"mean depth {self.mean_depth:.3f} of K={self.max_depth}; mean FLOPs/row {self.mean_flops:,.0f} "
            f"({self.mean_flops / self.fixed_full_depth_flops:.3f} of fixed depth K = {self.fixed_full_depth_flops:,.0f})",
            "depth histogram: " + ", ".join(f"{d}: {c:,}" for d, c in enumerate(self.depth_histogram)),
        ]
        if self.auc is not None:
            lines.append(f"AUC {self.auc:.4f} on {self.n_labelled:,} labelled rows")
        lines.append(f"wrote {self.out_path}")
        return "\n".join(lines)


# --------------------------------------------------------------------------- core loop
def score_stream(
    scorer: AdaptiveScorer,
    chunks: Iterable[EncodedData],
    out_path: str | Path,
    fmt: str | None = None,
    total_rows: int | None = None,
    progress: bool = False,
    device: Any = "cpu",
) -> ScoreSummary:
    """Score every chunk with `scorer` and write the results atomically (see the module docstring)."""
    fmt = output_format(out_path, fmt)
    k = scorer.max_depth
    hist = np.zeros(k + 1, dtype=np.int64)
    auc = StreamingAUC()
    times = StageTimes()
    n_rows = n_batches = 0
    depth_sum = flops_sum = 0.0
    started = time.perf_counter()
    with atomic_path(out_path) as tmp:
        writer: ResultWriter | None = None
        bar = tqdm(total=total_rows, unit="rows", desc="score", disable=not progress, leave=False)
        try:
            for chunk in chunks:
                if len(chunk) == 0:
                    continue
                scored = scorer.score_encoded(chunk, device=device)
                if writer is None:
                    writer = ResultWriter(tmp, fmt, with_labels=not bool(np.isnan(scored.labels).all()))
                writer.write(scored)
                times.add(scored.times)
                hist += np.bincount(scored.depth, minlength=k + 1)[: k + 1]
                if writer.with_labels:
                    auc.update(scored.labels, scored.logits)
                n_rows += len(scored)
                n_batches += 1
                depth_sum += float(scored.depth.sum())
                flops_sum += float(scored.flops.sum())
                bar.update(len(scored))
        finally:
            bar.close()
            if writer is None:
                writer = ResultWriter(tmp, fmt, with_labels=False)
            writer.close()
    seconds = time.perf_counter() - started
    return ScoreSummary(
        out_path=str(out_path), n_rows=n_rows, n_batches=n_batches, seconds=seconds, scoring_seconds=times.total,
        controller_seconds=times.controller,
        mean_depth=depth_sum / n_rows if n_rows else float("nan"), mean_flops=flops_sum / n_rows if n_rows else float("nan"),
        fixed_full_depth_flops=float(scorer.cost_model.fixed_depth(k)), depth_histogram=hist.tolist(), auc=auc.value(),
        n_labelled=auc.n_labelled, max_depth=k, share_sequence=scorer.share_sequence,
    )


# --------------------------------------------------------------------------- inputs
def iter_scoring_chunks(run: Any, data: str | Path, batch_size: int, extras: Sequence[str] = ()) -> tuple[Iterator[EncodedData], int | None]:
    """(chunks of at most `batch_size` encoded rows, total rows if known) for a run's encoder."""
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}")
    text = str(data)
    path = Path(text)
    if text in SPLITS and not path.exists():
        return _split_chunks(run, text, batch_size)
    from adaptive_loop.data.encoders import FeatureEncoder

    if not run.encoder_path.is_file():
        raise ConfigError(f"{run.run_dir} has no encoder.json: it cannot encode new data")
    encoder = FeatureEncoder.load(run.encoder_path)
    from adaptive_loop.data.readers import is_multi_file, list_parquet_files, scan_row_groups
    from adaptive_loop.data.streaming import iter_encoded_batches

    kind, _ = table_format(path)
    if kind == "parquet" or is_multi_file(text):
        total = sum(g.num_rows for g in scan_row_groups(list_parquet_files(text)))
        return iter_encoded_batches(text, encoder, batch_size, extras=extras), total
    if kind != "delimited":
        raise DataError(
            f"--data {text}: not a split name ({', '.join(SPLITS)}), a parquet file/folder/glob or a "
            f"CSV/TSV file ({', '.join(DELIMITERS)})"
        )
    return _delimited_chunks(iter_table_chunks(path, batch_size, schema=encoder.schema), encoder, extras), None


def _split_chunks(run: Any, split: str, batch_size: int) -> tuple[Iterator[EncodedData], int | None]:
    from adaptive_loop.runs import load_split

    data = load_split(run, split)
    if hasattr(data, "iter_encoded"):  # a streamed parquet dataset
        return data.iter_encoded(batch_size), len(data)

    def chunks() -> Iterator[EncodedData]:
        for start in range(0, len(data), batch_size):
            yield data.subset(slice(start, start + batch_size))

    return chunks(), len(data)


def _delimited_chunks(frames: Iterator[Any], encoder: Any, extras: Sequence[str]) -> Iterator[EncodedData]:
    """Encode raw chunks with the run's encoder; without an id column, ids are row numbers in the file."""
    from adaptive_loop.data.pipeline import encode_for_scoring

    offset = 0
    for frame in frames:
        encoded = encode_for_scoring(encoder, frame, extras=extras)
        if encoder.schema.id is None:
            encoded.ids = offset + np.arange(len(encoded), dtype=np.int64)
        offset += len(encoded)
        yield encoded


# --------------------------------------------------------------------------- one call
def score_dataset(
    run_dir: str | Path,
    controller: Any,
    data: str | Path,
    out_path: str | Path,
    batch_size: int = 4096,
    *,
    checkpoint: str = "best",
    share_sequence: bool = False,
    extras: Sequence[str] = (),
    fmt: str | None = None,
    progress: bool = False,
) -> ScoreSummary:
    """Score `data` with the run's model and a fitted `controller`; write `out_path` atomically."""
    from adaptive_loop.runs import load_run

    run = load_run(run_dir, checkpoint=checkpoint)
    scorer = AdaptiveScorer(run.model, controller, share_sequence=share_sequence)
    chunks, total = iter_scoring_chunks(run, data, batch_size, extras)
    summary = score_stream(scorer, chunks, out_path, fmt=fmt, total_rows=total, progress=progress, device=run.device)
    summary.extra.update(run=str(run.run_dir), data=str(data), batch_size=int(batch_size),
                         controller=getattr(controller, "name", type(controller).__name__))
    return summary
