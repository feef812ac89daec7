"""Where each built-in public dataset comes from: files, original URLs, checksums and terms.

One entry per dataset whose loader reads files. Each entry lists the *downloads* (the files
as their publishers host them, at pinned versions) and, for each download, the *data files*
it yields at the paths the loader reads under the data root. A data file is either the
download itself or one member of a zip archive.

Checksums: every data file carries the SHA-256 and size of the published file (the files
the loaders were validated on). An archive is only transport, so its own SHA-256 and size
are recorded only where they are known from the file itself; where they are not, the
extracted members are what is verified. Nothing here is ever redistributed by this
project: Frappe and MovieLens forbid it, which is why users fetch them from the source.

Only the files the loaders read are fetched (e.g. not Frappe's app metadata `meta.csv`).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from adaptive_loop.errors import ConfigError

MIRROR_ENV = "ADAPTIVE_LOOP_DATA_MIRROR"


@dataclass(frozen=True)
class DataFile:
    """One file a loader reads: `path` under the data root (POSIX separators).

    `member` is its path inside the download when that is a zip archive (None: the download
    is the file). `header_lines` is how many leading lines are not data rows.
    """

    path: str
    sha256: str
    size: int
    member: str | None = None
    header_lines: int = 0


@dataclass(frozen=True)
class Download:
    """One file as its publisher hosts it, and the data files it yields.

    `sha256`/`size` describe the download itself and are None where unknown (then only the
    extracted members are verified).
    """

    url: str
    files: tuple[DataFile, ...]
    sha256: str | None = None
    size: int | None = None

    @property
    def file_name(self) -> str:
        """The download's file name: its name in a mirror and in the partial-download folder."""
        return PurePosixPath(urlsplit(self.url).path).name

    @property
    def is_archive(self) -> bool:
        """True when the data files are members of this download (a zip or wheel)."""
        return any(f.member is not None for f in self.files)


@dataclass(frozen=True)
class CatalogueEntry:
    """A fetchable dataset: what it is, where it comes from, its terms, its downloads."""

    name: str
    summary: str
    source: str
    terms: str
    downloads: tuple[Download, ...]

    @property
    def files(self) -> tuple[DataFile, ...]:
        """Every data file of the dataset, in download order."""
        return tuple(f for d in self.downloads for f in d.files)


_CARSKIT = "https://raw.githubusercontent.com/irecsys/CARSKit/0a1789fb0804b067cabd223c4b8fd8b4d2f6e881"
_NFM = "https://raw.githubusercontent.com/hexiangnan/neural_factorization_machine/ca2a5d11b929816aa44c6e470e795af144608507"
_OBP_WHEEL = (
    "https://files.pythonhosted.org/packages/0a/55/3df1cda2409f601c2414c74f9fbeb0f270edee62a13f7858d383f40aa87f/"
    "obp-0.4.1-py3-none-any.whl"
)

FRAPPE_X1 = CatalogueEntry(
    name="frappe_x1",
    summary="Frappe_x1 (NFM/AFN/BARS split): published valid/test files; train rebuilt from the raw Frappe log",
    source=(
        "Frappe v1.0 log, Mobile_Frappe.zip of github.com/irecsys/CARSKit @0a1789f; valid/test libFM files, "
        "github.com/hexiangnan/neural_factorization_machine @ca2a5d1 data/frappe/"
    ),
    terms=(
        "Frappe (Baltrunas et al., arXiv:1505.03014): research use only; cite the paper; no redistribution "
        "without permission; no de-anonymisation; no commercial use without permission"
    ),
    downloads=(
        Download(
            url=f"{_CARSKIT}/context-aware_data_sets/Mobile_Frappe.zip",
            size=3_372_404,
            files=(
                DataFile(
                    "frappe/raw/frappe.csv",
                    "409edc12f4e2153c5dd58ae171938735911d9b0f70961d5f1086b241656b2cb5",
                    6_313_241,
                    member="Mobile_Frappe/frappe/frappe.csv",
                    header_lines=1,
                ),
            ),
        ),
        Download(
            url=f"{_NFM}/data/frappe/frappe.validation.libfm",
            files=(
                DataFile(
                    "frappe/nfm_split/frappe.validation.libfm",
                    "fdf4be563a7dd9b15f7a6e8b32671e90e6e7a2a2bd3af4e10bf13c5ad7e76e9e",
                    4_163_044,
                ),
            ),
        ),
        Download(
            url=f"{_NFM}/data/frappe/frappe.test.libfm",
            files=(
                DataFile(
                    "frappe/nfm_split/frappe.test.libfm",
                    "a2ebaef3a9af8e55f8bb0d08bc4923965e42e43760ebd7635ac2f8c5db99e097",
                    2_081_389,
                ),
            ),
        ),
    ),
)

