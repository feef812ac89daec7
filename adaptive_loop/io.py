"""Atomic file writing and safe checkpoint loading.

A result file or checkpoint is either the old version or the complete new one, never a
half-written file: everything is written to a temporary file in the same directory,
flushed and fsynced, then moved into place with `os.replace` (atomic on POSIX and Windows).
Checkpoints are read with `torch.load(weights_only=True)`, which refuses pickled code.
JSON results are strict JSON (undefined values as null), see `write_json`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Callable, Iterator

from adaptive_loop.errors import CheckpointError


def _new_file_mode() -> int:
    """The mode `open()` would give a new file under the current umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_NEW_FILE_MODE = _new_file_mode()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to `path`; move it onto `path` only if the block succeeds.

    Use this for writers that insist on a file name (pyarrow, matplotlib, torch.save).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, _NEW_FILE_MODE)  # mkstemp makes 0600 files; results should be shareable like open() makes them
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file for writing; it replaces `path` only when the block succeeds."""
    if not mode.startswith("w"):
        raise ValueError(f"atomic_open only writes; got mode {mode!r}")
    with atomic_path(path) as tmp:
        with open(tmp, mode, **kwargs) as handle:
            yield handle
            handle.flush()


def write_json(path: str | os.PathLike[str], payload: Any, *, keep_non_finite: bool = False) -> Path:
    """Write `payload` as indented JSON, atomically.

    The file is strict JSON (RFC 8259): NaN and +-inf, which the format has no token for, are
    written as null (see `json_ready`), so jq, JavaScript or any other reader takes a result
    file, not only Python. `keep_non_finite=True` writes them as Python's `NaN` / `Infinity`
    instead, for state files that must read back exactly (a controller's threshold of +inf
    means "never stop here"; null would read back as NaN).
    """
    with atomic_open(path, "w", encoding="utf-8") as handle:
        json.dump(json_ready(payload, keep_non_finite), handle, indent=2, allow_nan=keep_non_finite)
        handle.write("\n")
    return Path(path)


def json_ready(value: Any, keep_non_finite: bool = False) -> Any:
    """`value` as `write_json` stores it: plain JSON values only.

    numpy scalars and arrays become Python numbers and lists, tuples lists, paths strings,
    and non-finite floats (NaN: "not defined here", e.g. the AUC of a single-class subset) null
    unless `keep_non_finite`. Anything else is refused with a TypeError naming its type.
    Compare a written file with a payload through this function: null does not read back as NaN.
    """
    import numpy as np

    if isinstance(value, dict):
        return {key: json_ready(item, keep_non_finite) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item, keep_non_finite) for item in value]
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist(), keep_non_finite)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if keep_non_finite or math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write text atomically."""
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return Path(path)


def write_with(path: str | os.PathLike[str], writer: Callable[[Path], None]) -> Path:
    """Call `writer(tmp_path)` and move the result onto `path` atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> Path:
    """Save a checkpoint atomically with `torch.save`.

    The payload must hold only tensors and plain Python containers/scalars/strings so that
    it loads with `weights_only=True`.
    """
    import torch

    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint with `weights_only=True`; any failure becomes a `CheckpointError`."""
    import pickle

    import torch

    source = Path(path)
    if not source.is_file():
        raise CheckpointError(f"checkpoint {source} does not exist (check the path or run `adaptive-loop train` first)")
    try:
        payload = torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"checkpoint {source} was refused by the safe loader (weights_only=True): it contains "
            f"objects other than tensors and plain containers, so it is not loaded. Detail: {_first_line(exc)}"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"checkpoint {source} is truncated or corrupted and cannot be read ({_first_line(exc)})"
        ) from None
    if not isinstance(payload, dict):
        raise CheckpointError(f"checkpoint {source} does not hold a dictionary (found {type(payload).__name__})")
    return payload


def remove_stale_temporaries(directory: str | os.PathLike[str]) -> list[Path]:
    """Delete temporaries that `atomic_path` left in `directory` when its process was killed.

    A kill between creating the temporary and `os.replace` leaves `.<name>.<random>.tmp`
    next to the intact old file; only the writer of a directory (one run, rank 0) may call
    this, when nothing else is writing there. Returns the removed paths.
    """
    folder = Path(directory)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for path in folder.glob(".*.tmp"):
        if path.is_file():
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
    return removed


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _fsync_dir(directory: Path) -> None:
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
