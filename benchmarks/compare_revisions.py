"""Side-by-side speed of the model code at another git revision and the working tree, in one process.

Speed figures taken at different times on a shared CPU are not comparable (+-25%), so
this script times both implementations in alternation: the package at `--base` is
exported with `git archive` into a temporary directory under another name
(`adaptive_loop_base`), both models are built from the same built-in config and feature
spec, the current model gets the base model's weights, and then, round after round, each
takes one training step (forward over depths 0..L, process-supervised loss, backward,
gradient clipping, AdamW) on the same fixed real batch, and scores one batch of
`--score-batch` rows in eval mode under `torch.inference_mode()` at depth L. Reported
per model: median wall time and median CPU time (`time.process_time`, the better figure
when other processes share the cores) and the median over rounds of the per-round ratio
base / current (the speed-up). It also reports the largest per-depth logit difference of
the two models in eval mode on the scoring batch (same weights): a check that the compared
code computes the same function.

    python benchmarks/compare_revisions.py --base <git-rev> [--configs frappe_x1 movielens_100k]
        [--threads 1] [--rounds 9] [--out benchmarks/results/compare_revisions.json]

Needs the datasets of the chosen configs (found as for `adaptive-loop train`).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import io
import platform
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from adaptive_loop.config import RunConfig, load_config, resolve_config
from adaptive_loop.data.batch import Batch
from adaptive_loop.data.pipeline import PreparedData, prepare_data
from adaptive_loop.errors import ConfigError
from adaptive_loop.io import write_json
from adaptive_loop.model import ModelConfig, build_model
from adaptive_loop.training import process_supervised_loss

REPO = Path(__file__).resolve().parent.parent
BASE_NAME = "adaptive_loop_base"


def export_base(rev: str, into: Path) -> Any:
    """Import the `adaptive_loop` package of git revision `rev` as `adaptive_loop_base`."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "adaptive_loop"], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    package = into / BASE_NAME
    (into / "adaptive_loop").rename(package)
    for path in package.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        path.write_text(re.sub(r"\badaptive_loop\b", BASE_NAME, text), encoding="utf-8")
    sys.path.insert(0, str(into))
    return importlib.import_module(f"{BASE_NAME}.model")


def base_model_config(base_model_pkg: Any, config: ModelConfig) -> Any:
    """`config` rebuilt as the base revision's own config class (its `build_model` may check the type).

    Revisions with per-model config classes export `config_from_dict`; older ones have one
    flat `ModelConfig` for every model. Options the base revision does not have yet are
    dropped when they hold their default (the base then computes the same model); a
    non-default one is an error, because the two models would differ.
    """
    raw = config.to_dict()
    if hasattr(base_model_pkg, "config_from_dict"):
        return base_model_pkg.config_from_dict(base_model_pkg.own_keys(raw))
    known = {f.name for f in dataclasses.fields(base_model_pkg.ModelConfig)}
    defaults = type(config)().to_dict()
    newer = {k: v for k, v in raw.items() if k not in known}
    changed = {k: v for k, v in newer.items() if defaults.get(k) != v}
    if changed:
        raise ConfigError(f"the base revision's model has no option(s) {sorted(changed)}; set them to their defaults to compare")
    return base_model_pkg.ModelConfig.from_dict({k: v for k, v in raw.items() if k in known})


def fixed_batches(config: RunConfig, data: PreparedData, score_rows: int, seed: int = 0) -> tuple[Batch, Batch]:
    """One training batch (random rows of the training split) and the first `score_rows` validation rows."""
    rows = np.sort(np.random.default_rng(seed).choice(len(data.train), config.train.batch_size, replace=False))
    train = data.train.to_batch(rows)
    score = data.valid.to_batch(slice(0, min(score_rows, len(data.valid))))
    return train, score


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: Batch, aux_weight: float) -> None:
    """One optimiser step as the trainer takes it."""
    model.train()
    out = model(batch)
    loss, _ = process_supervised_loss(out.logits, batch.labels, out.aux_loss, aux_weight)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()


