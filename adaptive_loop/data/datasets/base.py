"""What every dataset loader returns, where the public data lives, and how splits are cut."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from adaptive_loop.data.schema import DatasetSchema
from adaptive_loop.errors import ConfigError, DataError

DATA_ROOT_ENV = "ADAPTIVE_LOOP_DATA_ROOT"
#: The names of a dataset's splits, in order: every module that names a split uses these.
SPLITS = ("train", "valid", "test")
_HOW_TO_POINT = (
    f"point at the data folder with --data-root PATH (or data.data_root in the config) or the {DATA_ROOT_ENV} "
    "environment variable, or download a public dataset with `adaptive-loop datasets fetch NAME` (see `adaptive-loop datasets`)"
)


@dataclass
class RawDataset:
    """A dataset before encoding: three pandas splits and the schema that describes them.

    `extra_columns` are per-row columns that are not features but travel with the encoded
    data into traces (e.g. the synthetic ground truth `needed_depth`).
    """

    name: str
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    schema: DatasetSchema
    description: str = ""
    extra_columns: tuple[str, ...] = ()
    info: dict[str, object] = field(default_factory=dict)

    def splits(self) -> dict[str, pd.DataFrame]:
        """The three splits by name: `{'train': ..., 'valid': ..., 'test': ...}`."""
        return {name: getattr(self, name) for name in SPLITS}


def data_root_candidates(data_root: str | os.PathLike[str] | None = None) -> list[Path]:
    """Where the public data is looked for, in order: the argument, the environment
    variable, `../shared/data` from the current directory, then next to the repository."""
    if data_root is not None:
        return [Path(data_root).expanduser()]
    env = os.environ.get(DATA_ROOT_ENV)
    if env:
        return [Path(env).expanduser()]
    checkout = Path(__file__).resolve().parents[3]  # the repository folder
    return [Path.cwd() / ".." / "shared" / "data", checkout.parent / "shared" / "data"]


def resolve_data_root(data_root: str | os.PathLike[str] | None = None) -> Path:
    """The first existing data root; a `DataError` saying how to point at it otherwise."""
    candidates = data_root_candidates(data_root)
    for path in candidates:
        if path.is_dir():
            return path.resolve()
    tried = ", ".join(str(p) for p in candidates)
    raise DataError(f"data root not found (tried {tried}); {_HOW_TO_POINT}")


def require_file(root: Path, *parts: str) -> Path:
    """`root/parts...`, or a `DataError` naming the missing path."""
    path = root.joinpath(*parts)
    if not path.is_file():
        raise DataError(f"data file {path} does not exist under the data root {root}; {_HOW_TO_POINT}")
    return path


def check_fractions(fractions: tuple[float, ...] | list[float]) -> tuple[float, float, float]:
    """Validate train/valid/test fractions (three positive numbers summing to 1)."""
    values = tuple(float(f) for f in fractions)
    if len(values) != 3 or any(f <= 0 for f in values) or abs(sum(values) - 1.0) > 1e-6:
        raise ConfigError(f"split fractions must be three positive numbers summing to 1, got {list(fractions)}")
    return values  # type: ignore[return-value]


def random_split(frame: pd.DataFrame, fractions: tuple[float, ...], seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Shuffle rows with `seed` and cut them train/valid/test by `fractions`."""
    train_f, valid_f, _ = check_fractions(fractions)
    n = len(frame)
    order = np.random.default_rng(seed).permutation(n)
    n_train = int(round(n * train_f))
    n_valid = int(round(n * valid_f))
    parts = (order[:n_train], order[n_train : n_train + n_valid], order[n_train + n_valid :])
    return tuple(frame.iloc[np.sort(p)].reset_index(drop=True) for p in parts)  # type: ignore[return-value]


def time_split(frame: pd.DataFrame, column: str, fractions: tuple[float, ...]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Cut by global quantiles of `column`: rows before the train quantile train, and so on.

    Rows sharing a timestamp never straddle a boundary, so no split sees the future of another.
    """
    train_f, valid_f, _ = check_fractions(fractions)
    if column not in frame.columns:
        raise DataError(f"time column {column!r} is not in the data (columns: {', '.join(map(str, frame.columns[:20]))})")
    times = frame[column]
    if not (pd.api.types.is_numeric_dtype(times) or pd.api.types.is_datetime64_any_dtype(times)):
        parsed = pd.to_datetime(times, errors="coerce")
        if parsed.isna().any():
            raise DataError(f"time column {column!r} holds values that are neither numbers nor dates")
        times = parsed
    values = times.to_numpy()
    numeric = values.astype("datetime64[ns]").astype(np.int64) if values.dtype.kind == "M" else values.astype(np.float64)
    t1, t2 = np.quantile(numeric, [train_f, train_f + valid_f])
    parts = (numeric <= t1, (numeric > t1) & (numeric <= t2), numeric > t2)
    return tuple(frame[m].reset_index(drop=True) for m in parts)  # type: ignore[return-value]
