"""A user's own CSV/TSV/parquet files, described by a schema (a mapping or a YAML path).

Either three files (`train`, `valid`, `test`) used as they are, or one file (`path`) cut
into train/valid/test at random (seeded) or by a time column (`split="time"`,
`time_column=...`; the oldest rows train). Relative paths are taken as they are, then
under the data root if that holds them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from adaptive_loop.data.datasets.base import RawDataset, data_root_candidates, random_split, time_split
from adaptive_loop.data.readers import read_table
from adaptive_loop.data.schema import DatasetSchema, load_schema
from adaptive_loop.errors import ConfigError, DataError


def _locate(path: str, data_root: str | os.PathLike[str] | None) -> Path:
    candidate = Path(path).expanduser()
    if candidate.is_absolute() or candidate.exists():
        return candidate
    for root in data_root_candidates(data_root):
        if (root / candidate).exists():
            return root / candidate
    return candidate  # read_table reports it as missing


def load_files(
    data_root: str | os.PathLike[str] | None = None,
    schema: DatasetSchema | Mapping[str, Any] | str | None = None,
    path: str | None = None,
    train: str | None = None,
    valid: str | None = None,
    test: str | None = None,
    split: str = "random",
    time_column: str | None = None,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    delimiter: str | None = None,
    encoding: str = "utf-8",
    extra_columns: Sequence[str] = (),
    name: str = "files",
) -> RawDataset:
    """Load user files against `schema`; see the module docstring for the two layouts."""
    if schema is None:
        raise ConfigError(f"dataset {name!r} needs a schema (a mapping or a YAML file path): set data.schema")
    parsed = load_schema(schema)

    def read(file: str) -> Any:
        return read_table(_locate(file, data_root), parsed, delimiter=delimiter, encoding=encoding)

    separate = [train, valid, test]
    if path is not None and any(p is not None for p in separate):
        raise ConfigError(f"dataset {name!r}: give either one file (path) or train/valid/test files, not both")
    if path is None:
        if any(p is None for p in separate):
            raise ConfigError(f"dataset {name!r}: give one file (path) or all three of train, valid and test")
        parts = tuple(read(p) for p in separate)  # type: ignore[arg-type]
        how = "given train/valid/test files"
    else:
        frame = read(path)
        if split == "random":
            parts = random_split(frame, tuple(fractions), seed)
            how = f"random split of {path} (seed {seed})"
        elif split == "time":
            if not time_column:
                raise ConfigError(f"dataset {name!r}: split='time' needs time_column")
            parts = time_split(frame, time_column, tuple(fractions))
            how = f"time split of {path} on {time_column!r}"
        else:
            raise ConfigError(f"dataset {name!r}: split must be 'random' or 'time', got {split!r}")
    for label, part in zip(("train", "valid", "test"), parts):
        if len(part) == 0:
            raise DataError(f"dataset {name!r}: the {label} split is empty ({how})")
        missing = [c for c in extra_columns if c not in part.columns]
        if missing:
            raise DataError(f"dataset {name!r}: extra column(s) {', '.join(missing)} missing from the {label} split")
    return RawDataset(
        name=name,
        train=parts[0],
        valid=parts[1],
        test=parts[2],
        schema=parsed,
        description=f"user files: {how}",
        extra_columns=tuple(extra_columns),
    )
