"""Model-side producers of null traces: MC-dropout passes of one model and traces of seed runs.

The exchangeable nulls of `oracle.null` compare the depth oracle with the same oracle over
predictions that differ in no depth. Two of them need the model, which `oracle/` never
imports, so they are produced here and handed over as ordinary depth traces:

- **MC dropout** (`mc_dropout_traces`): P forward passes of one trained model over a split
  with its dropout layers active and everything else in eval mode (BatchNorm, if any, keeps
  its running statistics). Each pass is written as a full depth trace (`pass_00.parquet`,
  ...), so the null can be read at any depth with the same loader as the seed traces; a
  `manifest.json` records the run, checkpoint, split, pass count, dropout rates and seed,
  and a later call with the same settings reuses the files.
- **seeds** (`train_seed_runs`, `seed_run_traces`): models of one config trained with other
  seeds on the *same* data split (the data seed is pinned to the base run's), and their
  traces of one split.

The number of MC passes defaults to the trace's K+1 depths, so the oracle chooses among as
many dropout passes as depths. A model trained without dropout has nothing to sample; pass
`p` to apply dropout at inference anyway, which is then a perturbation of the trained model
rather than its own dropout noise (the manifest says which).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from adaptive_loop.data.batch import EncodedData
from adaptive_loop.errors import ConfigError
from adaptive_loop.io import json_ready, write_json
from adaptive_loop.runs import load_run
from adaptive_loop.trace import DepthTrace, load_trace, save_trace
from adaptive_loop.trace_builder import build_trace
from adaptive_loop.workflows import load_split, trace_run

MANIFEST = "manifest.json"


def dropout_modules(model: nn.Module) -> list[nn.Module]:
    """Every dropout layer of `model` (any `torch.nn` dropout variant)."""
    return [m for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]


@contextlib.contextmanager
def mc_dropout_mode(model: nn.Module, p: float | None = None) -> Iterator[list[nn.Module]]:
    """Inside the block, the model's dropout layers sample even in eval mode; nothing else changes.

    A forward pre-hook sets `training = True` on each dropout layer just before it runs, so
    callers that put the model in eval mode first (`predict_depths`) still get dropout, while
    BatchNorm and every other layer stay in eval mode. `p` overrides the dropout rate of every
    layer for the block. Hooks, rates and modes are restored on exit.
    """
    layers = dropout_modules(model)
    if p is not None and not 0.0 < p < 1.0:
        raise ConfigError(f"MC dropout rate must lie in (0, 1), got {p}")
    was_training = model.training
    old_p = [m.p for m in layers]
    handles = [m.register_forward_pre_hook(_force_training) for m in layers]
    if p is not None:
        for m in layers:
            m.p = float(p)
    try:
        yield layers
    finally:
        for h in handles:
            h.remove()
        for m, value in zip(layers, old_p):
            m.p = value
        model.train(was_training)


def _force_training(module: nn.Module, args: tuple) -> None:
    module.training = True


@dataclass(frozen=True)
class MCDropoutManifest:
    """What a folder of MC-dropout pass traces was made from."""

    run_dir: str
    checkpoint: str
    split: str
    n_passes: int
    max_depth: int
    dropout_rates: list[float]
    p_override: float | None
    seed: int
    files: list[str]


def mc_dropout_traces(
    run_dir: str | Path,
    out_dir: str | Path,
    split: str = "test",
    n_passes: int | None = None,
    p: float | None = None,
    seed: int = 0,
    max_depth: int | None = None,
    checkpoint: str = "best",
    data: EncodedData | None = None,
    progress: bool = False,
) -> list[Path]:
    """Write `n_passes` MC-dropout depth traces of a run's split into `out_dir`; returns their paths.

    Defaults: K = the run's trace depth, `n_passes` = K+1. Reuses the folder when its
    manifest matches these settings. Raises `ConfigError` when the model has no active
    dropout and no `p` is given.
    """
    run = load_run(run_dir, checkpoint=checkpoint)
    depth = run.config.trace_depth() if max_depth is None else int(max_depth)
    passes = depth + 1 if n_passes is None else int(n_passes)
    if passes < 2:
        raise ConfigError(f"MC dropout needs at least 2 passes, got {passes}")
    rates = [float(m.p) for m in dropout_modules(run.model)]
    if p is None and not any(r > 0 for r in rates):
        raise ConfigError(
            f"{run_dir}: the model has no dropout (model.dropout = 0), so every MC-dropout pass would be the same; "
            "give a dropout rate to apply at inference (p / --mc-dropout-p)"
        )
    out = Path(out_dir)
    files = [f"pass_{k:02d}.parquet" for k in range(passes)]
    manifest = MCDropoutManifest(str(run_dir), checkpoint, split, passes, depth, rates, p, seed, files)
    if _manifest_matches(out / MANIFEST, manifest) and all((out / f).is_file() for f in files):
        return [out / f for f in files]
    split_data = data if data is not None else load_split(run, split, show_progress=progress)
    paths = []
    with mc_dropout_mode(run.model, p), torch.random.fork_rng(devices=[]):
        for k in tqdm(range(passes), desc="MC-dropout passes", disable=not progress):
            torch.manual_seed(seed * 1_000_003 + k)
            trace = build_trace(
                run.model, split_data, depth, dataset=run.config.data.dataset, split=split,
                model_config=run.config.to_dict()["model"], hidden=False, batch_size=run.config.train.eval_batch_size,
                memory_mb=run.config.train.eval_memory_mb, device=run.device, categorical_names=[f.name for f in run.spec.categorical],
            )
            paths.append(save_trace(trace, out / files[k]))
    write_json(out / MANIFEST, asdict(manifest))
    return paths


def _manifest_matches(path: Path, manifest: MCDropoutManifest) -> bool:
    if not path.is_file():
        return False
    try:
        return json.loads(path.read_text(encoding="utf-8")) == json_ready(asdict(manifest))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False


def load_traces(paths: Sequence[str | Path]) -> list[DepthTrace]:
    """Load several traces (each validated by `load_trace`)."""
    return [load_trace(p) for p in paths]


# --------------------------------------------------------------------------- seeds
def seed_run_dir(base_run_dir: str | Path, seed: int) -> Path:
    """Where the seed-`seed` sibling of a run lives: `<base>_seed<seed>`."""
    base = Path(base_run_dir)
    return base.parent / f"{base.name}_seed{seed}"


def train_seed_runs(base_run_dir: str | Path, n_seeds: int, progress: bool = False) -> list[Path]:
    """The base run plus `n_seeds - 1` siblings trained with seeds base+1, base+2, ... (reused when done).

    Each sibling uses the base run's saved `config.yaml` with only `seed` changed and the data
    seed pinned to the base run's, so every model sees the same split and differs only in
    initialisation, batch order and dropout. Returns the run directories, the base first.
    """
    from adaptive_loop.config import load_config
    from adaptive_loop.data.datasets import dataset_options
    from adaptive_loop.training import train

    base = Path(base_run_dir)
    config_path = base / "config.yaml"
    if not config_path.is_file():
        raise ConfigError(f"{base} is not a run directory (no config.yaml)")
    if n_seeds < 1:
        raise ConfigError(f"n_seeds must be >= 1, got {n_seeds}")
    config = load_config(config_path)
    pin = []
    if "seed" in dataset_options(config.data.dataset) and "seed" not in config.data.options:
        pin = [f"data.options.seed={config.seed}"]
    runs = [base]
    for k in range(1, n_seeds):
        seed = config.seed + k
        run_dir = seed_run_dir(base, seed)
        if not (run_dir / "checkpoints" / "best.pt").is_file():
            train(load_config(config_path, [f"seed={seed}", *pin]), run_dir, progress=progress)
        runs.append(run_dir)
    return runs


def seed_run_traces(run_dirs: Sequence[str | Path], split: str = "test", max_depth: int | None = None,
                    progress: bool = False, suffix: str = "") -> list[Path]:
    """`<run>/trace_<split><suffix>.parquet` of each run, written when missing; returns the paths."""
    paths = []
    for run_dir in tqdm(list(run_dirs), desc="seed traces", disable=not progress):
        path = Path(run_dir) / f"trace_{split}{suffix}.parquet"
        if not path.is_file():
            trace_run(run_dir, split, path, max_depth=max_depth, hidden=False)
        paths.append(path)
    return paths
