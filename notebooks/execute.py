"""Execute the notebooks top to bottom on fresh kernels and store their outputs in place.

The committed notebooks keep the outputs of a real run so that a reader on the web sees
the figures; this script refreshes them. It runs from the repository root (the notebooks
write into `runs/notebooks/`, which git ignores), one notebook at a time:

    python notebooks/execute.py                      # all, default sizes (a few minutes each)
    python notebooks/execute.py 03_controllers       # one notebook
    python notebooks/execute.py --small --check      # small sizes, into a scratch copy, no rewrite

`--small` sets ADAPTIVE_LOOP_NOTEBOOK_SMALL=1 (what the test suite runs); `--check`
executes without rewriting the notebooks (the executed copies go to `runs/notebooks/executed/`).
A notebook is rewritten only if it ran without an error (atomically).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from adaptive_loop.io import write_text

NOTEBOOKS = Path(__file__).resolve().parent
REPO = NOTEBOOKS.parent


def execute(path: Path, cell_timeout: int) -> nbformat.NotebookNode:
    """Run `path` on a fresh python3 kernel with the repository root as working directory."""
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=cell_timeout, kernel_name="python3", record_timing=False,
                            resources={"metadata": {"path": str(REPO)}})
    client.execute()
    return notebook


def errors(notebook: nbformat.NotebookNode) -> list[str]:
    """`ename: evalue` of every error output."""
    return [f"{o.get('ename')}: {o.get('evalue')}" for cell in notebook.cells if cell.cell_type == "code"
            for o in cell.get("outputs", []) if o.get("output_type") == "error"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="notebook names (default: every notebooks/*.ipynb)")
    parser.add_argument("--small", action="store_true", help="small sizes (ADAPTIVE_LOOP_NOTEBOOK_SMALL=1)")
    parser.add_argument("--check", action="store_true", help="execute without rewriting the notebooks")
    parser.add_argument("--cell-timeout", type=int, default=1800, help="seconds one cell may take (default 1800)")
    args = parser.parse_args(argv)

    paths = sorted(NOTEBOOKS.glob("*.ipynb"))
    if args.names:
        wanted = {n.removesuffix(".ipynb") for n in args.names}
        paths = [p for p in paths if p.stem in wanted]
        unknown = wanted - {p.stem for p in paths}
        if unknown:
            print(f"error: no notebook(s) {sorted(unknown)} in {NOTEBOOKS}", file=sys.stderr)
            return 2
    os.environ["ADAPTIVE_LOOP_NOTEBOOK_SMALL"] = "1" if args.small else "0"
    os.chdir(REPO)
    failed = 0
    for path in paths:
        started = time.perf_counter()
        notebook = execute(path, args.cell_timeout)
        seconds = time.perf_counter() - started
        problems = errors(notebook)
        if problems:
            failed += 1
            print(f"{path.name}: FAILED after {seconds:.0f} s: {'; '.join(problems)}")
            continue
        target = path if not args.check else REPO / "runs" / "notebooks" / "executed" / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        text = nbformat.writes(notebook)
        write_text(target, text if text.endswith("\n") else text + "\n")
        print(f"{path.name}: ran in {seconds:.0f} s, wrote {target.relative_to(REPO)} ({target.stat().st_size / 1e6:.2f} MB)")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
