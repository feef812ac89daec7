"""What one benchmark invocation fixes: base config, seeds, epochs, subsampling, depth grid.

`BenchmarkSettings.cell_config(variant, seed)` is the only way a cell's `RunConfig` is made,
and `fingerprint` is what a finished or half-trained cell must match before a rerun reuses
it: a rerun with other settings (another epoch count, another subsample) would otherwise mix
incomparable cells into one table.

Seeds: the model seeds are `base_seed, base_seed + 1, ...` (base = the config's `seed`). The
data is prepared once with the base seed (`data.options.seed` is pinned to it where the
dataset takes a seed), so every model and every seed sees the same split and encoders; only
initialisation, batch order and dropout change with the seed.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from adaptive_loop.config import BUILTIN_CONFIGS, RunConfig, config_source, load_config, resolve_config
from adaptive_loop.errors import AdaptiveLoopError, ConfigError
from adaptive_loop.reproduce.variants import Variant

# Keys that may differ between a cell's first run and its rerun without changing its result.
_VOLATILE = {("data", "data_root"), ("train", "progress"), ("train", "num_threads"), ("train", "device")}


def base_config_path(dataset: str, config: str | None) -> Path:
    """The base config: `config` (a file or a built-in name), else the built-in `<dataset>.yaml`."""
    return resolve_config(config or dataset)


@dataclass(frozen=True)
class BenchmarkSettings:
    """Everything that decides a cell's result (plus where the data lives).

    Attributes:
        dataset: dataset name (also the results file stem).
        config_path: base YAML config every variant overrides.
        overrides: extra dotted overrides applied to the base config before the variant's.
        n_seeds: number of model seeds.
        epochs: `train.epochs` override (None = the config's).
        max_train_rows: subsample the training split to this many rows (None = all); a
            quick-run setting, recorded in the results and flagged there.
        grid_depth: K, the deepest inference depth evaluated for weight-shared LoopCTR models.
        threads: torch intra-op threads of every training (1 on a shared machine).
        data_root: folder holding the public datasets (None = the default lookup).
        own_baseline_configs: train a variant with `own_config` (DeepFM, DCNv2) on its own
            built-in `<model>_<dataset>` config where one exists (data section, seed and run-wide
            settings still from the base, so the split is shared); False = on the base config.
    """

    dataset: str
    config_path: Path
    overrides: tuple[str, ...] = ()
    n_seeds: int = 3
    epochs: int | None = None
    max_train_rows: int | None = None
    grid_depth: int = 6
    threads: int = 1
    data_root: str | None = None
    own_baseline_configs: bool = True

    def __post_init__(self) -> None:
        if self.n_seeds < 1:
            raise ConfigError(f"--seeds must be >= 1, got {self.n_seeds}")
        if self.epochs is not None and self.epochs < 1:
            raise ConfigError(f"--epochs must be >= 1, got {self.epochs}")
        if self.max_train_rows is not None and self.max_train_rows < 1:
            raise ConfigError(f"--max-train-rows must be >= 1, got {self.max_train_rows}")
        if self.grid_depth < 0:
            raise ConfigError(f"--max-depth must be >= 0, got {self.grid_depth}")
        if self.threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {self.threads}")
        self.base  # noqa: B018 - load (and so validate) the base config now, not at the first cell

    # ------------------------------------------------------------------ configs
    def _run_wide_overrides(self) -> list[str]:
        """Settings of the invocation that every cell takes, whatever config it starts from."""
        overrides = [f"train.epochs={self.epochs}"] if self.epochs is not None else []
        return overrides + [f"train.num_threads={self.threads}", "train.progress=false"]

    def _load_base(self) -> RunConfig:
        from adaptive_loop.data.datasets import dataset_options

        overrides = [f"data.dataset={self.dataset}", *self.overrides]
        first = load_config(self.config_path, overrides)
        if self.data_root is not None:
            overrides.append(f"data.data_root={self.data_root}")
        if "seed" in dataset_options(first.data.dataset) and "seed" not in first.data.options:
            overrides.append(f"data.options.seed={first.seed}")  # one split for every model seed
        return load_config(self.config_path, overrides + self._run_wide_overrides())

    def variant_config_path(self, variant: Variant) -> Path:
        """The config a variant starts from: its own built-in `<model>_<dataset>` one, else the base."""
        if self.own_baseline_configs and variant.own_config is not None:
            own = BUILTIN_CONFIGS / f"{variant.own_config}_{self.dataset}.yaml"
            if own.is_file():
                return own
        return self.config_path

    def _variant_base(self, variant: Variant) -> RunConfig:
        """The base config, or the variant's own config with the base's data section, seed and trace."""
        path = self.variant_config_path(variant)
        if path == self.config_path:
            return self.base
        own = load_config(path, self._run_wide_overrides())
        return dataclasses.replace(own, seed=self.base.seed, data=self.base.data, trace=self.base.trace)

    @cached_property
    def base(self) -> RunConfig:
        """The base config with the run-wide settings applied (the variant overrides come on top)."""
        return self._load_base()

    @property
    def seeds(self) -> list[int]:
        return [self.base.seed + i for i in range(self.n_seeds)]

    def cell_config(self, variant: Variant, seed: int) -> RunConfig:
        """The base config with the variant's overrides and the cell's seed."""
        from adaptive_loop.config import apply_overrides, config_from_dict

        raw = apply_overrides(self._variant_base(variant).to_dict(), [*variant.overrides, f"seed={seed}"])
        # the base's model keys are its own model's: a variant naming another model keeps its keys only
        config = config_from_dict(raw, saved_run=True)
        # the trace depth of a loop model is the grid; the others stop at their own depth
        return dataclasses.replace(config, trace=dataclasses.replace(config.trace, max_depth=variant.eval_depth(self.grid_depth)))

    def fingerprint(self, variant: Variant, seed: int) -> dict[str, Any]:
        """What a reused cell must match: its resolved config (minus machine-only keys) and the run settings."""
        config = self.cell_config(variant, seed).to_dict()
        for section, key in _VOLATILE:
            config[section].pop(key, None)
        return _plain({"variant": variant.name, "config": config, "max_train_rows": self.max_train_rows,
                       "grid_depth": self.grid_depth})

    # ------------------------------------------------------------------ labelling
    @property
    def trains_differently(self) -> bool:
        """Whether a cell trains otherwise than in the full benchmark (epochs, training rows or config overridden).

        Such cells must not share run directories or the archive with the full grid's; a smaller
        selection of seeds or variants trains the very same cells, so it may.
        """
        return self.epochs is not None or self.max_train_rows is not None or bool(self.overrides)

    def reduced_reasons(self, variants: list[Variant], all_variants: int) -> list[str]:
        """Why this run is not the full benchmark (empty when it is)."""
        reasons = []
        if self.n_seeds < 3:
            reasons.append(f"{self.n_seeds} seed(s) instead of 3")
        if self.epochs is not None:
            reasons.append(f"train.epochs overridden to {self.epochs}")
        if self.max_train_rows is not None:
            reasons.append(f"training split subsampled to {self.max_train_rows:,} rows")
        if len(variants) < all_variants:
            reasons.append(f"{len(variants)} of {all_variants} variants")
        if self.overrides:
            reasons.append(f"base config overridden ({', '.join(self.overrides)})")
        return reasons

    def to_dict(self, variants: list[Variant] = ()) -> dict[str, Any]:
        """The settings recorded in the results JSON.

        Dataset, config (and each variant's, where it has its own), overrides, seeds, epochs,
        training rows, grid depth and threads. Configs are named without machine paths.
        """
        return {
            "dataset": self.dataset,
            "config": config_source(self.config_path),
            "variant_configs": {v.name: config_source(self.variant_config_path(v)) for v in variants},
            "overrides": list(self.overrides),
            "seeds": self.seeds,
            "epochs": self.base.train.epochs,
            "epochs_overridden": self.epochs is not None,
            "max_train_rows": self.max_train_rows,
            "grid_depth": self.grid_depth,
            "threads": self.threads,
            "own_baseline_configs": self.own_baseline_configs,
        }


def saved_fingerprint(saved: dict[str, Any]) -> dict[str, Any]:
    """A fingerprint read back from a cell, in today's form.

    The saved config is read back through today's config classes, so a key added since the
    cell started counts with its default (as when a run resumes from an older checkpoint),
    and a model section saved before each model had its own config (every model's keys) keeps
    only the cell model's. A config today's classes refuse (a key removed since) is compared
    as saved, and the difference is reported.
    """
    from adaptive_loop.config import config_from_dict
    from adaptive_loop.model import own_keys

    config = saved.get("config")
    if not isinstance(config, dict):
        return saved
    try:
        resolved = config_from_dict(config, saved_run=True).to_dict()
    except AdaptiveLoopError:  # compared as saved, with only the cell model's keys
        model = config.get("model")
        resolved = {**config, "model": own_keys(model)} if isinstance(model, dict) else config
    else:
        for section, key in _VOLATILE:
            resolved.get(section, {}).pop(key, None)
    return _plain({**saved, "config": resolved})


def _plain(value: Any) -> Any:
    """JSON-normal form (tuples become lists) so fingerprints compare equal after a round trip."""
    return json.loads(json.dumps(value, default=str))
