"""A declarative description of a CTR dataset: which columns are features of which kind.

A schema names raw columns only; what the model sees (ids, vocabulary sizes) comes later
from the fitted `FeatureEncoder`. Keeping the two apart lets one schema describe a file
before anything has been read, and lets a YAML file describe a user's own data:

    label: click
    group: user            # optional, for gAUC
    id: null               # optional; the row index is used otherwise
    categorical:
      - user               # a plain name is a field with default settings
      - {name: item, min_count: 2}
    numeric: [price]
    sequences:
      - {name: hist_items, max_len: 20, vocab_from: item}
    token_groups: [[user], [item, price]]

Unknown keys raise `ConfigError` naming the key and the closest valid one, because a
misspelt option (`max_length` for `max_len`) silently ignored would change results.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, fields
from typing import Any, Iterable, Mapping

from adaptive_loop.errors import ConfigError


@dataclass(frozen=True)
class CategoricalField:
    """A single-valued categorical column (any dtype; values are compared as strings).

    `min_count`: values seen fewer times in the training split map to the OOV id
    (None = the pipeline's default). `vocab`: a shared vocabulary name; fields with the
    same name share one id space and one embedding table.
    """

    name: str
    min_count: int | None = None
    vocab: str | None = None


@dataclass(frozen=True)
class NumericField:
    """A numeric column, standardised with the training mean and std.

    NaN is allowed (filled with 0 after standardising). With `missing_flag`, a 0/1 column
    `<name>_missing` is added when the training split has missing values, so the model can
    tell a filled value from a real average one.
    """

    name: str
    missing_flag: bool = True


@dataclass(frozen=True)
class SequenceField:
    """A variable-length list of ids per row: a list column or a delimiter-separated string.

    Tokens are treated as strings and categorised by the encoder, so any token is valid
    unless `token_type: int` declares integer ids (then a token such as `x` or `2.5` is a
    `DataError` naming the column and row). Rows longer than `max_len` keep their last
    (most recent) `max_len` items; `overflow: error` makes such a row a `DataError` instead.
    `vocab_from` shares the vocabulary of a categorical field (a history of items uses the
    item field's ids); `vocab` names a shared vocabulary directly. `pooled=True` marks a
    multi-valued attribute (genres) that is mean-pooled into a global token; `pooled=False`
    sequences become the model's sequence tokens.
    """

    name: str
    max_len: int = 20
    delimiter: str = "|"
    vocab_from: str | None = None
    vocab: str | None = None
    pooled: bool = False
    min_count: int | None = None
    token_type: str = "any"
    overflow: str = "truncate"


TOKEN_TYPES = ("any", "int")
OVERFLOW_RULES = ("truncate", "error")


@dataclass(frozen=True)
class DatasetSchema:
    """Every column the pipeline uses, by role."""

    label: str
    categorical: tuple[CategoricalField, ...] = ()
    numeric: tuple[NumericField, ...] = ()
    sequences: tuple[SequenceField, ...] = ()
    group: str | None = None
    id: str | None = None
    token_groups: tuple[tuple[str, ...], ...] | None = None

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ queries
    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.categorical] + [f.name for f in self.numeric] + [s.name for s in self.sequences]

    def columns(self) -> list[str]:
        """Every raw column the schema reads (features, label, group, id), without duplicates."""
        names = [self.label, *self.feature_names]
        for extra in (self.group, self.id):
            if extra is not None:
                names.append(extra)
        return list(dict.fromkeys(names))

    def field(self, name: str) -> CategoricalField | NumericField | SequenceField:
        """The field called `name`; raises `ConfigError` (with the closest valid name) if the schema has none."""
        for f in (*self.categorical, *self.numeric, *self.sequences):
            if f.name == name:
                return f
        raise ConfigError(f"schema has no field {name!r}{_suggest(name, self.feature_names)}")

    def vocab_name(self, name: str) -> str:
        """The vocabulary a categorical or sequence field's ids live in."""
        f = self.field(name)
        if isinstance(f, NumericField):
            raise ConfigError(f"field {name!r} is numeric and has no vocabulary")
        if f.vocab:
            return f.vocab
        if isinstance(f, SequenceField) and f.vocab_from:
            return self.vocab_name(f.vocab_from)
        return f.name

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raise `ConfigError` for duplicate names, dangling references and bad sizes."""
        if not self.label:
            raise ConfigError("schema needs a 'label' column")
        names = self.feature_names
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise ConfigError(f"schema declares field {name!r} twice")
            seen.add(name)
        if self.label in seen:
            raise ConfigError(f"label column {self.label!r} is also declared as a feature")
        if not names:
            raise ConfigError("schema declares no feature fields (categorical, numeric or sequences)")
        categorical = {f.name for f in self.categorical}
        for f in self.categorical:
            if f.min_count is not None and f.min_count < 1:
                raise ConfigError(f"field {f.name!r}: min_count must be >= 1, got {f.min_count}")
        for s in self.sequences:
            if s.max_len < 1:
                raise ConfigError(f"sequence field {s.name!r}: max_len must be >= 1, got {s.max_len}")
            if not s.delimiter:
                raise ConfigError(f"sequence field {s.name!r}: delimiter must not be empty")
            if s.vocab_from is not None:
                if s.vocab_from not in categorical:
                    raise ConfigError(
                        f"sequence field {s.name!r}: vocab_from={s.vocab_from!r} is not a categorical field"
                        f"{_suggest(s.vocab_from, sorted(categorical))}"
                    )
                if s.vocab is not None:
                    raise ConfigError(f"sequence field {s.name!r}: give vocab_from or vocab, not both")
            if s.min_count is not None and s.min_count < 1:
                raise ConfigError(f"sequence field {s.name!r}: min_count must be >= 1, got {s.min_count}")
            if s.token_type not in TOKEN_TYPES:
                raise ConfigError(f"sequence field {s.name!r}: token_type must be one of {list(TOKEN_TYPES)}, got {s.token_type!r}")
            if s.overflow not in OVERFLOW_RULES:
                raise ConfigError(f"sequence field {s.name!r}: overflow must be one of {list(OVERFLOW_RULES)}, got {s.overflow!r}")
        token_lens = {s.max_len for s in self.sequences if not s.pooled}
        if len(token_lens) > 1:
            raise ConfigError(
                "all non-pooled sequence fields become aligned sequence tokens and must share max_len; "
                f"got {sorted(token_lens)}"
            )
        if self.token_groups is not None:
            allowed = {f.name for f in (*self.categorical, *self.numeric)} | {s.name for s in self.sequences if s.pooled}
            used: set[str] = set()
            for group in self.token_groups:
                if not group:
                    raise ConfigError("token_groups contains an empty group")
                for name in group:
                    if name not in allowed:
                        why = (
                            "is a non-pooled sequence (it becomes sequence tokens)"
                            if name in seen
                            else f"is not a declared field{_suggest(name, sorted(allowed))}"
                        )
                        raise ConfigError(f"token_groups: {name!r} {why}")
                    if name in used:
                        raise ConfigError(f"token_groups: field {name!r} appears in more than one group")
                    used.add(name)

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain, YAML-friendly mapping; `from_dict(to_dict())` gives an equal schema."""
        return {
            "label": self.label,
            "group": self.group,
            "id": self.id,
            "categorical": [asdict(f) for f in self.categorical],
            "numeric": [asdict(f) for f in self.numeric],
            "sequences": [asdict(s) for s in self.sequences],
            "token_groups": None if self.token_groups is None else [list(g) for g in self.token_groups],
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> "DatasetSchema":
        """Build a schema from a mapping (e.g. parsed YAML); unknown keys raise `ConfigError`."""
        if not isinstance(raw, Mapping):
            raise ConfigError(f"schema: expected a mapping, got {type(raw).__name__}")
        _check_keys(raw, [f.name for f in fields(cls)], "schema")
        groups = raw.get("token_groups")
        if groups is not None:
            if not isinstance(groups, (list, tuple)) or not all(isinstance(g, (list, tuple)) for g in groups):
                raise ConfigError("schema.token_groups: expected a list of lists of field names")
            groups = tuple(tuple(str(n) for n in g) for g in groups)
        label = raw.get("label")
        if not isinstance(label, str) or not label:
            raise ConfigError("schema.label: expected the name of the label column")
        return cls(
            label=label,
            categorical=tuple(_build(CategoricalField, item, "schema.categorical") for item in _as_list(raw, "categorical")),
            numeric=tuple(_build(NumericField, item, "schema.numeric") for item in _as_list(raw, "numeric")),
            sequences=tuple(_build(SequenceField, item, "schema.sequences") for item in _as_list(raw, "sequences")),
            group=_optional_str(raw, "group"),
            id=_optional_str(raw, "id"),
            token_groups=groups,
        )

    @classmethod
    def from_yaml(cls, path: str) -> "DatasetSchema":
        """Read a schema from a YAML file (safe loader)."""
        from pathlib import Path

        import yaml

        source = Path(path)
        if not source.is_file():
            raise ConfigError(f"schema file {source} does not exist")
        try:
            loaded = yaml.safe_load(source.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"schema file {source} is not valid YAML: {str(exc).splitlines()[0]}") from None
        try:
            return cls.from_dict(loaded or {})
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None


def load_schema(schema: "DatasetSchema | Mapping[str, Any] | str") -> DatasetSchema:
    """Accept a schema object, a mapping, or a path to a YAML file."""
    if isinstance(schema, DatasetSchema):
        return schema
    if isinstance(schema, Mapping):
        return DatasetSchema.from_dict(schema)
    if isinstance(schema, str):
        return DatasetSchema.from_yaml(schema)
    raise ConfigError(f"schema: expected a mapping or a YAML path, got {type(schema).__name__}")


# ---------------------------------------------------------------------- helpers
def _suggest(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(name), list(candidates), n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


def _check_keys(raw: Mapping[str, Any], valid: list[str], where: str) -> None:
    for key in raw:
        if key not in valid:
            hint = _suggest(str(key), valid) or f"; valid keys: {', '.join(valid)}"
            raise ConfigError(f"unknown key {where}.{key}{hint}")


def _as_list(raw: Mapping[str, Any], key: str) -> list[Any]:
    value = raw.get(key) or []
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"schema.{key}: expected a list of fields, got {type(value).__name__}")
    return list(value)


def _optional_str(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is None or isinstance(value, str):
        return value or None
    raise ConfigError(f"schema.{key}: expected a column name, got {value!r}")


def _build(cls: type, item: Any, where: str) -> Any:
    if isinstance(item, str):
        return cls(name=item)
    if not isinstance(item, Mapping):
        raise ConfigError(f"{where}: expected a field name or a mapping, got {item!r}")
    valid = [f.name for f in fields(cls)]
    label = f"{where}[{item.get('name', '?')}]"
    _check_keys(item, valid, label)
    if not isinstance(item.get("name"), str) or not item["name"]:
        raise ConfigError(f"{where}: every field needs a 'name'")
    types = {"min_count": int, "max_len": int, "pooled": bool, "missing_flag": bool}
    for key, value in item.items():
        expected = types.get(key)
        if expected is int and value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise ConfigError(f"{label}.{key}: expected an integer, got {value!r}")
        if expected is bool and not isinstance(value, bool):
            raise ConfigError(f"{label}.{key}: expected true/false, got {value!r}")
        if expected is None and key != "name" and value is not None and not isinstance(value, str):
            raise ConfigError(f"{label}.{key}: expected a string, got {value!r}")
    return cls(**item)
