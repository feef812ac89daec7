"""Streaming parquet data: training and scoring on files larger than memory.

Parquet files are read one row group at a time, in chunks of `chunk_rows` rows
(`pyarrow.parquet.ParquetFile.iter_batches`), validated and encoded chunk-wise with a
fitted `FeatureEncoder`, and dropped once consumed, so memory stays bounded by a few
chunks plus the shuffle buffer whatever the total size. Row groups are the unit of
sharding: among R ranks and K DataLoader workers per rank, rank r reads row groups
r, r + R, ... of the (per-epoch permuted) list, and its worker k every K-th of those.

Public entry points:

- `iter_encoded_batches(paths, encoder, batch_size, rank=0, world_size=1)`: encoded
  batches of new data for scoring (the label column is optional). With `workers=0` rows
  come in file order; ids are the row index within the files (or the schema's id column).
- `StreamingData` / `prepare_streaming`: the train/valid/test splits of a `parquet`
  dataset as `ParquetSplit`s, with the encoder fitted on a streamed pass over the training
  files (`FeatureEncoder.fit_chunks`). The trainer recognises `ParquetSplit` and streams.
- `ParquetSplit.epoch_plan`: the shuffled, rank-sharded training batches of one epoch.

Splits: either separate `train_path` / `valid_path` / `test_path` (each a file, a folder
of `*.parquet` files, or a glob), or one `path` whose rows are assigned to train/valid/test
by a seeded uniform draw per row (seeded by (seed, file, row group), so every process and
worker agrees without reading anything else). That assignment differs from the in-memory
random split, which permutes all rows at once.

Shuffling: each epoch permutes the row-group order (seeded by (seed, epoch)) and shuffles
rows within a buffer of `shuffle_rows` rows (seeded by (seed, epoch, rank)), the usual
trade-off of streaming readers: a global permutation would need random access to all rows.
All ranks run the same number of steps: each rank's number of local batches is computed
from the parquet metadata alone, and the smallest is used (a rank's surplus rows are
skipped for that epoch; the row-group order changes every epoch).
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch.utils.data

from adaptive_loop.data.batch import EncodedData
from adaptive_loop.data.columns import arrow_to_pandas
from adaptive_loop.data.encoders import FeatureEncoder
from adaptive_loop.data.schema import DatasetSchema
from adaptive_loop.data.spec import FeatureSpec
from adaptive_loop.errors import ConfigError, DataError

DEFAULT_CHUNK_ROWS = 65_536
SPLITS = ("train", "valid", "test")


# --------------------------------------------------------------------------- files
def list_parquet_files(paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Expand files, folders (every `*.parquet` / `*.pq` below, sorted) and globs into files."""
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not items:
        raise DataError("no parquet paths given")
    files: list[Path] = []
    for item in items:
        text = str(item)
        if any(ch in text for ch in "*?["):
            matches = sorted(Path(m) for m in glob.glob(text, recursive=True) if Path(m).is_file())
            if not matches:
                raise DataError(f"parquet pattern {text} matches no files")
            files.extend(matches)
            continue
        path = Path(text).expanduser()
        if not path.exists():
            raise DataError(f"parquet path {path} does not exist")
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in (".parquet", ".pq"))
            if not found:
                raise DataError(f"folder {path} holds no .parquet files")
            files.extend(found)
        else:
            files.append(path)
    return files


def is_multi_file(path: str | os.PathLike[str]) -> bool:
    """True for a folder or a glob (which only the streaming reader can read)."""
    text = str(path)
    return any(ch in text for ch in "*?[") or Path(text).expanduser().is_dir()


@dataclass(frozen=True)
class RowGroup:
    """One row group of one parquet file: the unit of reading and sharding."""

    file: str
    file_index: int
    index: int
    num_rows: int
    byte_size: int


def scan_row_groups(files: Sequence[Path]) -> list[RowGroup]:
    """Row groups of every file, from the parquet footers only (no data is read)."""
    groups: list[RowGroup] = []
    for i, path in enumerate(files):
        if path.stat().st_size == 0:
            raise DataError(f"parquet file {path} is empty (0 bytes)")
        try:
            meta = pq.ParquetFile(path).metadata
        except Exception as exc:  # pyarrow raises several unrelated types for a bad footer
            raise DataError(f"parquet file {path} is not readable parquet ({_first_line(exc)})") from None
        for g in range(meta.num_row_groups):
            rg = meta.row_group(g)
            groups.append(RowGroup(str(path), i, g, int(rg.num_rows), int(rg.total_byte_size)))
    return groups