MOVIELENS_100K = CatalogueEntry(
    name="movielens_100k",
    summary="MovieLens 100K ratings, users and movies (GroupLens)",
    source="GroupLens, https://files.grouplens.org/datasets/movielens/ml-100k.zip",
    terms=(
        "MovieLens (GroupLens, University of Minnesota): research use only; cite Harper & Konstan 2015; "
        "no endorsement claims; no redistribution without permission; no commercial use without permission"
    ),
    downloads=(
        Download(
            url="https://files.grouplens.org/datasets/movielens/ml-100k.zip",
            files=(
                DataFile(
                    "movielens_100k/u.data",
                    "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
                    1_979_173,
                    member="ml-100k/u.data",
                ),
                DataFile(
                    "movielens_100k/u.user",
                    "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
                    22_628,
                    member="ml-100k/u.user",
                ),
                DataFile(
                    "movielens_100k/u.item",
                    "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
                    236_344,
                    member="ml-100k/u.item",
                ),
            ),
        ),
    ),
)

_OBD_FILES = {
    # (policy, campaign): (log sha256, log size, item_context sha256, item_context size)
    ("random", "all"): ("7168295b6e0a9eabcf3392320a5dd434e542b68e705d5cd9491499af589812f1", 5_039_451,
                        "eba04cc23d5f130a93ff174c5392986882b94c3839433cb8143870eaa6221358", 10_041),
    ("random", "men"): ("ede6d08c6877f99cd3770f7d09e26c738e6aa6de4445ccccfb1356ba5d06b1eb", 3_336_811,
                        "6d855c2b7e917d0448d71bbe62c023147495882c0fdc8c41e86fef86abf9fe09", 4_287),
    ("random", "women"): ("e65f3bd3beb17664fa69cc129bf7bf852a775f8ffa630506e505fc905315bb34", 3_817_771,
                          "b1ca4905f97703d196004f2ad4552c1e90c2afad8b50688d333b0d2dc0b33147", 5_792),
    ("bts", "all"): ("0ad874e4dbf6902f0845dd478ad8dde5ef6903583d3ffaace78411bdad064106", 5_084_456,
                     "5d4359ba1cfa3ae88f0f1bae66bd633859fe6323817183632ee57b83539d9153", 10_041),
    ("bts", "men"): ("db6d1f7ed2d591ba521533e45286d4c1fba7fe57a8ad2e80342210335f43c527", 3_240_432,
                     "3b411ed6b0471316321a6b93f4f756bb25888eac6218cd71d0b603d41d85732d", 4_287),
    ("bts", "women"): ("e5d1b49a39b608585a2f3014a3f54970430cd37a495c1b73fceb85cdf428a5b8", 3_722_697,
                       "a56295bad066a558eb783055afd9279f5f4e209a4776eafc22151c53f0ac89d4", 5_792),
}


def _obd_files() -> tuple[DataFile, ...]:
    files = []
    for (policy, campaign), (log_sha, log_size, items_sha, items_size) in _OBD_FILES.items():
        folder = f"{policy}/{campaign}"
        for name, sha, size in ((f"{campaign}.csv", log_sha, log_size), ("item_context.csv", items_sha, items_size)):
            files.append(
                DataFile(f"open_bandit_small/{folder}/{name}", sha, size, member=f"obp/dataset/obd/{folder}/{name}",
                         header_lines=1)
            )
    return tuple(files)


OPEN_BANDIT = CatalogueEntry(
    name="open_bandit",
    summary="Open Bandit Dataset small sample (ZOZOTOWN): 2 policies x 3 campaigns, 10,000 impressions each",
    source="obp 0.4.1 wheel on PyPI (files.pythonhosted.org), folder obp/dataset/obd/",
    terms=(
        "Open Bandit Dataset (ZOZO; Saito et al., arXiv:2008.07146): sample shipped in the Apache-2.0 obp wheel; "
        "no separate data licence is stated with it; cite the paper"
    ),
    downloads=(
        Download(
            url=_OBP_WHEEL,
            sha256="87dec9caf4283c25ab13036532e0a24566f1c7bdcad1653a8ded43b2f5ef8208",
            size=1_338_290,
            files=_obd_files(),
        ),
    ),
)

CATALOGUE: dict[str, CatalogueEntry] = {e.name: e for e in (FRAPPE_X1, MOVIELENS_100K, OPEN_BANDIT)}

WITHOUT_FILES: dict[str, str] = {
    "synthetic": "generated in memory from a seed; nothing to fetch",
    "csv": "your own CSV/TSV files with a schema (data.path or data.train_path/valid_path/test_path)",
    "parquet": "your own parquet files with a schema (data.path or data.train_path/valid_path/test_path)",
}
"""Built-in datasets that need no published files, and what they read instead."""


def catalogue_entry(name: str) -> CatalogueEntry:
    """The entry of a fetchable dataset, or a `ConfigError` naming the fetchable ones."""
    if name in CATALOGUE:
        return CATALOGUE[name]
    if name in WITHOUT_FILES:
        raise ConfigError(f"dataset {name!r} has nothing to fetch ({WITHOUT_FILES[name]})")
    close = difflib.get_close_matches(str(name), list(CATALOGUE), n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"unknown dataset {name!r}{hint} (fetchable: {', '.join(CATALOGUE)})")
