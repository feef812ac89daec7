"""The data side: schema -> raw splits -> fitted encoders -> `EncodedData` + `FeatureSpec`.

    schema.py         declarative dataset schema (YAML-friendly)
    readers.py        the one door for files: CSV/TSV/parquet formats, reading (whole or in
                      chunks), parquet file/row-group listing, validation with clear errors
    columns.py        vectorised column -> Arrow string conversion, sequence splitting/padding
    vocabulary.py     fitted vocabularies (0 pad/missing, 1 OOV, 2.. known)
    numeric_stats.py  standardisation statistics of numeric fields (whole or streamed)
    encoders.py       FeatureEncoder (fit on train, transform any split, JSON save/load)
    datasets/         built-in datasets by name (synthetic, frappe_x1, movielens_100k, ...)
    pipeline.py       DataConfig -> PreparedData
    streaming.py      parquet larger than memory: StreamingData, scoring streams
    parquet_split.py  one streamed split: row groups read, sharded and shuffled chunk-wise
    spec.py, batch.py the contracts with the model side

Names are imported lazily so that `adaptive_loop.data.batch` stays cheap to import.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DataConfig": "adaptive_loop.data.pipeline",
    "PreparedData": "adaptive_loop.data.pipeline",
    "prepare_data": "adaptive_loop.data.pipeline",
    "encode_for_scoring": "adaptive_loop.data.pipeline",
    "FeatureEncoder": "adaptive_loop.data.encoders",
    "DatasetSchema": "adaptive_loop.data.schema",
    "CategoricalField": "adaptive_loop.data.schema",
    "NumericField": "adaptive_loop.data.schema",
    "SequenceField": "adaptive_loop.data.schema",
    "read_table": "adaptive_loop.data.readers",
    "RawDataset": "adaptive_loop.data.datasets",
    "load_raw_dataset": "adaptive_loop.data.datasets",
    "available_datasets": "adaptive_loop.data.datasets",
    "EncodedData": "adaptive_loop.data.batch",
    "Batch": "adaptive_loop.data.batch",
    "FeatureSpec": "adaptive_loop.data.spec",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'adaptive_loop.data' has no attribute {name!r}")
