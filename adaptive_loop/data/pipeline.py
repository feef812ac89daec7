"""From a `DataConfig` to encoded train/valid/test splits and the `FeatureSpec` the model needs.

`prepare_data` is deterministic for a given config and seed: the same seed gives the same
synthetic rows, the same rebuilt Frappe negatives and the same random splits, so a run can
re-create its evaluation data from its stored config alone. The encoder is fitted on the
training split only.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import pandas as pd

from adaptive_loop.data.batch import EncodedData
from adaptive_loop.data.datasets import dataset_options, load_raw_dataset
from adaptive_loop.data.encoders import FeatureEncoder
from adaptive_loop.data.schema import DatasetSchema
from adaptive_loop.data.spec import FeatureSpec
from adaptive_loop.errors import ConfigError

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

    def __post_init__(self) -> None:
        if self.min_count < 1:
            raise ConfigError(f"data.min_count must be >= 1, got {self.min_count}")


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
        if name not in ("train", "valid", "test"):
            raise ConfigError(f"unknown split {name!r}; choose train, valid or test")
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


def prepare_data(config: DataConfig, seed: int, show_progress: bool = False) -> PreparedData:
    """Load the dataset, fit the encoder on its training split and encode all three splits."""
    say = _progress(show_progress)
    say(f"loading dataset {config.dataset!r}")
    raw = load_raw_dataset(config.dataset, config.data_root, **_loader_options(config, seed))
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


def encode_for_scoring(encoder: FeatureEncoder, frame: pd.DataFrame, extras: Sequence[str] = ()) -> EncodedData:
    """Encode new rows with a fitted encoder; the label column is optional (labels are NaN without it)."""
    return encoder.transform(frame, extras=extras, require_label=False, source="scoring data")


def _progress(show: bool):
    def say(message: str) -> None:
        if show:
            print(f"[data] {message}", file=sys.stderr, flush=True)

    return say
