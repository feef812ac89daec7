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

import os
from dataclasses import dataclass, replace
from typing import Iterator, Sequence

import pandas as pd

from adaptive_loop.data.batch import EncodedData
from adaptive_loop.data.datasets.base import SPLITS, check_fractions
from adaptive_loop.data.encoders import FeatureEncoder
from adaptive_loop.data.parquet_split import DEFAULT_CHUNK_ROWS, ParquetSplit, RowSplit
from adaptive_loop.data.readers import list_parquet_files, scan_row_groups, validate_frame
from adaptive_loop.data.schema import DatasetSchema
from adaptive_loop.data.spec import FeatureSpec
from adaptive_loop.errors import ConfigError, DataError, NotFittedError


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
    for position, group in enumerate(split.groups):
        source = f"parquet file {group.file} (row group {group.index})"
        for frame in split.raw_frames(position):
            checked = validate_frame(frame, split.encoder.schema, source=source)
            checked.attrs["source"] = source
            yield checked
