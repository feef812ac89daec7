"""`python -m adaptive_loop.cli ...` (and `torchrun -m adaptive_loop.cli ...`): the `adaptive-loop` command."""

from adaptive_loop.cli.app import main

raise SystemExit(main())
