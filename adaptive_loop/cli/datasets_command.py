"""`adaptive-loop datasets`: what is where, and `adaptive-loop datasets fetch NAME` for what is missing.

`adaptive-loop datasets [--data-root DIR]` lists every built-in dataset: where its files
are looked for, whether they were found (sizes and row counts), its source and terms in
one line each, and the command that gets it.

`adaptive-loop datasets fetch NAME [--to DIR] [--mirror URL|DIR]` downloads the published
files from their original locations (or a mirror holding them under their own names),
verifies each file's SHA-256, unpacks them into the layout the loader reads under DIR
(default: where the loaders look) and prints the dataset's terms. An interrupted download
resumes when the command is run again.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from adaptive_loop.config import BUILTIN_CONFIGS
from adaptive_loop.data.catalogue import CATALOGUE, MIRROR_ENV, WITHOUT_FILES, catalogue_entry
from adaptive_loop.data.datasets.base import DATA_ROOT_ENV, data_root_candidates


def add_subcommand(subparsers: Any) -> None:
    """Register `datasets` (list) and `datasets fetch` on an argparse subparsers object."""
    parser = subparsers.add_parser(
        "datasets",
        help="list the built-in datasets (where, found?, source, terms) and fetch the public ones",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data-root", help=f"folder holding the public datasets (default: ${DATA_ROOT_ENV} or ../shared/data)"
    )
    parser.set_defaults(func=run_list)
    actions = parser.add_subparsers(dest="datasets_action", metavar="ACTION")
    fetch = actions.add_parser(
        "fetch",
        help="download, verify and unpack a public dataset",
        description="Download a dataset's published files from their original public location, verify each "
        "file's SHA-256, unpack them into the layout the loader reads and print the dataset's terms. "
        "Files already present and verified are kept; an interrupted download resumes on the next run.",
    )
    fetch.add_argument("name", metavar="NAME", help=f"dataset to fetch ({', '.join(CATALOGUE)})")
    fetch.add_argument(
        "--to", metavar="DIR", help="data root to unpack into (default: where the loaders look, see `adaptive-loop datasets`)"
    )
    fetch.add_argument(
        "--mirror", metavar="URL|DIR",
        help=f"fetch the published files by name from this base URL or local folder instead (default: ${MIRROR_ENV})",
    )
    fetch.add_argument("--timeout", type=float, default=30.0, help="network timeout in seconds (default 30)")
    fetch.add_argument("--no-progress", action="store_true", help="hide the download progress bars")
    fetch.set_defaults(func=run_fetch)


def run_list(args: argparse.Namespace) -> int:
    """Print every built-in dataset with where it is looked for, what was found, source, terms, command."""
    from adaptive_loop.data.datasets import available_datasets
    from adaptive_loop.data.inventory import dataset_status

    data_root = getattr(args, "data_root", None)
    candidates = [p.resolve() for p in data_root_candidates(data_root)]
    root = next((p for p in candidates if p.is_dir()), None)
    if root is not None:
        print(f"data root: {root}")
    else:
        print(f"data root: none of {' or '.join(map(str, candidates))} exists yet (fetch creates it)")
    to = f" --to {data_root}" if data_root else ""
    for name in available_datasets():
        print()
        if name not in CATALOGUE:
            print(f"{name}: {WITHOUT_FILES.get(name, 'needs no published files')}")
            continue
        status = dataset_status(CATALOGUE[name], data_root)
        print(f"{name}: {status.entry.summary}")
        where = status.root or candidates[0]
        print(f"  looked for: {where / status.folder}")
        if status.found:
            total = sum(f.size or 0 for f in status.files)
            print(f"  status:     found ({len(status.files)} files, {_human_size(total)})")
        elif len(status.missing) == len(status.files):
            print("  status:     not found")
        else:
            print(f"  status:     incomplete ({len(status.missing)} of {len(status.files)} files missing)")
        for file in status.files:
            relative = file.file.path.split("/", 1)[1]
            if file.found:
                note = "" if file.size_matches else f"  (differs from the published {_human_size(file.file.size)})"
                print(f"    {_human_size(file.size or 0):>9} {file.rows:>9,} rows  {relative}{note}")
            else:
                print(f"    {'missing':>9} {'':>14}  {relative}")
        print(f"  source:     {status.entry.source}")
        print(f"  terms:      {status.entry.terms}")
        print(f"  get it:     adaptive-loop datasets fetch {name}{to}")
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    """Fetch one dataset into its data root and say how to use it."""
    from adaptive_loop.data.datasets import resolve_data_root
    from adaptive_loop.data.fetch import default_data_root, fetch_dataset
    from adaptive_loop.errors import AdaptiveLoopError

    entry = catalogue_entry(args.name)
    root = Path(args.to).expanduser().resolve() if args.to else default_data_root(getattr(args, "data_root", None))
    fetch_dataset(entry, root, mirror=args.mirror, progress=not args.no_progress, timeout=args.timeout)
    try:
        found_by_default = resolve_data_root(None) == root
    except AdaptiveLoopError:
        found_by_default = False
    point = "" if found_by_default else f" --data-root {root}"
    how = f"--config {entry.name}" if _has_builtin_config(entry.name) else f"--dataset {entry.name}"
    print(f"use it with: adaptive-loop train {how}{point}")
    if not found_by_default:
        print(f"(or set {DATA_ROOT_ENV}={root})")
    return 0


def _has_builtin_config(name: str) -> bool:
    return (BUILTIN_CONFIGS / f"{name}.yaml").is_file()


def _human_size(size: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"

