"""`adaptive-loop datasets` and `datasets fetch`, against a loopback server (never the internet).

The served files are the published ones rebuilt from the shared data folder: plain files as
they are, archives zipped here with the members at the paths the publishers use. Archive
checksums in the catalogue describe the publishers' archives, so the tests' catalogue
entries carry the size/SHA-256 of the archives built here instead (computed, not assumed).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import zipfile
from pathlib import Path

import pytest
from _mirror import Mirror, refused_url

from adaptive_loop.cli import main
from adaptive_loop.data.catalogue import CATALOGUE, MIRROR_ENV, CatalogueEntry, Download
from adaptive_loop.data.datasets import load_raw_dataset, resolve_data_root
from adaptive_loop.data.fetch import PARTIAL_DIR, FetchResult, fetch_dataset
from adaptive_loop.data.inventory import count_rows
from adaptive_loop.errors import ConfigError, DataError, DownloadError

pytestmark = pytest.mark.shared_data

@pytest.fixture(scope="module")
def shared_root() -> Path:
    try:
        return resolve_data_root(None)
    except DataError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but the shared data root is missing: {exc}")
        pytest.skip(f"shared data not available ({exc})")


def _build(download: Download, shared_root: Path) -> bytes:
    """The bytes a publisher serves for `download`, rebuilt from the shared files."""
    if not download.is_archive:
        (data_file,) = download.files
        return (shared_root / data_file.path).read_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("unrelated/.DS_Store", b"not a data file")
        for data_file in download.files:
            archive.write(shared_root / data_file.path, data_file.member)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def published(shared_root: Path) -> dict[str, bytes]:
    """Every download of every catalogued dataset, by file name."""
    return {d.file_name: _build(d, shared_root) for entry in CATALOGUE.values() for d in entry.downloads}


def _entry(name: str, published: dict[str, bytes]) -> CatalogueEntry:
    """The catalogue entry with the known archive size/SHA-256 replaced by the served archive's."""
    entry = CATALOGUE[name]
    downloads = []
    for d in entry.downloads:
        data = published[d.file_name]
        downloads.append(dataclasses.replace(
            d,
            size=None if d.size is None else len(data),
            sha256=None if d.sha256 is None else hashlib.sha256(data).hexdigest(),
        ))
    return dataclasses.replace(entry, downloads=tuple(downloads))


def _files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def _fetch(name: str, root: Path, mirror: Mirror | str, published: dict[str, bytes], **kwargs) -> FetchResult:
    url = mirror if isinstance(mirror, str) else mirror.url
    return fetch_dataset(_entry(name, published), root, mirror=url, progress=False, log=None, **kwargs)


# --------------------------------------------------------------------------- success
@pytest.mark.parametrize("name", ["frappe_x1", "movielens_100k", "open_bandit"])
def test_fetch_lands_in_the_loader_layout_and_the_loader_reads_it(name, published, tmp_path) -> None:
    root = tmp_path / "data"
    with Mirror(published) as mirror:
        result = _fetch(name, root, mirror, published)
    expected = sorted(f.path for f in CATALOGUE[name].files)
    assert _files_under(root) == expected  # no partial folder, temporaries or archives left
    assert sorted(str(p.relative_to(root)) for p in result.installed) == expected
    for data_file in CATALOGUE[name].files:
        assert hashlib.sha256((root / data_file.path).read_bytes()).hexdigest() == data_file.sha256
    dataset = load_raw_dataset(name, root)
    rows = len(dataset.train) + len(dataset.valid) + len(dataset.test)
    assert rows == {"frappe_x1": 202_027 + 57_722 + 28_860, "movielens_100k": 100_000, "open_bandit": 10_000}[name]


def test_files_already_present_are_verified_not_downloaded_again(published, tmp_path) -> None:
    root = tmp_path / "data"
    with Mirror(published) as mirror:
        _fetch("movielens_100k", root, mirror, published)
        (root / "movielens_100k" / "u.user").unlink()
        served = len(mirror.requests)
        again = _fetch("movielens_100k", root, mirror, published)
        assert [str(p.relative_to(root)) for p in again.installed] == ["movielens_100k/u.user"]
        assert len(again.already_present) == 2
        third = _fetch("movielens_100k", root, mirror, published)
    assert len(mirror.requests) == served + 1  # the third fetch found everything and made no request
    assert third.installed == [] and len(third.already_present) == 3


def test_a_different_file_in_place_is_an_error_and_left_untouched(published, tmp_path) -> None:
    root = tmp_path / "data"
    mine = root / "movielens_100k" / "u.data"
    mine.parent.mkdir(parents=True)
    mine.write_text("1\t2\t5\t881250949\n")
    with Mirror(published) as mirror, pytest.raises(DataError, match="u.data already exists but is not the published"):
        _fetch("movielens_100k", root, mirror, published)
    assert mirror.requests == []
    assert mine.read_text() == "1\t2\t5\t881250949\n"
    assert _files_under(root) == ["movielens_100k/u.data"]


