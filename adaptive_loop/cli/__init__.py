"""The `adaptive-loop` command line: a thin layer over the library's public functions.

    app.py                  the parser, `main` and the one-line error reporting
    run_commands.py         train, evaluate, trace, demo, config, datasets
    oracle_command.py       oracle
    controllers_command.py  controllers list | evaluate
    tune_command.py         tune controller | model
    score_command.py        score (the adaptive inference engine)

`python -m adaptive_loop.cli ...` runs the same command (what `torchrun -m` needs).
"""

from adaptive_loop.cli.app import build_parser, main

__all__ = ["build_parser", "main"]
