"""One streamed parquet split: its row groups, read, encoded, sharded and shuffled chunk by chunk.

Parquet files are read one row group at a time, in chunks of `chunk_rows` rows
(`pyarrow.parquet.ParquetFile.iter_batches`), validated and encoded chunk-wise with a
fitted `FeatureEncoder`, and dropped once consumed, so memory stays bounded by a few
chunks plus the shuffle buffer. Row groups are the unit of sharding: among R ranks and K
DataLoader workers per rank, rank r reads row groups r, r + R, ... of the (per-epoch
permuted) list, and its worker k every K-th of those. `adaptive_loop.data.streaming`
builds whole datasets and scoring streams from these splits; its docstring explains the
split assignment and the shuffling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch.utils.data

from adaptive_loop.data.batch import EncodedData, concat_encoded, rebatch
from adaptive_loop.data.columns import arrow_to_pandas
from adaptive_loop.data.datasets.base import SPLITS
from adaptive_loop.data.encoders import FeatureEncoder
from adaptive_loop.data.readers import RowGroup
from adaptive_loop.distributed import shard_bounds
from adaptive_loop.errors import ConfigError, DataError

DEFAULT_CHUNK_ROWS = 65_536


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
        start, end = shard_bounds(len(self.groups), rank, world_size)
        yield from rebatch(self._chunks(range(start, end)), batch_size)

    def to_encoded(self, batch_size: int = DEFAULT_CHUNK_ROWS) -> EncodedData:
        """The whole split in memory (for evaluation and traces of splits that fit)."""
        return concat_encoded(list(self.iter_encoded(batch_size)), self.encoder)

    # ----------------------------------------------------------------- training
    def epoch_plan(self, epoch: int, batch_size: int, rank: int = 0, world_size: int = 1, max_steps: int = 0) -> "EpochPlan":
        """The shuffled training batches of `epoch` for `rank` (see the module docstring)."""
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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
