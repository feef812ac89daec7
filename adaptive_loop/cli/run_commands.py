"""`adaptive-loop train | evaluate | trace | demo | config | datasets`: a run from config to trace.

Each command parses its options and calls one public function (`adaptive_loop.training.train`,
`adaptive_loop.workflows.evaluate_run` / `trace_run`, `adaptive_loop.demo.run_demo`, ...).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from adaptive_loop.config import BUILTIN_CONFIGS, load_config, resolve_config
from adaptive_loop.data.datasets.base import SPLITS
from adaptive_loop.errors import AdaptiveLoopError


def _config_from_args(args: argparse.Namespace, saved_run: bool = False):
    """The run config from --config, --set and the shortcuts; `saved_run` for a run directory's own config.yaml."""
    overrides = list(args.set or [])
    if getattr(args, "dataset", None):
        overrides.append(f"data.dataset={args.dataset}")
    if getattr(args, "data_root", None):
        overrides.append(f"data.data_root={args.data_root}")
    if getattr(args, "seed", None) is not None:
        overrides.append(f"seed={args.seed}")
    if getattr(args, "no_progress", False):
        overrides.append("train.progress=false")
    return load_config(resolve_config(args.config), overrides, saved_run=saved_run)


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    builtin = ", ".join(sorted(p.stem for p in BUILTIN_CONFIGS.glob("*.yaml")))
    parser.add_argument("--config", help=f"YAML run config: a file, or a built-in name ({builtin})")
    parser.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override a config key, e.g. --set train.lr=3e-4 (repeatable)"
    )
    parser.add_argument("--dataset", help="shortcut for --set data.dataset=NAME")
    parser.add_argument("--data-root", help="folder holding the public datasets (default: $ADAPTIVE_LOOP_DATA_ROOT or ../shared/data)")
    parser.add_argument("--seed", type=int, help="shortcut for --set seed=N")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def cmd_train(args: argparse.Namespace) -> int:
    """`adaptive-loop train`: train a model from the config into `--run-dir` (optionally `--resume`); returns 0."""
    from adaptive_loop.distributed import env_world, launched_distributed
    from adaptive_loop.training import train
    from adaptive_loop.workflows import default_run_dir

    config = _config_from_args(args, saved_run=args.resume)  # a resume reads the run's own config.yaml
    if args.run_dir is None and launched_distributed():
        raise AdaptiveLoopError("with torchrun every process must write to the same folder: pass --run-dir")
    run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(config)
    if args.resume and not (run_dir / "checkpoints" / "last.pt").exists():
        raise AdaptiveLoopError(f"--resume: {run_dir} has no checkpoints/last.pt to resume from")
    main_process = env_world()[0] == 0  # under torchrun only rank 0 prints
    if main_process:
        print(f"run directory: {run_dir}")
    result = train(config, run_dir, resume=args.resume)
    if main_process:
        print(
            f"best epoch {result.best_epoch + 1}: {result.monitor} = {result.best_monitor:.4f}"
            f"{' (stopped early)' if result.stopped_early else ''}"
        )
        print(f"checkpoints in {run_dir / 'checkpoints'}; next: adaptive-loop evaluate --run {run_dir}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """`adaptive-loop evaluate`: print per-depth metrics of a run's split; returns 0.

    Also writes the JSON, CSV and plot report (to `--out`, default the run directory).
    """
    from adaptive_loop.workflows import evaluate_run

    result = evaluate_run(
        args.run, split=args.split, max_depth=args.max_depth, checkpoint=args.checkpoint, out_dir=args.out,
        progress=not args.no_progress,
    )
    print(f"per-depth metrics on the {args.split} split:")
    print(result.table())
    print(result.parameter_line())
    if result.files:
        print(f"wrote {result.files.json}, {result.files.csv} and {result.files.plot}")
    return 0


def cmd_trace(args: argparse.Namespace) -> int:
    """`adaptive-loop trace`: write the depth trace of a run's split as parquet; returns 0.

    The default output is `<run>/trace_<split>.parquet`.
    """
    from adaptive_loop.workflows import trace_run

    out = args.out or str(Path(args.run) / f"trace_{args.split}.parquet")
    result = trace_run(
        args.run, split=args.split, out=out, max_depth=args.max_depth, hidden=not args.no_hidden,
        checkpoint=args.checkpoint, progress=not args.no_progress,
    )
    t = result.trace
    print(
        f"wrote {result.path}: {t.n_samples:,} samples x depths 0..{t.max_depth}"
        f"{'' if t.hidden is None else f', hidden summaries of width {t.hidden.shape[2]}'} ({result.seconds:.1f} s)"
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """`adaptive-loop demo`: the end-to-end run on the embedded synthetic data; returns 0."""
    from adaptive_loop.demo import run_demo

    run_demo(out_dir=args.run_dir, rows=args.rows, epochs=args.epochs, seed=args.seed, progress=not args.no_progress)
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    """`adaptive-loop config`: print the resolved config (defaults, file and overrides) as commented YAML; returns 0."""
    from adaptive_loop.config import describe_config

    print(describe_config(_config_from_args(args)), end="")
    return 0


def add_subcommands(sub: Any) -> None:
    """Register train, evaluate, trace, demo and config on an argparse subparsers object."""
    p = sub.add_parser("train", help="train a model from a YAML config", description="Train a model with "
                       "process supervision (loss at every depth 0..L), early stopping and per-epoch checkpoints.")
    _add_config_options(p)
    p.add_argument("--run-dir", help="output folder (default: runs/<dataset>-<model>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue from <run-dir>/checkpoints/last.pt")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="per-depth AUC, logloss, gAUC and FLOPs of a trained run",
                       description="Evaluate a trained run at every depth 0..K; writes JSON, CSV and a plot.")
    p.add_argument("--run", required=True, help="run directory written by `adaptive-loop train`")
    p.add_argument("--split", default="valid", choices=SPLITS, help="split to evaluate (default valid)")
    p.add_argument("--max-depth", type=int, help="deepest depth K (default: the config's trace.max_depth, i.e. L+2)")
    p.add_argument("--checkpoint", default="best", help="'best', 'last' or a checkpoint file (default best)")
    p.add_argument("--out", help="folder for the report files (default: the run directory)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("trace", help="write a depth trace (per-sample logits at every depth) as parquet",
                       description="Write the depth trace of a split: id, label, group, logits at depths 0..K, "
                       "hidden summaries and FLOPs metadata. Consumed by `oracle` and `controllers`.")
    p.add_argument("--run", required=True, help="run directory written by `adaptive-loop train`")
    p.add_argument("--split", default="valid", choices=SPLITS, help="split to trace (default valid)")
    p.add_argument("--out", help="output parquet file (default: <run>/trace_<split>.parquet)")
    p.add_argument("--max-depth", type=int, help="deepest depth K (default: the config's trace.max_depth, i.e. L+2)")
    p.add_argument("--no-hidden", action="store_true", help="do not store per-depth hidden summaries")
    p.add_argument("--checkpoint", default="best", help="'best', 'last' or a checkpoint file (default best)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=cmd_trace)

    p = sub.add_parser("demo", help="end-to-end run on the embedded synthetic data (a few minutes on CPU)",
                       description="Generate the embedded synthetic dataset, train LoopCTR(L=3), print per-depth "
                       "metrics and the oracle headroom, and write results, traces and plots to a run folder.")
    p.add_argument("--run-dir", help="run folder (default: runs/demo-<time>)")
    p.add_argument("--rows", type=int, help="synthetic rows to generate (default from the demo config)")
    p.add_argument("--epochs", type=int, help="training epochs (default from the demo config)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default from the demo config)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("config", help="print every config key with its value and documentation",
                       description="Print a config (defaults, or a file with overrides) as commented YAML.")
    _add_config_options(p)
    p.set_defaults(func=cmd_config)

