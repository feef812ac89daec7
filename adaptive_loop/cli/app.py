"""The `adaptive-loop` parser and `main`: every subcommand, and one-line errors.

Errors the user can fix (bad data, config, paths, checkpoints) are printed as one line
`error: ...` with exit status 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from adaptive_loop.cli.controllers_command import add_subcommand as add_controllers
from adaptive_loop.cli.datasets_command import add_subcommand as add_datasets
from adaptive_loop.cli.oracle_command import add_subcommand as add_oracle
from adaptive_loop.cli.run_commands import add_subcommands as add_run_commands
from adaptive_loop.cli.score_command import add_subcommand as add_score
from adaptive_loop.cli.tune_command import add_subcommand as add_tune
from adaptive_loop.errors import AdaptiveLoopError


def build_parser() -> argparse.ArgumentParser:
    """The `adaptive-loop` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="adaptive-loop",
        description="Adaptive-depth inference for looped CTR models: train LoopCTR, trace per-depth "
        "predictions, analyse the oracle depth and evaluate depth controllers.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    add_run_commands(sub)
    for add in (add_datasets, add_oracle, add_controllers, add_tune, add_score):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line on `argv` (default `sys.argv[1:]`) and return the exit status.

    0 on success; 2 for a user-fixable `AdaptiveLoopError` and 1 for an `OSError`, each
    printed as one `error: ...` line instead of a traceback; 130 on Ctrl-C.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except AdaptiveLoopError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # disk full, permission denied, ...: outputs are atomic, so nothing is half-written
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