def score(model: torch.nn.Module, batch: Batch, depth: int) -> torch.Tensor:
    """Eval-mode logits [B, depth + 1] under inference mode."""
    model.eval()
    with torch.inference_mode():
        return model(batch, depth=depth).logits


def alternate(fns: dict[str, Callable[[], Any]], rounds: int, warmup: int = 2) -> dict[str, dict[str, float]]:
    """Run the callables in alternation; per name the median wall and CPU seconds, and per-round ratios to the first."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            w, c = time.perf_counter(), time.process_time()
            fn()
            cpu[name].append(time.process_time() - c)
            wall[name].append(time.perf_counter() - w)
    first = next(iter(fns))
    return {
        name: {
            "wall_s": statistics.median(wall[name]),
            "cpu_s": statistics.median(cpu[name]),
            "speedup_wall": statistics.median(a / b for a, b in zip(wall[first], wall[name])),
            "speedup_cpu": statistics.median(a / b for a, b in zip(cpu[first], cpu[name])),
        }
        for name in fns
    }


def compare_config(name: str, base_model_pkg: Any, rounds: int, score_rows: int) -> dict[str, Any]:
    """Train-step and scoring timings of base and current LoopCTR on config `name`."""
    config = load_config(resolve_config(name))
    data = prepare_data(config.data, seed=config.seed, show_progress=False)
    train_batch, score_batch = fixed_batches(config, data, score_rows)
    torch.manual_seed(config.seed)
    base = base_model_pkg.build_model(base_model_config(base_model_pkg, config.model), data.spec)
    current = build_model(config.model, data.spec)
    current.load_state_dict(base.state_dict())
    loops = config.model.train_loops
    diff = (score(base, score_batch, loops) - score(current, score_batch, loops)).abs().max().item()
    opts = {
        m: torch.optim.AdamW(model.parameters(), lr=config.train.lr, weight_decay=config.train.weight_decay)
        for m, model in (("base", base), ("current", current))
    }
    aux = config.model.aux_weight
    train = alternate(
        {
            "base": lambda: train_step(base, opts["base"], train_batch, aux),
            "current": lambda: train_step(current, opts["current"], train_batch, aux),
        },
        rounds,
    )
    scoring = alternate(
        {"base": lambda: score(base, score_batch, loops), "current": lambda: score(current, score_batch, loops)}, rounds
    )
    return {
        "train_batch": len(train_batch),
        "score_batch": len(score_batch),
        "max_abs_logit_diff_eval": diff,
        "train_step": train,
        "train_samples_per_s_cpu": {k: len(train_batch) / v["cpu_s"] for k, v in train.items()},
        "scoring": scoring,
        "score_samples_per_s_cpu": {k: len(score_batch) / v["cpu_s"] for k, v in scoring.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="git revision whose model code is the baseline")
    parser.add_argument("--configs", nargs="+", default=["frappe_x1", "movielens_100k"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--score-batch", type=int, default=4096)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "compare_revisions.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", args.base], check=True, capture_output=True,
                         text=True).stdout.strip()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="adaptive-loop-base-") as tmp:
        base_pkg = export_base(args.base, Path(tmp))
        for name in args.configs:
            r = compare_config(name, base_pkg, args.rounds, args.score_batch)
            results[name] = r
            for part in ("train_step", "scoring"):
                cur = r[part]["current"]
                print(f"{name} {part}: base {r[part]['base']['cpu_s'] * 1e3:.1f} ms cpu -> current "
                      f"{cur['cpu_s'] * 1e3:.1f} ms cpu; speed-up {cur['speedup_cpu']:.2f}x cpu, "
                      f"{cur['speedup_wall']:.2f}x wall")
            print(f"{name}: max |logit difference| in eval, same weights: {r['max_abs_logit_diff_eval']:.2e}")
    payload = {
        "command": "python benchmarks/compare_revisions.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "base_revision": rev,
        "threads": args.threads,
        "rounds": args.rounds,
        "torch": torch.__version__,
        "machine": platform.machine(),
        "note": "same-run alternation; speed-ups are medians of per-round base/current time ratios",
        "results": results,
    }
    write_json(args.out, payload)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
