"""Reading CSV/TSV/parquet files into pandas and checking them against a schema.

Every problem a user can cause with a data file is reported as one `DataError` that names
the file, the column and the offending values, instead of a pandas traceback several
frames deep: a missing or empty file, an undecodable encoding, the wrong delimiter,
missing columns, labels outside {0, 1}, NaN/inf labels, and non-numeric or infinite values
in numeric fields. `validate_frame` runs the same checks on a DataFrame built in memory.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from adaptive_loop.data.schema import DatasetSchema
from adaptive_loop.errors import DataError

_DELIMITERS = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".txt": "\t"}
_PARQUET = {".parquet", ".pq"}
_CANDIDATE_DELIMITERS = [",", "\t", ";", "|", " "]


def read_table(
    path: str | Path,
    schema: DatasetSchema | None = None,
    delimiter: str | None = None,
    encoding: str = "utf-8",
) -> pd.DataFrame:
    """Read one CSV/TSV/parquet file; with a schema, check and normalise it (`validate_frame`).

    The delimiter comes from the extension (`.csv` comma, `.tsv`/`.tab`/`.txt` tab) unless
    given. Categorical, sequence and group columns are read as strings so that values such
    as zip codes keep their leading zeros and a history `"5|7"` and an item `5` agree.
    """
    source = Path(path)
    if not source.exists():
        raise DataError(f"data file {source} does not exist")
    if source.is_dir():
        raise DataError(f"data file {source} is a directory, not a file")
    if source.stat().st_size == 0:
        raise DataError(f"data file {source} is empty (0 bytes)")
    suffixes = [s.lower() for s in source.suffixes]
    if suffixes and suffixes[-1] in _PARQUET:
        frame = _read_parquet(source)
    else:
        frame = _read_delimited(source, schema, delimiter, encoding, suffixes)
    if len(frame) == 0:
        raise DataError(f"data file {source} has a header but no data rows")
    if schema is None:
        return frame
    return validate_frame(frame, schema, source=str(source))


def _read_parquet(source: Path) -> pd.DataFrame:
    import pyarrow.parquet as pq

    from adaptive_loop.data.columns import arrow_to_pandas

    try:
        return arrow_to_pandas(pq.read_table(source))
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise DataError(f"data file {source} is not a readable parquet file ({_first_line(exc)})") from None


def _read_delimited(
    source: Path, schema: DatasetSchema | None, delimiter: str | None, encoding: str, suffixes: list[str]
) -> pd.DataFrame:
    compressed = suffixes[-1] in {".gz", ".bz2", ".zip", ".xz", ".zst"} if suffixes else False
    ext = suffixes[-2] if compressed and len(suffixes) > 1 else (suffixes[-1] if suffixes else "")
    sep = delimiter if delimiter is not None else _DELIMITERS.get(ext, ",")
    dtype: dict[str, Any] = {}
    if schema is not None:
        text_columns = [f.name for f in schema.categorical] + [s.name for s in schema.sequences]
        if schema.group is not None:
            text_columns.append(schema.group)
        dtype = {name: "string" for name in text_columns}
    try:
        frame = pd.read_csv(source, sep=sep, encoding=encoding, dtype=dtype or None, low_memory=False)
    except UnicodeDecodeError as exc:
        raise DataError(
            f"data file {source} cannot be decoded as {encoding} (byte {exc.object[exc.start:exc.start + 1]!r} at "
            f"position {exc.start}); pass the right encoding, e.g. encoding='latin-1'"
        ) from None
    except pd.errors.EmptyDataError:
        raise DataError(f"data file {source} is empty (no header row)") from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(f"data file {source} could not be parsed with delimiter {sep!r}: {_first_line(exc)}") from None
    if schema is not None and frame.shape[1] == 1 and len(schema.columns()) > 1:
        header = str(frame.columns[0])
        guess = next((d for d in _CANDIDATE_DELIMITERS if d != sep and d in header), None)
        hint = f"; the header looks {guess!r}-separated, pass delimiter={guess!r}" if guess else ""
        raise DataError(
            f"data file {source} has a single column {header[:80]!r} with delimiter {sep!r}, but the schema "
            f"declares {len(schema.columns())} columns: wrong delimiter{hint}"
        )
    return frame


def validate_frame(
    frame: pd.DataFrame, schema: DatasetSchema, source: str = "data frame", require_label: bool = True
) -> pd.DataFrame:
    """Check `frame` against `schema` and return it with the label as float32 0/1 and numeric
    columns as float64.

    Labels may be {0, 1}, {-1, 1} (mapped to 0/1) or bool; anything else, and NaN/inf, is a
    `DataError`. Numeric fields may hold NaN (the encoder fills it) but not text or inf.
    Sequence tokens are free-form strings, so they need no check here.
    """
    needed = schema.columns() if require_label else [c for c in schema.columns() if c != schema.label]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        present = [str(c) for c in frame.columns]
        details = []
        for name in missing:
            close = difflib.get_close_matches(name, present, n=1, cutoff=0.6)
            details.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        shown = ", ".join(present[:20]) + (" ..." if len(present) > 20 else "")
        raise DataError(f"{source}: missing column(s) {', '.join(details)}; columns present: {shown}")
    updates: dict[str, Any] = {}
    if schema.label in frame.columns:
        updates[schema.label] = normalise_labels(frame[schema.label], schema.label, source)
    for f in schema.numeric:
        updates[f.name] = check_numeric(frame[f.name], f.name, source)
    if updates:
        frame = frame.assign(**updates)
    return frame


def normalise_labels(values: pd.Series, column: str, source: str = "data frame") -> np.ndarray:
    """Labels as float32 0/1; accepts {0,1}, {-1,1} and bool, rejects anything else."""
    if pd.api.types.is_bool_dtype(values.dtype) and not values.isna().any():
        return values.to_numpy(dtype=np.float32)
    numbers = pd.to_numeric(values, errors="coerce")
    text_bad = numbers.isna() & values.notna()
    if text_bad.any():
        examples = _examples(values[text_bad])
        raise DataError(f"{source}: label column {column!r} has non-numeric values {examples}; expected 0/1, -1/1 or bool")
    arr = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
    nan = np.isnan(arr)
    if nan.any():
        row = int(np.flatnonzero(nan)[0])
        raise DataError(f"{source}: label column {column!r} has {int(nan.sum())} missing (NaN) value(s), first at row {row}")
    inf = np.isinf(arr)
    if inf.any():
        row = int(np.flatnonzero(inf)[0])
        raise DataError(f"{source}: label column {column!r} has {int(inf.sum())} infinite value(s), first at row {row}")
    distinct = np.unique(arr)
    if np.isin(distinct, [0.0, 1.0]).all():
        return arr.astype(np.float32)
    if np.isin(distinct, [-1.0, 1.0]).all():
        return (arr > 0).astype(np.float32)
    bad = [v for v in distinct if v not in (0.0, 1.0)][:5]
    raise DataError(
        f"{source}: label column {column!r} has values {_fmt_numbers(bad)} outside {{0, 1}}; labels must be "
        "0/1, -1/1 or bool (binarise ratings first, e.g. rating >= 4)"
    )


def check_numeric(values: pd.Series, column: str, source: str = "data frame") -> np.ndarray:
    """A numeric field as float64: NaN allowed, text and inf are `DataError`s."""
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.astype("float64").to_numpy(na_value=np.nan)
    numbers = pd.to_numeric(values, errors="coerce")
    text_bad = numbers.isna() & values.notna()
    if text_bad.any():
        row = int(np.flatnonzero(text_bad.to_numpy())[0])
        raise DataError(
            f"{source}: numeric column {column!r} has {int(text_bad.sum())} non-numeric value(s) such as "
            f"{_examples(values[text_bad])} (first at row {row}); declare it categorical or clean it"
        )
    arr = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
    inf = np.isinf(arr)
    if inf.any():
        row = int(np.flatnonzero(inf)[0])
        raise DataError(
            f"{source}: numeric column {column!r} has {int(inf.sum())} infinite value(s), first at row {row}; "
            "replace them (NaN is allowed and filled by the encoder)"
        )
    return arr


def _examples(values: pd.Series, k: int = 3) -> str:
    uniq = list(dict.fromkeys(values.astype(str).tolist()[:1000]))[:k]
    return ", ".join(repr(v) for v in uniq)


def _fmt_numbers(values: list[float]) -> str:
    return "{" + ", ".join(str(int(v)) if float(v).is_integer() else str(v) for v in values) + "}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
