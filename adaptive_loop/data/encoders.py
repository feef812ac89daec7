"""`FeatureEncoder`: raw DataFrame -> `EncodedData`, with state fitted on the training split.

What is learnt from the training split only (so valid/test never leak into it):
- one `Vocabulary` per vocabulary name (a field's own, or a shared one such as the item
  vocabulary used by both `item` and `hist_items`, fitted on the union of their training
  values); ids 0 = missing/padding, 1 = OOV (unseen, or rarer than `min_count`), 2.. known;
- numeric means and standard deviations (NaN -> 0 after standardising, plus an optional
  `<name>_missing` flag column when the training split had missing values);
- the training group values (new groups at transform time get fresh codes: groups only
  serve gAUC, so a code just has to be consistent within one split).

The fitted state is plain JSON (`save` / `load`), never a pickle, so an encoder file from
elsewhere cannot run code. Everything is vectorised: see `columns.py`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from adaptive_loop.data.batch import EncodedData
from adaptive_loop.data.columns import as_strings, as_token_lists, check_sequence, pad_last
from adaptive_loop.data.numeric_stats import NumericStats, RunningMoments, numeric_stats
from adaptive_loop.data.readers import validate_frame
from adaptive_loop.data.schema import DatasetSchema, SequenceField
from adaptive_loop.data.spec import CategoricalFeature, FeatureSpec, NumericFeature, SequenceFeature
from adaptive_loop.data.vocabulary import Vocabulary, count_values
from adaptive_loop.errors import DataError, NotFittedError
from adaptive_loop.io import write_json

FORMAT = "adaptive-loop/feature-encoder"
VERSION = 1
MISSING_SUFFIX = "_missing"


class FeatureEncoder:
    """Fit vocabularies and scalers on a training DataFrame; encode any split the same way."""

    def __init__(self, schema: DatasetSchema, min_count: int = 1):
        if min_count < 1:
            raise DataError(f"min_count must be >= 1, got {min_count}")
        self.schema = schema
        self.min_count = int(min_count)
        self.vocabularies: dict[str, Vocabulary] = {}
        self.numeric_stats: dict[str, NumericStats] = {}
        self.group_values: list[str] | None = None
        self._group_index: pd.Index | None = None
        self._fitted = False

    # ------------------------------------------------------------------ fitting
    @property
    def is_fitted(self) -> bool:
        return self._fitted

    def fit(self, train: pd.DataFrame) -> "FeatureEncoder":
        """Learn vocabularies, numeric statistics and group codes from the training split."""
        schema = self.schema
        train = validate_frame(train, schema, source="training split")
        counts: dict[str, list[pd.Series]] = {}
        for f in schema.categorical:
            counts.setdefault(schema.vocab_name(f.name), []).append(count_values(as_strings(train[f.name], f.name)))
        for s in schema.sequences:
            tokens = _sequence_tokens(train, s, "training split")[1]
            counts.setdefault(schema.vocab_name(s.name), []).append(count_values(tokens))
        self.vocabularies = {
            name: Vocabulary.fit(pd.concat(parts) if len(parts) > 1 else parts[0], self._vocab_min_count(name))
            for name, parts in counts.items()
        }
        self.numeric_stats = {f.name: numeric_stats(train[f.name].to_numpy(dtype=np.float64), f) for f in schema.numeric}
        if schema.group is not None:
            groups = as_strings(train[schema.group], schema.group)
            self.group_values = pd.unique(pc.fill_null(groups, "").to_numpy(zero_copy_only=False)).astype(str).tolist()
        self._group_index = None
        self._fitted = True
        return self

    def fit_chunks(
        self,
        chunks: Iterable[pd.DataFrame],
        validated: bool = False,
        progress: bool = False,
        total_rows: int | None = None,
    ) -> "FeatureEncoder":
        """`fit` on a training split given as a stream of DataFrame chunks (for data larger than memory).

        Gives the same vocabularies and group order as `fit` on the concatenated chunks, and
        the same numeric statistics up to floating-point rounding (chunk statistics are
        merged with Chan et al.'s parallel mean/variance update). Memory holds one chunk
        plus the value counts. `validated=True` skips `validate_frame` for chunks the caller
        already checked; a chunk's `attrs["source"]` names it in error messages.
        """
        from tqdm.auto import tqdm

        schema = self.schema
        counts: dict[str, list[pd.Series]] = {}
        moments = {f.name: RunningMoments() for f in schema.numeric}
        groups: dict[str, None] = {}
        rows = 0
        bar = tqdm(total=total_rows, desc="fitting encoders", unit="rows", disable=not progress, leave=False)
        for i, chunk in enumerate(chunks):
            source = chunk.attrs.get("source", f"training chunk {i}")  # e.g. the parquet file and row group
            frame = chunk if validated else validate_frame(chunk, schema, source=source)
            for f in schema.categorical:
                counts.setdefault(schema.vocab_name(f.name), []).append(count_values(as_strings(frame[f.name], f.name)))
            for s in schema.sequences:
                tokens = _sequence_tokens(frame, s, source)[1]
                counts.setdefault(schema.vocab_name(s.name), []).append(count_values(tokens))
            for name in counts:
                if len(counts[name]) > 32:  # keep memory at the vocabulary size, not the number of chunks
                    counts[name] = [pd.concat(counts[name]).groupby(level=0).sum()]
            for f in schema.numeric:
                moments[f.name].add(frame[f.name].to_numpy(dtype=np.float64))
            if schema.group is not None:
                values = pc.fill_null(as_strings(frame[schema.group], schema.group), "").to_numpy(zero_copy_only=False)
                groups.update(dict.fromkeys(pd.unique(values).astype(str).tolist()))
            rows += len(frame)
            bar.update(len(frame))
        bar.close()
        if rows == 0:
            raise DataError("the training split has no rows to fit the encoders on")
        self.vocabularies = {
            name: Vocabulary.fit(pd.concat(parts) if len(parts) > 1 else parts[0], self._vocab_min_count(name))
            for name, parts in counts.items()
        }
        self.numeric_stats = {f.name: moments[f.name].stats(f) for f in schema.numeric}
        self.group_values = list(groups) if schema.group is not None else None
        self._group_index = None
        self._fitted = True
        return self

    def fit_transform(self, train: pd.DataFrame, extras: Sequence[str] = ()) -> EncodedData:
        """Fit on the training frame `train` and encode it (keeping the `extras` columns)."""
        return self.fit(train).transform(train, extras=extras, source="training split")

    def _vocab_min_count(self, vocab: str) -> int:
        """A shared vocabulary takes the largest explicit min_count among its fields."""
        explicit = [
            f.min_count
            for f in (*self.schema.categorical, *self.schema.sequences)
            if f.min_count is not None and self.schema.vocab_name(f.name) == vocab
        ]
        return max(explicit) if explicit else self.min_count

    # ------------------------------------------------------------------ encoding
    def transform(
        self,
        frame: pd.DataFrame,
        extras: Sequence[str] = (),
        require_label: bool = True,
        source: str = "data frame",
    ) -> EncodedData:
        """Encode `frame`; unseen categories become OOV. Without a label column (and
        `require_label=False`) labels are NaN. `extras` columns are carried through as arrays."""
        self._check_fitted("transform")
        schema = self.schema
        frame = validate_frame(frame, schema, source=source, require_label=require_label)
        n = len(frame)
        cat = np.zeros((n, len(schema.categorical)), dtype=np.int64)
        for j, f in enumerate(schema.categorical):
            cat[:, j] = self.vocabularies[schema.vocab_name(f.name)].lookup(as_strings(frame[f.name], f.name))
        num = self._encode_numeric(frame, n)
        seq: dict[str, np.ndarray] = {}
        for s in schema.sequences:
            lengths, tokens = _sequence_tokens(frame, s, source)
            ids = self.vocabularies[schema.vocab_name(s.name)].lookup(tokens)
            seq[s.name] = pad_last(ids, lengths, s.max_len)
        if schema.label in frame.columns:
            labels = frame[schema.label].to_numpy(dtype=np.float32, copy=True)
        else:
            labels = np.full(n, np.nan, dtype=np.float32)
        return EncodedData(
            cat=cat,
            num=num,
            seq=seq,
            labels=labels,
            ids=self._encode_ids(frame, source),
            groups=self._encode_groups(frame),
            extras=self._extras(frame, extras, seq, source),
        )

    def _encode_numeric(self, frame: pd.DataFrame, n: int) -> np.ndarray:
        columns: list[np.ndarray] = []
        for f in self.schema.numeric:
            stats = self.numeric_stats[f.name]
            raw = frame[f.name].to_numpy(dtype=np.float64, na_value=np.nan)
            missing = np.isnan(raw)
            values = (raw - stats.mean) / stats.std
            values[missing] = 0.0
            columns.append(values)
            if stats.flag:
                columns.append(missing.astype(np.float64))
        if not columns:
            return np.zeros((n, 0), dtype=np.float32)
        return np.stack(columns, axis=1).astype(np.float32)

    def _encode_ids(self, frame: pd.DataFrame, source: str) -> np.ndarray:
        column = self.schema.id
        if column is None:
            return np.arange(len(frame), dtype=np.int64)
        numbers = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        if np.isnan(numbers).any() or not np.all(np.floor(numbers) == numbers):
            raise DataError(f"{source}: id column {column!r} must hold integers (no missing values)")
        return numbers.astype(np.int64)

    def _encode_groups(self, frame: pd.DataFrame) -> np.ndarray | None:
        column = self.schema.group
        if column is None or self.group_values is None:
            return None
        if self._group_index is None:
            self._group_index = pd.Index(np.asarray(self.group_values, dtype=object), dtype=object)
        values = pc.fill_null(as_strings(frame[column], column), "").to_numpy(zero_copy_only=False).astype(object)
        codes = self._group_index.get_indexer(values).astype(np.int64)
        unseen = codes < 0
        if unseen.any():
            fresh, _ = pd.factorize(values[unseen])
            codes[unseen] = len(self.group_values) + fresh
        return codes

    def _extras(self, frame: pd.DataFrame, names: Sequence[str], seq: dict[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for name in names:
            if name not in frame.columns:
                raise DataError(f"{source}: extra column {name!r} is missing")
            column = frame[name]
            if pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype):
                out[name] = column.to_numpy(copy=True)
            else:
                out[name] = column.astype(str).to_numpy(dtype=object)
        token = [s for s in self.schema.sequences if not s.pooled] or list(self.schema.sequences)
        if token and "seq_len" not in out:
            out["seq_len"] = (seq[token[0].name] != 0).sum(axis=1).astype(np.int64)
        return out

    # ------------------------------------------------------------------ spec
    def feature_spec(self) -> FeatureSpec:
        """The encoded layout for the model: fields in `EncodedData` column order, vocabulary sizes."""
        self._check_fitted("feature_spec")
        schema = self.schema
        users: dict[str, int] = {}
        for name in [f.name for f in schema.categorical] + [s.name for s in schema.sequences]:
            vocab = schema.vocab_name(name)
            users[vocab] = users.get(vocab, 0) + 1

        def shared(name: str) -> str:
            vocab = schema.vocab_name(name)
            return vocab if users[vocab] > 1 or vocab != name else ""

        categorical = tuple(
            CategoricalFeature(f.name, self.vocabularies[schema.vocab_name(f.name)].size, shared(f.name))
            for f in schema.categorical
        )
        numeric: list[NumericFeature] = []
        for f in schema.numeric:
            numeric.append(NumericFeature(f.name))
            if self.numeric_stats[f.name].flag:
                numeric.append(NumericFeature(f.name + MISSING_SUFFIX))
        sequences = tuple(
            SequenceFeature(s.name, self.vocabularies[schema.vocab_name(s.name)].size, s.max_len, shared(s.name), s.pooled)
            for s in schema.sequences
        )
        groups = None
        if schema.token_groups is not None:
            groups = tuple(
                tuple(
                    n
                    for name in group
                    for n in ([name, name + MISSING_SUFFIX] if name in self.numeric_stats and self.numeric_stats[name].flag else [name])
                )
                for group in schema.token_groups
            )
        return FeatureSpec(
            categorical=categorical,
            numeric=tuple(numeric),
            sequences=sequences,
            token_groups=groups,
            extras={"label": schema.label, "group": schema.group},
        )

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """The fitted encoder as JSON-ready data: schema, vocabularies, numeric statistics, groups.

        Raises `NotFittedError` before `fit`.
        """
        self._check_fitted("save")
        return {
            "format": FORMAT,
            "version": VERSION,
            "schema": self.schema.to_dict(),
            "min_count": self.min_count,
            "vocabularies": {name: {"min_count": v.min_count, "values": v.values} for name, v in self.vocabularies.items()},
            "numeric": {name: {"mean": s.mean, "std": s.std, "flag": s.flag} for name, s in self.numeric_stats.items()},
            "groups": self.group_values,
        }

    def save(self, path: str | Path) -> Path:
        """Write the fitted encoder as JSON, atomically."""
        return write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "encoder") -> "FeatureEncoder":
        """Rebuild a fitted encoder from `to_dict` output.

        Raises `DataError` naming `source` if `raw` is not a saved encoder, has another format
        version, or is corrupted.
        """
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise DataError(f"{source} is not a saved feature encoder (missing format {FORMAT!r})")
        if raw.get("version") != VERSION:
            raise DataError(f"{source}: encoder format version {raw.get('version')!r} is not supported (expected {VERSION})")
        try:
            encoder = cls(DatasetSchema.from_dict(raw["schema"]), min_count=int(raw["min_count"]))
            encoder.vocabularies = {
                name: Vocabulary([str(v) for v in item["values"]], int(item["min_count"]))
                for name, item in raw["vocabularies"].items()
            }
            encoder.numeric_stats = {
                name: NumericStats(float(item["mean"]), float(item["std"]), bool(item["flag"]))
                for name, item in raw["numeric"].items()
            }
            groups = raw.get("groups")
            encoder.group_values = None if groups is None else [str(g) for g in groups]
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{source} is a corrupted feature encoder ({type(exc).__name__}: {exc})") from None
        encoder._fitted = True
        return encoder

    @classmethod
    def load(cls, path: str | Path) -> "FeatureEncoder":
        """Read an encoder written by `save`."""
        source = Path(path)
        if not source.is_file():
            raise DataError(f"encoder file {source} does not exist")
        try:
            raw = json.loads(source.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"encoder file {source} is not valid JSON ({exc})") from None
        return cls.from_dict(raw, source=f"encoder file {source}")

    def _check_fitted(self, what: str) -> None:
        if not self._fitted:
            raise NotFittedError(f"FeatureEncoder.{what}() called before fit(); fit it on the training split first")


def _sequence_tokens(frame: pd.DataFrame, field: SequenceField, source: str) -> tuple[np.ndarray, Any]:
    """(lengths, tokens) of a sequence column, checked against the field's token type and overflow rule."""
    lengths, tokens = as_token_lists(frame[field.name], field.delimiter, field.name)
    check_sequence(tokens, lengths, field.name, source, field.token_type,
                   field.max_len if field.overflow == "error" else None)
    return lengths, tokens
