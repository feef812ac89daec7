"""Fetch a built-in dataset from its publishers: download, verify, unpack, install atomically.

`fetch_dataset("frappe_x1", root)` puts the files the loader reads under the data root
`root`, in the loader's layout, and says the dataset's terms. The steps, and why:

1. Files already there are hashed: a verified file is kept, a different one is an error
   (it is the user's file; it is never overwritten).
2. Each needed download goes to `<root>/.downloads/<name>.part` (same filesystem as the
   destination). An interrupted transfer keeps that partial file: the next attempt, in
   this run or a later one, continues it with an HTTP `Range` request, or restarts when
   the server ignores ranges. Downloads are plain `urllib`; no extra dependency.
3. Every data file (the download itself, or a zip member) is checked against the SHA-256
   of the published file before anything is installed, so a mismatch leaves the
   destination as it was (the bad download is deleted, since resuming cannot fix it).
4. Each file is then written to a temporary name in its final folder and renamed into
   place (`adaptive_loop.io.atomic_path`): a loader never sees a half-written file.

Downloads come from the original URLs in `adaptive_loop.data.catalogue`, or from a mirror
(`mirror=` or `$ADAPTIVE_LOOP_DATA_MIRROR`): a base URL, or a local folder, holding the
published files under their own names (`Mobile_Frappe.zip`, `ml-100k.zip`, ...).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable, Iterator
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

from tqdm.auto import tqdm

from adaptive_loop.data.catalogue import MIRROR_ENV, CatalogueEntry, DataFile, Download, catalogue_entry
from adaptive_loop.data.datasets.base import data_root_candidates
from adaptive_loop.errors import ConfigError, DataError, DownloadError
from adaptive_loop.io import atomic_path

PARTIAL_DIR = ".downloads"
"""Folder under the data root holding partial and not yet unpacked downloads."""

_CHUNK = 1 << 16
_USER_AGENT = "adaptive-loop-datasets/1 (python urllib)"


@dataclass
class FetchResult:
    """What `fetch_dataset` did: files it installed and files that were already there."""

    name: str
    root: Path
    installed: list[Path] = field(default_factory=list)
    already_present: list[Path] = field(default_factory=list)


def default_data_root(data_root: str | os.PathLike[str] | None = None) -> Path:
    """Where `fetch` puts a dataset by default: where the loaders will look for it.

    The given root, else the first existing data-root candidate (`$ADAPTIVE_LOOP_DATA_ROOT`,
    `../shared/data`, ...), else the first candidate, which the loaders then find.
    """
    candidates = data_root_candidates(data_root)
    for path in candidates:
        if path.is_dir():
            return path.resolve()
    return candidates[0].resolve()


def download_url(download: Download, mirror: str | None = None) -> str:
    """The URL a download is fetched from: its original URL, or its file name under `mirror`.

    A mirror without a URL scheme is a local folder.
    """
    if not mirror:
        return download.url
    if "://" not in mirror:
        return (Path(mirror).expanduser().resolve() / download.file_name).as_uri()
    return f"{mirror.rstrip('/')}/{download.file_name}"


def fetch_dataset(
    dataset: str | CatalogueEntry,
    root: str | os.PathLike[str],
    *,
    mirror: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
    timeout: float = 30.0,
    attempts: int = 3,
) -> FetchResult:
    """Fetch `dataset` (a name or a catalogue entry) into the data root `root`.

    `mirror` (default `$ADAPTIVE_LOOP_DATA_MIRROR`) replaces the original URLs; `attempts`
    is how many times one interrupted transfer is resumed within this call; `timeout` is
    the socket timeout in seconds. Raises `DownloadError` when offline or interrupted for
    good (a partial download is kept for the next call) and `DataError` on a checksum
    mismatch (nothing is installed). `log` receives progress messages (None: silent).
    """
    entry = dataset if isinstance(dataset, CatalogueEntry) else catalogue_entry(dataset)
    say = log or (lambda _message: None)
    if attempts < 1:
        raise ConfigError(f"attempts must be >= 1, got {attempts}")
    mirror = mirror if mirror is not None else (os.environ.get(MIRROR_ENV) or None)
    root = Path(root).expanduser().resolve()
    result = FetchResult(entry.name, root)
    say(f"{entry.name}: {entry.summary}")
    say(f"terms: {entry.terms}")
    say(f"source: {entry.source}")
    say(f"destination (data root): {root}")

    missing = []
    for data_file in entry.files:
        target = root / data_file.path
        if target.exists():
            _check_existing(target, data_file)
            result.already_present.append(target)
        else:
            missing.append(data_file)
    if not missing:
        say(f"all {len(result.already_present)} files are already in {root} and match the published checksums")
        return result

    needed = [d for d in entry.downloads if any(f in missing for f in d.files)]
    with _tidy_on_exit(root) as partial_dir:
        try:
            sources = []
            for download in needed:
                path = partial_dir / download.file_name
                url = download_url(download, mirror)
                if path.exists():
                    say(f"using the complete download {path} from an earlier run")
                else:
                    say(f"downloading {url}")
                    _download(url, path, download.size, progress=progress, timeout=timeout, attempts=attempts, say=say)
                _verify_download(path, download, url)
                sources.append((download, path, url))
            for download, path, url in sources:  # verify everything before installing anything
                for data_file in (f for f in download.files if f in missing):
                    with _open_source(path, data_file, url) as stream:
                        digest = _sha256(stream)
                    _expect(digest, data_file, url)
        except DataError:  # a wrong file cannot be resumed into a right one: leave nothing behind
            for download in needed:
                for name in (download.file_name, download.file_name + ".part"):
                    (partial_dir / name).unlink(missing_ok=True)
            raise
        for download, path, url in sources:
            for data_file in (f for f in download.files if f in missing):
                _install(path, data_file, url, root / data_file.path)
                result.installed.append(root / data_file.path)
            path.unlink()
    say(f"installed {len(result.installed)} files under {root} (verified SHA-256)")
    return result


# --------------------------------------------------------------------------- transfer
class _Interrupted(Exception):
    """A transfer stopped early; the partial file is a valid prefix and can be resumed."""


def _download(
    url: str, path: Path, size: int | None, *, progress: bool, timeout: float, attempts: int, say: Callable[[str], None]
) -> None:
    """Download `url` to `path` through `path.part`, resuming up to `attempts` times."""
    part = path.with_name(path.name + ".part")
    for attempt in range(1, attempts + 1):
        try:
            _transfer(url, part, size, progress=progress, timeout=timeout)
            break
        except _Interrupted as exc:
            if attempt == attempts:
                raise DownloadError(f"download of {url} was interrupted {attempts} times ({exc}){_kept(part)}") from None
            say(f"interrupted ({exc}); resuming, attempt {attempt + 1} of {attempts}")
        except DownloadError as exc:
            raise DownloadError(f"{exc}{_kept(part)}") from None
    os.replace(part, path)


def _kept(part: Path) -> str:
    if part.exists() and part.stat().st_size:
        return f"; the partial file {part} is kept: run the same command again to resume"
    return ""


def _transfer(url: str, part: Path, size: int | None, *, progress: bool, timeout: float) -> None:
    """One HTTP request: continue `part` from its current length (Range) or start it over."""
    offset = part.stat().st_size if part.exists() else 0
    if size is not None and offset > size:
        part.unlink()
        offset = 0
    if size is not None and offset == size:
        return
    headers = {"User-Agent": _USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urlopen(Request(url, headers=headers), timeout=timeout)
    except HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:  # the partial file is not a prefix of what the server has
            part.unlink()
            raise _Interrupted("the server refused to resume the partial file; starting over") from None
        raise DownloadError(f"{url}: the server answered HTTP {exc.code} {exc.reason}") from None
    except (URLError, OSError, http.client.HTTPException) as exc:
        reason = exc.reason if isinstance(exc, URLError) else exc
        raise DownloadError(
            f"cannot download {url} ({reason}); check the network connection, or point --mirror "
            f"(${MIRROR_ENV}) at a folder or server holding the published files"
        ) from None
    with response:
        resumed = bool(offset) and response.status == 206
        if resumed and _content_range_start(response.headers.get("Content-Range")) != offset:
            part.unlink()
            raise _Interrupted("the server resumed at another offset; starting over")
        if not resumed:
            offset = 0  # the server sent the whole file (no Range support): start over
        length_header = response.headers.get("Content-Length")
        length = int(length_header) if length_header and length_header.isdigit() else None
        total = offset + length if length is not None else size
        received = offset
        with open(part, "ab" if resumed else "wb") as out, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
            desc=Path(urlsplit(url).path).name, disable=not progress, leave=False,
        ) as bar:
            while True:
                try:
                    chunk = response.read(_CHUNK)
                except (OSError, http.client.HTTPException) as exc:
                    raise _Interrupted(f"{type(exc).__name__} after {received:,} bytes") from None
                if not chunk:
                    break
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if length is not None and received < offset + length:
        raise _Interrupted(f"the connection closed after {received:,} of {offset + length:,} bytes")
    if size is not None and received < size:
        raise _Interrupted(f"the transfer ended after {received:,} of {size:,} bytes")


def _content_range_start(value: str | None) -> int | None:
    match = re.match(r"\s*bytes\s+(\d+)-", value or "")
    return int(match.group(1)) if match else None


# --------------------------------------------------------------------------- verification
def _verify_download(path: Path, download: Download, url: str) -> None:
    """Check a complete download's own size and SHA-256 where they are known."""
    problem = None
    if download.size is not None and path.stat().st_size != download.size:
        problem = f"it has {path.stat().st_size:,} bytes, the published file {download.size:,}"
    elif download.sha256 is not None:
        with open(path, "rb") as handle:
            digest = _sha256(handle)
        if digest != download.sha256:
            problem = f"its SHA-256 is {digest}, the published file's {download.sha256}"
    if problem:
        raise DataError(f"{url}: the download is not the published file ({problem}); it was deleted and nothing was installed")


