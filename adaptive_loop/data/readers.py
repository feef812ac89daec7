"""Reading CSV/TSV/parquet files into pandas and checking them against a schema: the one door for files.

Every part of the library that opens a data file asks this module what the file is
(`table_format`: the suffix and delimiter tables live here only) and reads it here: whole
(`read_table`, training and tracing data) or chunk by chunk (`iter_table_chunks`, the engine
scoring files larger than memory). Either way every problem a user can cause with a data
file is reported as one `DataError` that names the file, the column and the offending
values, instead of a pandas traceback several frames deep: a missing or empty file, an
undecodable encoding, the wrong delimiter, missing columns, labels outside {0, 1}, NaN/inf
labels, and non-numeric or infinite values in numeric fields. `validate_frame` runs the same
checks on a DataFrame built in memory. Parquet files, folders and globs are listed here
too (`list_parquet_files`, `scan_row_groups`); reading them row group by row group, for data
larger than memory, is `adaptive_loop.data.streaming`.
"""

from __future__ import annotations

import contextlib
import difflib
import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from adaptive_loop.data.schema import DatasetSchema
from adaptive_loop.errors import DataError

PARQUET_SUFFIXES = (".parquet", ".pq")
DELIMITERS = {".csv": ",", ".tsv": "\t", ".tab": "\t", ".txt": "\t"}
COMPRESSIONS = (".gz", ".bz2", ".zip", ".xz", ".zst")
_CANDIDATE_DELIMITERS = [",", "\t", ";", "|", " "]


def table_format(path: str | Path) -> tuple[str, str | None]:
    """What a file name says the file is: ("parquet", None), ("delimited", separator) or ("unknown", None).

    A compression suffix (`.csv.gz`) is looked through; `.csv` is comma-separated and
    `.tsv` / `.tab` / `.txt` tab-separated.
    """
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] in PARQUET_SUFFIXES:
        return "parquet", None
    compressed = bool(suffixes) and suffixes[-1] in COMPRESSIONS
    ext = suffixes[-2] if compressed and len(suffixes) > 1 else (suffixes[-1] if suffixes else "")
    if ext in DELIMITERS:
        return "delimited", DELIMITERS[ext]
    return "unknown", None


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
    source = _existing_file(path)
    kind, sep = table_format(source)
    if kind == "parquet":
        frame = _read_parquet(source)
    else:
        frame = _read_delimited(source, schema, delimiter if delimiter is not None else sep or ",", encoding)
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


def iter_table_chunks(
    path: str | Path,
    chunk_rows: int,
    schema: DatasetSchema | None = None,
    delimiter: str | None = None,
    encoding: str = "utf-8",
) -> Iterator[pd.DataFrame]:
    """A CSV/TSV file as frames of at most `chunk_rows` rows, read lazily with `read_table`'s checks.

    The file itself is checked now (it exists, is a file, is not empty); reading problems
    (encoding, delimiter, parsing) surface as the same `DataError`s as `read_table` while
    the chunks are read. Frames are not validated against the schema (new rows to score may
    lack the label); text columns of the schema are read as strings.
    """
    source = _existing_file(path)
    sep = delimiter if delimiter is not None else table_format(source)[1] or ","
    dtype = _text_dtypes(schema)

    def chunks() -> Iterator[pd.DataFrame]:
        with _parse_errors(source, sep, encoding):
            reader = pd.read_csv(source, sep=sep, encoding=encoding, dtype=dtype or None, chunksize=chunk_rows)
            for i, frame in enumerate(reader):
                if i == 0:
                    _check_delimiter(frame, schema, source, sep)
                yield frame

    return chunks()


def _existing_file(path: str | Path) -> Path:
    source = Path(path)
    if not source.exists():
        raise DataError(f"data file {source} does not exist")
    if source.is_dir():
        raise DataError(f"data file {source} is a directory, not a file")
    if source.stat().st_size == 0:
        raise DataError(f"data file {source} is empty (0 bytes)")
    return source


def _text_dtypes(schema: DatasetSchema | None) -> dict[str, Any]:
    """Categorical, sequence and group columns as strings (zip codes keep their leading zeros)."""
    if schema is None:
        return {}
    text_columns = [f.name for f in schema.categorical] + [s.name for s in schema.sequences]
    if schema.group is not None:
        text_columns.append(schema.group)
    return {name: "string" for name in text_columns}


@contextlib.contextmanager
def _parse_errors(source: Path, sep: str, encoding: str) -> Iterator[None]:
    """pandas' reading errors as one `DataError` naming the file (and the delimiter or encoding)."""
    try:
        yield
    except DataError:
        raise
    except UnicodeDecodeError as exc:
        raise DataError(
            f"data file {source} cannot be decoded as {encoding} (byte {exc.object[exc.start:exc.start + 1]!r} at "
            f"position {exc.start}); pass the right encoding, e.g. encoding='latin-1'"
        ) from None
    except pd.errors.EmptyDataError:
        raise DataError(f"data file {source} is empty (no header row)") from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(f"data file {source} could not be parsed with delimiter {sep!r}: {_first_line(exc)}") from None


def _read_delimited(source: Path, schema: DatasetSchema | None, sep: str, encoding: str) -> pd.DataFrame:
    dtype = _text_dtypes(schema)
    with _parse_errors(source, sep, encoding):
        frame = pd.read_csv(source, sep=sep, encoding=encoding, dtype=dtype or None, low_memory=False)
    _check_delimiter(frame, schema, source, sep)
    return frame


def _check_delimiter(frame: pd.DataFrame, schema: DatasetSchema | None, source: Path, sep: str) -> None:
    """One column where the schema declares several: the delimiter is wrong (named, with a guess)."""
    if schema is not None and frame.shape[1] == 1 and len(schema.columns()) > 1:
        header = str(frame.columns[0])
        guess = next((d for d in _CANDIDATE_DELIMITERS if d != sep and d in header), None)
        hint = f"; the header looks {guess!r}-separated, pass delimiter={guess!r}" if guess else ""
        raise DataError(
            f"data file {source} has a single column {header[:80]!r} with delimiter {sep!r}, but the schema "
            f"declares {len(schema.columns())} columns: wrong delimiter{hint}"
        )


# --------------------------------------------------------------------------- parquet files and folders
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