def uncompressed_bytes(paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> int:
    """Uncompressed size of the files' data according to their footers."""
    return sum(g.byte_size for g in scan_row_groups(list_parquet_files(paths)))


# --------------------------------------------------------------------------- row selection
@dataclass(frozen=True)
class RowSplit:
    """Seeded per-row assignment of one file set to train/valid/test (for a single `path`)."""

    seed: int
    fractions: tuple[float, float, float]
    split: str

    def mask(self, group: RowGroup) -> np.ndarray:
        """Which rows of `group` belong to this split (identical in every process)."""
        draw = np.random.default_rng([self.seed, group.file_index, group.index]).random(group.num_rows)
        edges = np.cumsum(self.fractions)
        which = np.searchsorted(edges[:2], draw, side="right")
        return which == SPLITS.index(self.split)


# --------------------------------------------------------------------------- splits
class ParquetSplit:
    """One split streamed from parquet row groups and encoded on the fly.

    `extras` columns travel into `EncodedData.extras` (e.g. the synthetic ground truth
    `needed_depth`); `require_label=False` allows scoring data without labels.
    """

    def __init__(
        self,
        name: str,
        groups: Sequence[RowGroup],
        encoder: FeatureEncoder,
        extras: Sequence[str] = (),
        selection: RowSplit | None = None,
        require_label: bool = True,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        shuffle_rows: int = 262_144,
        workers: int = 0,
        seed: int = 0,
    ) -> None:
        if chunk_rows < 1:
            raise ConfigError(f"data.stream_chunk_rows must be >= 1, got {chunk_rows}")
        if workers < 0:
            raise ConfigError(f"data.stream_workers must be >= 0, got {workers}")
        self.name = name
        self.groups = list(groups)
        self.encoder = encoder
        self.extras = tuple(extras)
        self.selection = selection
        self.require_label = require_label
        self.chunk_rows = int(chunk_rows)
        self.shuffle_rows = max(int(shuffle_rows), 1)
        self.workers = int(workers)
        self.seed = int(seed)
        schema = encoder.schema
        self.columns = list(dict.fromkeys([*schema.columns(), *self.extras]))
        self._counts: np.ndarray | None = None

    # ----------------------------------------------------------------- sizes
    @property
    def group_counts(self) -> np.ndarray:
        """Rows of this split in each row group (from metadata, or the seeded assignment)."""
        if self._counts is None:
            if self.selection is None:
                self._counts = np.array([g.num_rows for g in self.groups], dtype=np.int64)
            else:
                self._counts = np.array([int(self.selection.mask(g).sum()) for g in self.groups], dtype=np.int64)
        return self._counts

    def __len__(self) -> int:
        return int(self.group_counts.sum())

    def _offsets(self) -> np.ndarray:
        """Split-wide index of the first row of each row group (the default sample ids)."""
        counts = self.group_counts
        return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64) if len(counts) else counts

    # ----------------------------------------------------------------- reading
    def raw_frames(self, position: int) -> Iterator[pd.DataFrame]:
        """Raw chunks (pandas, this split's rows only) of the row group at `position`."""
        group = self.groups[position]
        mask = None if self.selection is None else self.selection.mask(group)
        try:
            handle = pq.ParquetFile(group.file)
            present = handle.schema_arrow.names
            label = self.encoder.schema.label
            needed = [c for c in self.columns if self.require_label or c != label]
            missing = [c for c in needed if c not in present]
            if missing:
                raise DataError(
                    f"parquet file {group.file}: missing column(s) {', '.join(repr(c) for c in missing)}; "
                    f"columns present: {', '.join(present[:20])}"
                )
            columns = [c for c in self.columns if c in present]
            start = 0
            for record in handle.iter_batches(batch_size=self.chunk_rows, row_groups=[group.index], columns=columns):
                n = record.num_rows
                if mask is not None:
                    record = record.filter(pa.array(mask[start : start + n]))
                start += n
                if record.num_rows:
                    yield _to_frame(record)
        except DataError:
            raise
        except (OSError, pa.ArrowException) as exc:
            raise DataError(f"parquet file {group.file} could not be read ({_first_line(exc)})") from None

    def read_group(self, position: int) -> Iterator[EncodedData]:
        """Encoded chunks of the row group at `position` in `self.groups`."""
        group = self.groups[position]
        offset = int(self._offsets()[position])
        source = f"parquet file {group.file} (row group {group.index})"
        for frame in self.raw_frames(position):
            encoded = self.encoder.transform(frame, extras=self.extras, require_label=self.require_label, source=source)
            if self.encoder.schema.id is None:
                encoded.ids = offset + np.arange(len(encoded), dtype=np.int64)
            offset += len(encoded)
            encoded.groups = _stable_group_codes(self.encoder, frame, encoded.groups)
            yield encoded

    def _chunks(self, positions: Sequence[int]) -> Iterator[EncodedData]:
        """Encoded chunks of the given row groups, through DataLoader workers when configured."""
        if self.workers == 0 or len(positions) <= 1:
            for position in positions:
                yield from self.read_group(position)
            return
        loader = torch.utils.data.DataLoader(
            _GroupDataset(self, list(positions)), batch_size=None, num_workers=min(self.workers, len(positions))
        )
        yield from loader

    def iter_encoded(self, batch_size: int, rank: int = 0, world_size: int = 1) -> Iterator[EncodedData]:
        """This rank's rows in batches of `batch_size` (file order when `workers == 0`).

        Rank r reads a contiguous block of row groups, so the ranks' outputs concatenated in
        rank order are the whole split in file order.
        """
        from adaptive_loop.distributed import shard_bounds

        start, end = shard_bounds(len(self.groups), rank, world_size)
        yield from rebatch(self._chunks(range(start, end)), batch_size)

    def to_encoded(self, batch_size: int = DEFAULT_CHUNK_ROWS) -> EncodedData:
        """The whole split in memory (for evaluation and traces of splits that fit)."""
        return concat_encoded(list(self.iter_encoded(batch_size)), self.encoder)

    # ----------------------------------------------------------------- training
    def epoch_plan(self, epoch: int, batch_size: int, rank: int = 0, world_size: int = 1, max_steps: int = 0) -> "EpochPlan":
        """The shuffled training batches of `epoch` for `rank` (see the module docstring)."""
        from adaptive_loop.distributed import shard_bounds

        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.groups))
        counts = self.group_counts
        if len(order) < world_size:
            raise DataError(
                f"the {self.name} split has {len(order)} parquet row group(s), fewer than the {world_size} "
                f"processes; write the files with smaller row groups (e.g. pyarrow row_group_size)"
            )
        steps = None
        for r in range(world_size):
            local = max(shard_bounds(batch_size, r, world_size)[1] - shard_bounds(batch_size, r, world_size)[0], 1)
            rows = int(counts[order[r::world_size]].sum())
            n = -(-rows // local)
            steps = n if steps is None else min(steps, n)
        steps = int(steps or 0)
        if max_steps > 0:
            steps = min(steps, max_steps)
        lo, hi = shard_bounds(batch_size, rank, world_size)
        return EpochPlan(self, [int(p) for p in order[rank::world_size]], max(hi - lo, 1), steps,
                         (self.seed, epoch, rank))


class EpochPlan:
    """One rank's training batches for one epoch: exactly `len(plan)` local batches."""

    def __init__(self, split: ParquetSplit, positions: list[int], local_batch: int, steps: int,
                 shuffle_seed: tuple[int, int, int]) -> None:
        self.split = split
        self.positions = positions
        self.local_batch = local_batch
        self.steps = steps
        self.shuffle_seed = shuffle_seed

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[EncodedData]:
        produced = 0
        if self.steps == 0:
            return
        rng = np.random.default_rng(list(self.shuffle_seed))  # re-iterating gives the same batches
        buffer: list[EncodedData] = []
        buffered = 0
        limit = max(self.split.shuffle_rows, self.local_batch)
        for chunk in self.split._chunks(self.positions):
            buffer.append(chunk)
            buffered += len(chunk)
            if buffered < limit:
                continue
            mixed = _shuffled(buffer, rng, self.split.encoder)
            full = len(mixed) // self.local_batch
            for b in range(full):
                yield mixed.subset(slice(b * self.local_batch, (b + 1) * self.local_batch))
                produced += 1
                if produced == self.steps:
                    return
            rest = mixed.subset(slice(full * self.local_batch, len(mixed)))
            buffer, buffered = ([rest], len(rest)) if len(rest) else ([], 0)
        if buffer:
            mixed = _shuffled(buffer, rng, self.split.encoder)
            for start in range(0, len(mixed), self.local_batch):
                yield mixed.subset(slice(start, start + self.local_batch))
                produced += 1
                if produced == self.steps:
                    return


class _GroupDataset(torch.utils.data.IterableDataset):
    """Row groups as a torch IterableDataset; each DataLoader worker reads every K-th group."""

    def __init__(self, split: ParquetSplit, positions: list[int]) -> None:
        super().__init__()
        self.split = split
        self.positions = positions

    def __iter__(self) -> Iterator[EncodedData]:
        info = torch.utils.data.get_worker_info()
        worker, n_workers = (0, 1) if info is None else (info.id, info.num_workers)
        for position in self.positions[worker::n_workers]:
            yield from self.split.read_group(position)


# --------------------------------------------------------------------------- scoring API
def iter_encoded_batches(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    encoder: FeatureEncoder,
    batch_size: int,
    rank: int = 0,
    world_size: int = 1,
    extras: Sequence[str] = (),
    require_label: bool = False,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    workers: int = 0,
) -> Iterator[EncodedData]:
    """Stream parquet `paths` (files, folders or globs) as encoded batches of `batch_size` rows.

    Each batch is an `EncodedData` encoded with the fitted `encoder` (unseen categories
    become the OOV id; without a label column labels are NaN unless `require_label`).
    Rank `rank` of `world_size` gets a contiguous block of row groups; with `workers=0`
    rows come in file order and `ids` are row indices within the files (or the schema's
    id column), so outputs can be joined back. Memory stays bounded by a few chunks.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if not encoder.is_fitted:
        from adaptive_loop.errors import NotFittedError

        raise NotFittedError("iter_encoded_batches needs a fitted FeatureEncoder (e.g. FeatureEncoder.load(run/encoder.json))")
    split = ParquetSplit("scoring", scan_row_groups(list_parquet_files(paths)), encoder, extras=extras,
                         require_label=require_label, chunk_rows=chunk_rows, workers=workers)
    yield from split.iter_encoded(batch_size, rank=rank, world_size=world_size)


# --------------------------------------------------------------------------- whole datasets
@dataclass
class StreamingData:
    """Train/valid/test streamed from parquet, with the encoder and feature spec (like `PreparedData`)."""

    dataset: str
    train: ParquetSplit
    valid: ParquetSplit
    test: ParquetSplit
    spec: FeatureSpec
    encoder: FeatureEncoder
    schema: DatasetSchema
    description: str = ""

    def split(self, name: str) -> ParquetSplit:
        """The streamed split `name` ('train', 'valid' or 'test'); any other name raises `ConfigError`."""
        if name not in SPLITS:
            raise ConfigError(f"unknown split {name!r}; choose train, valid or test")
        return getattr(self, name)


def prepare_streaming(
    schema: DatasetSchema,
    *,
    seed: int,
    path: str | Sequence[str] | None = None,
    train: str | Sequence[str] | None = None,
    valid: str | Sequence[str] | None = None,
    test: str | Sequence[str] | None = None,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    extra_columns: Sequence[str] = (),
    min_count: int = 1,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    shuffle_rows: int = 262_144,
    workers: int = 0,
    name: str = "parquet",
    show_progress: bool = False,
    encoder: FeatureEncoder | None = None,
) -> StreamingData:
    """Scan the files, fit the encoder on a streamed pass over the training rows, and return the splits.

    A fitted `encoder` (e.g. a run's `encoder.json`) skips the fitting pass; its schema must be `schema`.
    """
    from adaptive_loop.data.datasets.base import check_fractions

    fracs = check_fractions(fractions)
    if path is not None and any(p is not None for p in (train, valid, test)):
        raise ConfigError(f"dataset {name!r}: give either one path or train/valid/test paths, not both")
    common = dict(extras=tuple(extra_columns), chunk_rows=chunk_rows, shuffle_rows=shuffle_rows, workers=workers, seed=seed)
    placeholder = FeatureEncoder(schema, min_count=min_count)
    if path is not None:
        groups = scan_row_groups(list_parquet_files(path))
        splits = {s: ParquetSplit(s, groups, placeholder, selection=RowSplit(seed, fracs, s), **common) for s in SPLITS}
        how = f"seeded per-row split of {path}"
    else:
        if any(p is None for p in (train, valid, test)):
            raise ConfigError(f"dataset {name!r}: give one path or all three of train_path, valid_path and test_path")
        splits = {s: ParquetSplit(s, scan_row_groups(list_parquet_files(p)), placeholder, **common)
                  for s, p in zip(SPLITS, (train, valid, test))}
        how = "given train/valid/test parquet files"
    for s, split in splits.items():
        if len(split) == 0:
            raise DataError(f"dataset {name!r}: the {s} split is empty ({how})")
    if encoder is None:
        encoder = FeatureEncoder(schema, min_count=min_count).fit_chunks(
            _raw_frames(splits["train"]), validated=True, progress=show_progress, total_rows=len(splits["train"])
        )
    elif encoder.schema != schema:
        raise DataError("the given encoder was fitted for another schema than the dataset's; refit it or use the "
                        "run's own config")
    for split in splits.values():
        split.encoder = encoder
    spec = encoder.feature_spec()
    spec = replace(spec, extras={**spec.extras, "dataset": name})
    return StreamingData(name, splits["train"], splits["valid"], splits["test"], spec, encoder, schema,
                         description=f"streamed parquet: {how}")


def _raw_frames(split: ParquetSplit) -> Iterator[pd.DataFrame]:
    """Raw chunks of a split in file order, for fitting the encoder on a streamed pass."""
    from adaptive_loop.data.readers import validate_frame

    for position, group in enumerate(split.groups):
        source = f"parquet file {group.file} (row group {group.index})"
        for frame in split.raw_frames(position):
            checked = validate_frame(frame, split.encoder.schema, source=source)
            checked.attrs["source"] = source
            yield checked


# --------------------------------------------------------------------------- helpers
def _to_frame(record: pa.RecordBatch) -> pd.DataFrame:
    """A record batch as pandas; list columns stay Arrow-backed (no per-row Python objects)."""
    return arrow_to_pandas(record)


def _stable_group_codes(encoder: FeatureEncoder, frame: pd.DataFrame, codes: np.ndarray | None) -> np.ndarray | None:
    """Codes for groups unseen in training that agree across chunks, workers and processes.

    The in-memory encoder numbers unseen groups per call; streamed chunks would reuse
    those numbers for different groups, so unseen groups get a hash of their value instead.
    """
    column = encoder.schema.group
    if codes is None or column is None or encoder.group_values is None:
        return codes
    known = len(encoder.group_values)
    unseen = codes >= known
    if unseen.any():
        values = frame[column].astype("string").fillna("").to_numpy(dtype=object)[unseen]
        hashed = pd.util.hash_array(values.astype(str)).astype(np.uint64) % np.uint64(2**40)
        codes = codes.copy()
        codes[unseen] = known + hashed.astype(np.int64)
    return codes


def _shuffled(parts: list[EncodedData], rng: np.random.Generator, encoder: FeatureEncoder) -> EncodedData:
    merged = concat_encoded(parts, encoder)
    return merged.subset(rng.permutation(len(merged)))


def rebatch(chunks: Iterable[EncodedData], batch_size: int) -> Iterator[EncodedData]:
    """Regroup a stream of encoded chunks into batches of exactly `batch_size` rows (the last may be short)."""
    pending: list[EncodedData] = []
    held = 0
    for chunk in chunks:
        pending.append(chunk)
        held += len(chunk)
        if held < batch_size:
            continue
        merged = concat_encoded(pending)
        full = len(merged) // batch_size
        for b in range(full):
            yield merged.subset(slice(b * batch_size, (b + 1) * batch_size))
        rest = merged.subset(slice(full * batch_size, len(merged)))
        pending, held = ([rest], len(rest)) if len(rest) else ([], 0)
    if held:
        yield concat_encoded(pending)


def concat_encoded(parts: list[EncodedData], encoder: FeatureEncoder | None = None) -> EncodedData:
    """Row-wise concatenation of encoded chunks (an empty split gives zero rows)."""
    if len(parts) == 1:
        return parts[0]
    if not parts:
        if encoder is None:
            raise DataError("no rows to concatenate")
        spec = encoder.feature_spec()
        return EncodedData(
            cat=np.zeros((0, len(spec.categorical)), np.int64), num=np.zeros((0, len(spec.numeric)), np.float32),
            seq={s.name: np.zeros((0, s.max_len), np.int64) for s in spec.sequences},
            labels=np.zeros(0, np.float32), ids=np.zeros(0, np.int64),
        )
    first = parts[0]
    return EncodedData(
        cat=np.concatenate([p.cat for p in parts]),
        num=np.concatenate([p.num for p in parts]),
        seq={k: np.concatenate([p.seq[k] for p in parts]) for k in first.seq},
        labels=np.concatenate([p.labels for p in parts]),
        ids=np.concatenate([p.ids for p in parts]),
        groups=None if first.groups is None else np.concatenate([p.groups for p in parts]),
        extras={k: np.concatenate([p.extras[k] for p in parts]) for k in first.extras},
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