def _check_existing(target: Path, data_file: DataFile) -> None:
    with open(target, "rb") as handle:
        digest = _sha256(handle)
    if digest != data_file.sha256:
        raise DataError(
            f"{target} already exists but is not the published file (SHA-256 {digest}, expected {data_file.sha256}); "
            "it was left untouched: move it away and run the fetch again"
        )


def _expect(digest: str, data_file: DataFile, url: str) -> None:
    if digest != data_file.sha256:
        what = f"member {data_file.member} of {url}" if data_file.member else url
        raise DataError(
            f"checksum mismatch for {data_file.path}: SHA-256 of {what} is {digest}, expected {data_file.sha256}; "
            "the download was deleted and nothing was installed"
        )


def _sha256(stream: IO[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in iter(lambda: stream.read(_CHUNK), b""):
        digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------- unpack and install
@contextlib.contextmanager
def _open_source(path: Path, data_file: DataFile, url: str) -> Iterator[IO[bytes]]:
    """The bytes of `data_file`: the download itself, or its member of the zip archive.

    Only the catalogued member is read and it is written to a catalogued path, so archive
    paths can never place files elsewhere.
    """
    if data_file.member is None:
        with open(path, "rb") as handle:
            yield handle
        return
    try:
        with zipfile.ZipFile(path) as archive:
            try:
                member = archive.open(data_file.member)
            except KeyError:
                raise DataError(f"{url}: the archive has no member {data_file.member}; nothing was installed") from None
            with member:
                yield member
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise DataError(
            f"{url}: the download is not a readable zip archive ({exc}); it was deleted and nothing was installed"
        ) from None


def _install(path: Path, data_file: DataFile, url: str, target: Path) -> None:
    """Copy a verified file into place atomically, hashing the bytes actually written."""
    with atomic_path(target) as tmp:
        digest = hashlib.sha256()
        with _open_source(path, data_file, url) as stream, open(tmp, "wb") as out:
            for chunk in iter(lambda: stream.read(_CHUNK), b""):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != data_file.sha256:  # the source changed between verifying and copying
            raise DataError(f"{data_file.path}: the bytes written differ from the verified ones; it was not installed")


@contextlib.contextmanager
def _tidy_on_exit(root: Path) -> Iterator[Path]:
    """Yield the partial-download folder; afterwards remove it when empty, and the folders
    this call created for it, so a failed fetch leaves no empty folders behind."""
    partial_dir = root / PARTIAL_DIR
    created = [p for p in (partial_dir, *partial_dir.parents) if not p.exists()]  # deepest first
    partial_dir.mkdir(parents=True, exist_ok=True)
    try:
        yield partial_dir
    finally:
        for folder in dict.fromkeys([partial_dir, *created]):  # the partial folder only ever holds our files
            with contextlib.suppress(OSError):
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