# --------------------------------------------------------------------------- checksum mismatch
def test_a_plain_file_with_another_checksum_installs_nothing(published, tmp_path) -> None:
    bad = dict(published)
    data = bytearray(bad["frappe.test.libfm"])
    data[10] ^= 1
    bad["frappe.test.libfm"] = bytes(data)
    root = tmp_path / "data"
    with Mirror(bad) as mirror, pytest.raises(DataError, match="checksum mismatch for frappe/nfm_split/frappe.test.libfm"):
        _fetch("frappe_x1", root, mirror, published)
    # the raw log and the validation file were fine, but nothing is installed or kept
    assert not root.exists()


def test_an_archive_member_with_another_checksum_installs_nothing(published, shared_root, tmp_path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for data_file in CATALOGUE["movielens_100k"].files:
            payload = (shared_root / data_file.path).read_bytes()
            if data_file.member.endswith("u.item"):
                payload = payload.replace(b"Toy Story", b"Toy Storm")
            archive.writestr(data_file.member, payload)
    bad = dict(published, **{"ml-100k.zip": buffer.getvalue()})
    existing = tmp_path / "data"
    existing.mkdir()
    with Mirror(bad) as mirror, pytest.raises(DataError) as caught:
        _fetch("movielens_100k", existing, mirror, published)
    message = str(caught.value)
    assert "movielens_100k/u.item" in message and "member ml-100k/u.item" in message and "expected" in message
    assert existing.is_dir() and _files_under(existing) == []  # the folder the user made stays, empty


def test_a_damaged_archive_is_one_clear_error(published, tmp_path) -> None:
    bad = dict(published, **{"ml-100k.zip": b"<html>moved</html>"})
    root = tmp_path / "data"
    with Mirror(bad) as mirror, pytest.raises(DataError, match="not a readable zip archive"):
        _fetch("movielens_100k", root, mirror, published)
    assert not root.exists()


def test_an_archive_of_the_wrong_size_installs_nothing(published, tmp_path) -> None:
    bad = dict(published)
    bad["obp-0.4.1-py3-none-any.whl"] = published["obp-0.4.1-py3-none-any.whl"] + b"extra"
    root = tmp_path / "data"
    with Mirror(bad) as mirror, pytest.raises(DataError, match="not the published file"):
        _fetch("open_bandit", root, mirror, published)
    assert not root.exists()


# --------------------------------------------------------------------------- truncated downloads
def test_a_truncated_transfer_resumes_with_a_range_request(published, tmp_path) -> None:
    root = tmp_path / "data"
    with Mirror(published) as mirror:
        mirror.truncate["ml-100k.zip"] = 1
        _fetch("movielens_100k", root, mirror, published)
    size = len(published["ml-100k.zip"])
    assert mirror.requests == [("ml-100k.zip", None), ("ml-100k.zip", f"bytes={size // 2}-")]
    assert _files_under(root) == sorted(f.path for f in CATALOGUE["movielens_100k"].files)


def test_a_truncated_transfer_restarts_when_the_server_ignores_ranges(published, tmp_path) -> None:
    root = tmp_path / "data"
    with Mirror(published, ranges=False) as mirror:
        mirror.truncate["Mobile_Frappe.zip"] = 1
        _fetch("frappe_x1", root, mirror, published)
    frappe_requests = [r for r in mirror.requests if r[0] == "Mobile_Frappe.zip"]
    assert len(frappe_requests) == 2 and frappe_requests[1][1] is not None  # asked to resume, got the whole file
    assert _files_under(root) == sorted(f.path for f in CATALOGUE["frappe_x1"].files)


def test_an_interrupted_fetch_keeps_only_the_partial_file_and_resumes_next_time(published, tmp_path) -> None:
    root = tmp_path / "data"
    size = len(published["ml-100k.zip"])
    with Mirror(published) as mirror:
        mirror.truncate["ml-100k.zip"] = 2  # the announced Content-Length is never delivered
        with pytest.raises(DownloadError, match="interrupted 2 times .*partial file .* is kept"):
            _fetch("movielens_100k", root, mirror, published, attempts=2)
        # nothing half-written where the loader looks: only the partial download, three quarters in
        assert _files_under(root) == [f"{PARTIAL_DIR}/ml-100k.zip.part"]
        partial = (root / PARTIAL_DIR / "ml-100k.zip.part").stat().st_size
        assert partial == size // 2 + (size - size // 2) // 2
        assert (root / PARTIAL_DIR / "ml-100k.zip.part").read_bytes() == published["ml-100k.zip"][:partial]
        _fetch("movielens_100k", root, mirror, published)
    assert mirror.requests[-1] == ("ml-100k.zip", f"bytes={partial}-")
    assert _files_under(root) == sorted(f.path for f in CATALOGUE["movielens_100k"].files)


# --------------------------------------------------------------------------- no network, HTTP errors
def test_connection_refused_is_one_clear_error_and_writes_nothing(published, tmp_path) -> None:
    root = tmp_path / "data"
    with pytest.raises(DownloadError, match=r"cannot download http://127\.0\.0\.1:\d+/Mobile_Frappe\.zip .*--mirror"):
        _fetch("frappe_x1", root, refused_url(), published)
    assert not root.exists()


def test_a_missing_file_on_the_server_names_the_url(published, tmp_path) -> None:
    with Mirror({}) as mirror, pytest.raises(DownloadError, match=r"ml-100k\.zip: the server answered HTTP 404"):
        _fetch("movielens_100k", tmp_path / "data", mirror, published)
    assert not (tmp_path / "data").exists()


def test_a_local_folder_works_as_a_mirror(published, tmp_path) -> None:
    folder = tmp_path / "downloads"
    folder.mkdir()
    (folder / "ml-100k.zip").write_bytes(published["ml-100k.zip"])
    _fetch("movielens_100k", tmp_path / "data", str(folder), published)
    assert len(load_raw_dataset("movielens_100k", tmp_path / "data").train) > 0


def test_unknown_and_file_less_datasets_are_config_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match="did you mean 'movielens_100k'"):
        fetch_dataset("movielens", tmp_path, log=None)
    with pytest.raises(ConfigError, match="'synthetic' has nothing to fetch"):
        fetch_dataset("synthetic", tmp_path, log=None)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- command line
