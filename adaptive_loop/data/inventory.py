"""What is where: for each fetchable dataset, where its files are looked for and what is found.

Cheap by design, so `adaptive-loop datasets` can run any time: files are not hashed (the
fetch does that); rows are counted by counting line ends in binary chunks, and a size
different from the published file's is flagged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from adaptive_loop.data.catalogue import CatalogueEntry, DataFile
from adaptive_loop.data.datasets.base import data_root_candidates

_CHUNK = 1 << 20


@dataclass
class FileStatus:
    """One data file on disk: `size` and `rows` are None when it is missing."""

    file: DataFile
    path: Path
    size: int | None = None
    rows: int | None = None

    @property
    def found(self) -> bool:
        return self.size is not None

    @property
    def size_matches(self) -> bool:
        """False when found with another size than the published file (a different version)."""
        return self.size == self.file.size


@dataclass
class DatasetStatus:
    """A dataset's files under the data root the loaders would use.

    `root` is that data root, or None when no candidate folder exists (`candidates` lists
    where it was looked for).
    """

    entry: CatalogueEntry
    root: Path | None
    candidates: list[Path]
    files: list[FileStatus]

    @property
    def found(self) -> bool:
        """Every file the loader reads is there."""
        return all(f.found for f in self.files)

    @property
    def missing(self) -> list[FileStatus]:
        return [f for f in self.files if not f.found]

    @property
    def folder(self) -> str:
        """The dataset's folder under the data root (the first part of its file paths)."""
        return self.entry.files[0].path.split("/")[0]


def dataset_status(entry: CatalogueEntry, data_root: str | os.PathLike[str] | None = None) -> DatasetStatus:
    """Look for `entry`'s files under the data root the loaders would resolve."""
    candidates = [p.resolve() for p in data_root_candidates(data_root)]
    root = next((p for p in candidates if p.is_dir()), None)
    files = []
    for data_file in entry.files:
        path = (root or candidates[0]) / data_file.path
        status = FileStatus(data_file, path)
        if root is not None and path.is_file():
            status.size = path.stat().st_size
            status.rows = count_rows(path, data_file.header_lines)
        files.append(status)
    return DatasetStatus(entry, root, candidates, files)


def count_rows(path: Path, header_lines: int = 0) -> int:
    """Data rows of a text file: its lines (a last line without a newline counts) minus the header."""
    lines = 0
    last = b"\n"
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    if last != b"\n":
        lines += 1
    return max(lines - header_lines, 0)
