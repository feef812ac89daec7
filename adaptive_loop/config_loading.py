"""Typed construction of config dataclasses from plain mappings (parsed YAML).

One mechanism shared by every config section (`RunConfig`, each model's config, ...): each key is
checked against the dataclass fields, each value against the field's type hint, nested
dataclasses are built recursively, and every problem is a `ConfigError` naming the full
dotted key (for example `train.learning_rate`) and the closest valid key. The module depends
on nothing but the standard library and `adaptive_loop.errors`, so model code can use it
without importing the training stack.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, TypeVar

from adaptive_loop.errors import ConfigError

T = TypeVar("T")


def from_dict(cls: type[T], raw: Any, where: str = "") -> T:
    """Build dataclass `cls` from a mapping, checking every key and value type.

    `where` is the dotted path of this section in the whole config ("" at the top level),
    used in error messages. Unknown keys raise `ConfigError` naming the closest valid key
    (or listing every valid key); ints are accepted where floats are expected. A field whose
    metadata names a `parse` function is built by it, `parse(value, dotted_key)` (the run
    config's `model` section: its `name` picks the dataclass).
    """
    label = where or cls.__name__
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{label}: expected a mapping of keys to values, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in fields:
            close = closest_key(str(key), list(fields))
            hint = (
                f"; did you mean {close!r}?"
                if close
                else f"; valid keys: {', '.join(repr(name) for name in sorted(fields))}"
            )
            raise ConfigError(f"unknown config key {_join(where, key)!r}{hint}")
        parse = fields[key].metadata.get("parse")
        values[key] = parse(value, _join(where, key)) if parse else _coerce(hints[key], value, _join(where, key))
    try:
        return cls(**values)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{label}: {exc}") from None


def parse_scalar(text: str) -> Any:
    """A value written on a command line (`--param k=v`, `name:k=v`): bool, None, int, float or the string."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def closest_key(key: str, valid: list[str]) -> str | None:
    """The valid key a mistyped `key` most likely meant, or None.

    A close spelling first (`train_loop` -> `train_loops`), then an abbreviation in either
    direction by the initials of the underscore-separated words (`learning_rate` -> `lr`,
    `wd` -> `weight_decay`).
    """
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    if close:
        return close[0]

    def initials(name: str) -> str:
        return "".join(part[0] for part in name.lower().split("_") if part)

    for name in valid:
        if "_" in key and initials(key) == name.lower() or "_" in name and initials(name) == key.lower():
            return name
    return None


def _join(prefix: str, key: Any) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(option, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{where}: value {value!r} does not fit {hint}")
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)  # type: ignore[arg-type]
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            return tuple(_coerce(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        inner = args[0] if args else Any
        items = [_coerce(inner, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    return value
