"""Built-in datasets by name: `load_raw_dataset(name, data_root=None, **options)`.

| name | needs files | what |
|---|---|---|
| synthetic | no | seeded CTR data with a ground-truth needed depth per sample (the default) |
| frappe_x1 | yes | Frappe_x1 (NFM/AFN/BARS) valid/test + rebuilt train |
| movielens_100k | yes | ml-100k, rating >= 4, leakage-free history, time split |
| open_bandit | yes | Open Bandit sample, click label, for smoke tests |
| csv, parquet | user files | a user's own files with a schema (see `files.py`) |

Files are looked for under the data root: the `data_root` argument, else the
`ADAPTIVE_LOOP_DATA_ROOT` environment variable, else `../shared/data` from the current
directory, else `shared/data` next to the repository checkout.
"""

from __future__ import annotations

import difflib
import inspect
import os
from typing import Any, Callable

from adaptive_loop.data.datasets.base import RawDataset, resolve_data_root
from adaptive_loop.data.datasets.files import load_files
from adaptive_loop.data.datasets.frappe import load_frappe_x1
from adaptive_loop.data.datasets.movielens import load_movielens_100k
from adaptive_loop.data.datasets.open_bandit import load_open_bandit
from adaptive_loop.data.datasets.synthetic import generate_synthetic, load_synthetic
from adaptive_loop.errors import ConfigError

__all__ = [
    "RawDataset",
    "available_datasets",
    "dataset_options",
    "generate_synthetic",
    "load_raw_dataset",
    "resolve_data_root",
]


def _files(name: str) -> Callable[..., RawDataset]:
    def loader(data_root: Any = None, **options: Any) -> RawDataset:
        return load_files(data_root, name=name, **options)

    loader.__signature__ = inspect.signature(load_files).replace(  # type: ignore[attr-defined]
        parameters=[p for p in inspect.signature(load_files).parameters.values() if p.name != "name"]
    )
    loader.__doc__ = load_files.__doc__
    return loader


_REGISTRY: dict[str, Callable[..., RawDataset]] = {
    "synthetic": load_synthetic,
    "frappe_x1": load_frappe_x1,
    "movielens_100k": load_movielens_100k,
    "open_bandit": load_open_bandit,
    "csv": _files("csv"),
    "parquet": _files("parquet"),
}


def available_datasets() -> list[str]:
    """Names accepted by `load_raw_dataset` (and `data.dataset` in a run config)."""
    return list(_REGISTRY)


def dataset_options(name: str) -> dict[str, Any]:
    """A loader's options and their defaults (what `data.options` may hold)."""
    loader = _loader(name)
    return {
        p.name: (None if p.default is inspect.Parameter.empty else p.default)
        for p in inspect.signature(loader).parameters.values()
        if p.name != "data_root"
    }


def load_raw_dataset(name: str, data_root: str | os.PathLike[str] | None = None, **options: Any) -> RawDataset:
    """Load a dataset by name; unknown options raise `ConfigError` naming the closest valid one."""
    loader = _loader(name)
    valid = dataset_options(name)
    for key in options:
        if key not in valid:
            close = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else f"; valid options: {', '.join(valid)}"
            raise ConfigError(f"unknown option {key!r} for dataset {name!r}{hint}")
    return loader(data_root, **options)


def _loader(name: str) -> Callable[..., RawDataset]:
    if name not in _REGISTRY:
        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown dataset {name!r}{hint} (available: {', '.join(_REGISTRY)})")
    return _REGISTRY[name]
