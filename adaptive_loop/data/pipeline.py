"""From a `DataConfig` to encoded train/valid/test splits and the `FeatureSpec` the model needs.

`prepare_data` is deterministic for a given config and seed: the same seed gives the same
synthetic rows, the same rebuilt Frappe negatives and the same random splits, so a run can
re-create its evaluation data from its stored config alone. The encoder is fitted on the
training split only.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import pandas as pd

from adaptive_loop.data.batch import EncodedData
from adaptive_loop.data.datasets import dataset_options, load_raw_dataset
from adaptive_loop.data.datasets.base import SPLITS
from adaptive_loop.data.encoders import FeatureEncoder
from adaptive_loop.data.schema import DatasetSchema
from adaptive_loop.data.spec import FeatureSpec
from adaptive_loop.errors import ConfigError

if TYPE_CHECKING:
    from adaptive_loop.data.streaming import StreamingData

FILE_DATASETS = ("csv", "parquet")


@dataclass
class DataConfig:
    """Which dataset to load and how to encode it (batch sizes belong to training)."""

    dataset: str = field(
        default="synthetic",
        metadata={"help": "Dataset name: synthetic (embedded, no files), frappe_x1, movielens_100k, open_bandit, "
                  "or csv / parquet for your own files (then set schema and path or train/valid/test_path)."},
    )
    data_root: str | None = field(
        default=None,
        metadata={"help": "Folder holding the public datasets; null = $ADAPTIVE_LOOP_DATA_ROOT, else ../shared/data."},
    )
    options: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "Dataset-specific options, e.g. synthetic: n_rows, seq_len, n_users, n_items, depth_mix; "
                  "movielens_100k: max_seq_len, fractions; frappe_x1 / open_bandit / synthetic: seed (defaults to "
                  "the run seed); csv/parquet: split (random|time), time_column, fractions, delimiter, encoding, "
                  "extra_columns."},
    )
    min_count: int = field(
        default=1,
        metadata={"help": "Categorical values seen fewer times in the training split map to the OOV id "
                  "(fields may override it in the schema)."},
    )
    schema: dict[str, Any] | str | None = field(
        default=None,
        metadata={"help": "csv/parquet only: the dataset schema as a mapping or a YAML file path "
                  "(label, categorical, numeric, sequences, group, id, token_groups)."},
    )
    path: str | None = field(
        default=None, metadata={"help": "csv/parquet only: one file to split into train/valid/test."}
    )
    train_path: str | None = field(default=None, metadata={"help": "csv/parquet only: the training file."})
    valid_path: str | None = field(default=None, metadata={"help": "csv/parquet only: the validation file."})
    test_path: str | None = field(default=None, metadata={"help": "csv/parquet only: the test file."})
    streaming: bool | None = field(
        default=None,
        metadata={"help": "parquet only: read the files as a stream of row groups instead of loading them, for "
                  "data larger than memory (paths may then be folders or globs). null = automatic: stream when a "
                  "path is a folder or glob or the files' uncompressed size exceeds half the available memory."},
    )
    stream_chunk_rows: int = field(default=65_536, metadata={"help": "Streaming: rows read and encoded at a time."})
    stream_shuffle_rows: int = field(
        default=262_144, metadata={"help": "Streaming: rows shuffled together in training (bounded-memory shuffle buffer)."}
    )
    stream_workers: int = field(
        default=0, metadata={"help": "Streaming: DataLoader worker processes reading row groups (0 = read in the main process)."}
    )

    def __post_init__(self) -> None:
        if self.min_count < 1:
            raise ConfigError(f"data.min_count must be >= 1, got {self.min_count}")
        if self.stream_chunk_rows < 1 or self.stream_shuffle_rows < 1 or self.stream_workers < 0:
            raise ConfigError(
                "data.stream_chunk_rows and data.stream_shuffle_rows must be >= 1 and data.stream_workers >= 0"
            )


@dataclass
class PreparedData:
    """Encoded splits plus everything needed to encode more data the same way."""

    dataset: str
    train: EncodedData
    valid: EncodedData
    test: EncodedData
    spec: FeatureSpec
    encoder: FeatureEncoder
    schema: DatasetSchema
    description: str = ""

    def split(self, name: str) -> EncodedData:
        """The encoded split `name` ('train', 'valid' or 'test'); any other name raises `ConfigError`."""
        if name not in SPLITS:
            raise ConfigError(f"unknown split {name!r}; choose {', '.join(SPLITS)}")
        return getattr(self, name)


def _loader_options(config: DataConfig, seed: int) -> dict[str, Any]:
    options = dict(config.options)
    file_keys = {"schema": ("schema", config.schema), "path": ("path", config.path),
                 "train": ("train_path", config.train_path), "valid": ("valid_path", config.valid_path),
                 "test": ("test_path", config.test_path)}
    for key, (setting, value) in file_keys.items():
        if value is None:
            continue
        if config.dataset not in FILE_DATASETS:
            raise ConfigError(f"data.{setting} is only used with dataset csv or parquet, not {config.dataset!r}")
        if key in options:
            raise ConfigError(f"data.{setting} is given twice (also as data.options.{key})")
        options[key] = value
    if "seed" not in options and "seed" in dataset_options(config.dataset):
        options["seed"] = seed
    return options


def prepare_data(
    config: DataConfig, seed: int, show_progress: bool = False, encoder: FeatureEncoder | None = None
) -> "PreparedData | StreamingData":
    """Load the dataset, fit the encoder on its training split and encode all three splits.

    With streaming (see `DataConfig.streaming`) nothing is loaded: the result is a
    `StreamingData` whose splits are read from parquet row group by row group; `encoder`
    (a run's saved encoder) then replaces the streamed fitting pass. In memory, the encoder
    is always refitted (it is cheap and gives the same result).
    """
    say = _progress(show_progress)
    options = _loader_options(config, seed)
    if uses_streaming(config, options):
        say(f"streaming dataset {config.dataset!r} from parquet row groups")
        return _prepare_streaming(config, options, show_progress, encoder)
    say(f"loading dataset {config.dataset!r}")
    raw = load_raw_dataset(config.dataset, config.data_root, **options)
    say(f"fitting encoders on {len(raw.train):,} training rows")
    encoder = FeatureEncoder(raw.schema, min_count=config.min_count).fit(raw.train)
    encoded = {}
    for name, frame in raw.splits().items():
        say(f"encoding the {name} split ({len(frame):,} rows)")
        encoded[name] = encoder.transform(frame, extras=raw.extra_columns, source=f"{raw.name} {name} split")
    spec = encoder.feature_spec()
    spec = replace(spec, extras={**spec.extras, "dataset": raw.name})
    return PreparedData(
        dataset=raw.name,
        train=encoded["train"],
        valid=encoded["valid"],
        test=encoded["test"],
        spec=spec,
        encoder=encoder,
        schema=raw.schema,
        description=raw.description,
    )


_STREAM_OPTIONS = {"schema", "path", "train", "valid", "test", "fractions", "seed", "extra_columns", "split"}


def uses_streaming(config: DataConfig, options: dict[str, Any] | None = None) -> bool:
    """Whether `prepare_data` streams: `data.streaming`, or automatically for big or multi-file parquet."""
    if config.streaming is False:
        return False
    if config.dataset != "parquet":
        if config.streaming:
            raise ConfigError(f"data.streaming needs dataset 'parquet' (got {config.dataset!r}); write the data as "
                              "parquet files or set data.streaming=false")
        return False
    if config.streaming:
        return True
    options = _loader_options(config, 0) if options is None else options
    paths = [_locate_path(options[k], config.data_root) for k in ("path", "train", "valid", "test") if options.get(k)]
    from adaptive_loop.data.readers import is_multi_file, uncompressed_bytes

    if any(is_multi_file(p) for p in paths):
        return True
    existing = [p for p in paths if Path(p).is_file()]
    return bool(existing) and uncompressed_bytes(existing) > _available_memory() // 2


def _available_memory() -> int:
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # not POSIX: assume plenty, stream only when asked
        return 1 << 62


def _locate_path(path: str, data_root: str | None) -> str:
    from adaptive_loop.data.datasets.files import _locate

    return path if any(ch in path for ch in "*?[") else str(_locate(path, data_root))


def _prepare_streaming(
    config: DataConfig, options: dict[str, Any], show_progress: bool, encoder: FeatureEncoder | None
) -> "StreamingData":
    from adaptive_loop.data.schema import load_schema
    from adaptive_loop.data.streaming import prepare_streaming

    unknown = sorted(set(options) - _STREAM_OPTIONS)
    if unknown:
        raise ConfigError(f"data.options {unknown} are not used when streaming parquet; remove them "
                          f"(streaming accepts {sorted(_STREAM_OPTIONS - {'schema', 'path', 'train', 'valid', 'test'})})")
    if options.get("split", "random") != "random":
        raise ConfigError("streaming supports only the seeded random split of data.path (or separate "
                          "train/valid/test paths); data.options.split='time' needs the in-memory reader")
    if options.get("schema") is None:
        raise ConfigError("dataset 'parquet' needs a schema (a mapping or a YAML file path): set data.schema")
    paths = {k: _locate_path(options[k], config.data_root) if options.get(k) else None
             for k in ("path", "train", "valid", "test")}
    return prepare_streaming(
        load_schema(options["schema"]), seed=int(options.get("seed", 0)), **paths,
        fractions=tuple(options.get("fractions", (0.8, 0.1, 0.1))),
        extra_columns=tuple(options.get("extra_columns", ())), min_count=config.min_count,
        chunk_rows=config.stream_chunk_rows, shuffle_rows=config.stream_shuffle_rows,
        workers=config.stream_workers, name=config.dataset, show_progress=show_progress, encoder=encoder,
    )


def encode_for_scoring(encoder: FeatureEncoder, frame: pd.DataFrame, extras: Sequence[str] = ()) -> EncodedData:
    """Encode new rows with a fitted encoder; the label column is optional (labels are NaN without it)."""
    return encoder.transform(frame, extras=extras, require_label=False, source="scoring data")


def _progress(show: bool):
    def say(message: str) -> None:
        if show:
            print(f"[data] {message}", file=sys.stderr, flush=True)

    return say
