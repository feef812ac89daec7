"""Turning raw pandas columns into Arrow string arrays, vectorised.

Categorical values and sequence tokens are compared as strings: an item column read as
int (`5`), a float column with NaN (`5.0`) and a history string `"3|5"` must all agree on
the token `"5"`. Arrow does the conversion, splitting and hashing in C, so encoding millions
of rows never loops over rows in Python.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from adaptive_loop.errors import DataError


def as_strings(values: pd.Series, column: str) -> pa.Array:
    """One categorical column as an Arrow string array (nulls stay null).

    Integral floats (ints that became floats because of NaN) are written without `.0`.
    """
    arr = _to_arrow(values, column)
    return _stringify(arr, column)


def as_token_lists(values: pd.Series, delimiter: str, column: str) -> tuple[np.ndarray, pa.Array]:
    """A sequence column as (`lengths` int64 [n], flat string tokens).

    Accepts delimiter-separated strings, list/array cells, or an Arrow list column. Empty
    tokens and missing cells are dropped (a missing cell is an empty sequence); tokens are
    stripped of surrounding whitespace.
    """
    arr = _to_arrow(values, column)
    if pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type) or pa.types.is_fixed_size_list(arr.type):
        lists = arr
    else:
        text = _stringify(arr, column)
        lists = pc.split_pattern(text, pattern=delimiter)
    lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    flat = lists.flatten()
    tokens = pc.utf8_trim_whitespace(_stringify(flat, column))
    keep = pc.and_(pc.is_valid(tokens), pc.not_equal(pc.fill_null(tokens, ""), ""))
    keep_np = keep.to_numpy(zero_copy_only=False)
    if not keep_np.all():
        rows = np.repeat(np.arange(len(lengths)), lengths)
        lengths = np.bincount(rows[keep_np], minlength=len(lengths)).astype(np.int64)
        tokens = tokens.filter(keep)
    return lengths, tokens


def check_sequence(
    tokens: pa.Array, lengths: np.ndarray, column: str, source: str, token_type: str = "any",
    max_len: int | None = None,
) -> None:
    """Raise `DataError` for non-integer tokens (`token_type="int"`) or rows longer than `max_len`.

    The message names the column, the first offending row and its value, so the file can be fixed.
    """
    if max_len is not None and lengths.size and lengths.max() > max_len:
        row = int(np.argmax(lengths > max_len))
        raise DataError(
            f"{source}: sequence column {column!r} has {int((lengths > max_len).sum())} row(s) longer than "
            f"max_len={max_len}, first at row {row} ({int(lengths[row])} tokens); raise max_len or set "
            "overflow: truncate to keep the last max_len tokens"
        )
    if token_type == "int" and len(tokens):
        ok = pc.match_substring_regex(tokens, r"^[+-]?[0-9]+$").to_numpy(zero_copy_only=False)
        if not ok.all():
            first = int(np.argmin(ok))
            row = int(np.searchsorted(np.cumsum(lengths), first, side="right"))
            raise DataError(
                f"{source}: sequence column {column!r} declares integer tokens but has {int((~ok).sum())} "
                f"non-integer token(s) such as {tokens[first].as_py()!r} (first at row {row}); fix the data or "
                "set token_type: any"
            )


def pad_last(ids: np.ndarray, lengths: np.ndarray, max_len: int) -> np.ndarray:
    """Left-aligned [n, max_len] int64 matrix of each row's last `max_len` ids, 0-padded."""
    n = len(lengths)
    out = np.zeros((n, max_len), dtype=np.int64)
    if ids.size == 0:
        return out
    ends = np.cumsum(lengths)
    kept = np.minimum(lengths, max_len)
    first = ends - kept  # flat index of each row's first kept token
    rows = np.repeat(np.arange(n), lengths)
    pos = np.arange(ids.size) - first[rows]
    mask = pos >= 0
    out[rows[mask], pos[mask]] = ids[mask]
    return out


def arrow_to_pandas(data: pa.Table | pa.RecordBatch) -> pd.DataFrame:
    """Arrow data as pandas with list columns kept Arrow-backed (no per-row Python objects).

    Mapping list types explicitly also sidesteps pandas' own parquet metadata for
    Arrow-backed list columns, which `pd.read_parquet` fails to parse
    ("data type 'list<item: int64>[pyarrow]' not understood").
    """

    def mapper(kind: pa.DataType) -> pd.ArrowDtype | None:
        if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
            return pd.ArrowDtype(kind)
        return None

    return data.to_pandas(types_mapper=mapper)


def _to_arrow(values: pd.Series, column: str) -> pa.Array:
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype(object)
    try:
        arr = pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        # mixed Python objects (ints and strings in one column): compare their text
        mask = values.isna().to_numpy()
        text = values.astype(str).to_numpy(dtype=object)
        arr = pa.array(text, type=pa.string(), mask=mask)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return arr


def _stringify(arr: pa.Array, column: str) -> pa.Array:
    kind = arr.type
    if pa.types.is_dictionary(kind):
        arr = arr.cast(kind.value_type)
        kind = arr.type
    if pa.types.is_string(kind):
        return arr
    if pa.types.is_large_string(kind):
        return arr.cast(pa.string())
    if pa.types.is_floating(kind):
        as_np = arr.to_numpy(zero_copy_only=False)
        finite = as_np[~np.isnan(as_np)]
        if finite.size == 0 or np.all(np.floor(finite) == finite) and np.all(np.abs(finite) < 2**62):
            arr = pc.cast(arr, pa.int64(), safe=False)
    if pa.types.is_null(kind):
        return pa.nulls(len(arr), type=pa.string())
    try:
        return pc.cast(arr, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataError(f"column {column!r}: values of type {kind} cannot be used as categories ({exc})") from None