def test_cli_fetch_prints_the_terms_and_how_to_use_the_data(published, tmp_path, monkeypatch, capsys) -> None:
    root = tmp_path / "data"
    with Mirror(published) as mirror:
        monkeypatch.setenv(MIRROR_ENV, mirror.url)
        status = main(["datasets", "fetch", "movielens_100k", "--to", str(root), "--no-progress"])
    out = capsys.readouterr().out
    assert status == 0
    assert f"terms: {CATALOGUE['movielens_100k'].terms}" in out
    assert f"adaptive-loop train --config movielens_100k --data-root {root.resolve()}" in out
    assert mirror.requests == [("ml-100k.zip", None)]

    assert main(["datasets", "--data-root", str(root)]) == 0
    listing = capsys.readouterr().out
    block = listing.split("movielens_100k:")[1].split("\n\n")[0]
    assert "status:     found (3 files" in block and "100,000 rows  u.data" in block and "1,682 rows  u.item" in block
    assert "frappe_x1" in listing and "status:     not found" in listing.split("frappe_x1:")[1]


def test_cli_fetch_offline_prints_one_error_line(tmp_path, capsys) -> None:
    root = tmp_path / "data"
    status = main(["datasets", "fetch", "movielens_100k", "--to", str(root), "--mirror", refused_url(), "--no-progress"])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("error: cannot download http://127.0.0.1:") and err.count("\n") == 1
    assert not root.exists()


def test_cli_lists_every_dataset_with_place_files_rows_source_terms_and_command(shared_root, capsys) -> None:
    assert main(["datasets", "--data-root", str(shared_root)]) == 0
    out = capsys.readouterr().out
    for name in ("synthetic", "csv", "parquet"):
        assert f"\n{name}: " in out
    frappe = out.split("frappe_x1:")[1].split("\n\n")[0]
    assert f"looked for: {shared_root / 'frappe'}" in frappe
    assert "status:     found (3 files, 12.6 MB)" in frappe
    assert "96,203 rows  raw/frappe.csv" in frappe and "57,722 rows  nfm_split/frappe.validation.libfm" in frappe
    assert "28,860 rows  nfm_split/frappe.test.libfm" in frappe
    assert "source:     " in frappe and "irecsys/CARSKit" in frappe
    assert f"terms:      {CATALOGUE['frappe_x1'].terms}" in frappe
    assert f"get it:     adaptive-loop datasets fetch frappe_x1 --to {shared_root}" in frappe
    bandit = out.split("open_bandit:")[1].split("\n\n")[0]
    assert bandit.count("10,000 rows") == 6 and "80 rows  random/all/item_context.csv" in bandit


def test_cli_listing_without_any_data_root_says_where_it_looks(tmp_path, monkeypatch, capsys) -> None:
    nowhere = tmp_path / "nowhere"
    monkeypatch.setenv("ADAPTIVE_LOOP_DATA_ROOT", str(nowhere))
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert f"data root: none of {nowhere} exists yet" in out
    movielens = out.split("movielens_100k:")[1].split("\n\n")[0]
    assert f"looked for: {nowhere / 'movielens_100k'}" in movielens and "status:     not found" in movielens
    assert "  get it:     adaptive-loop datasets fetch movielens_100k" in movielens.splitlines()
    assert not nowhere.exists()


def test_count_rows_counts_a_last_line_without_newline(tmp_path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(b"a,b\n1,2\n3,4")
    assert count_rows(path, header_lines=1) == 2
    path.write_bytes(b"a,b\n1,2\n3,4\n")
    assert count_rows(path, header_lines=1) == 2
    path.write_bytes(b"")
    assert count_rows(path, header_lines=1) == 0
