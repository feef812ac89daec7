"""Frappe_x1: the NFM/AFN/BARS 7:2:1 split of the Frappe app-usage log, with a rebuilt train split.

Valid and test are exactly the published libFM files (`<root>/frappe/nfm_split/
frappe.{validation,test}.libfm`, 57,722 and 28,860 rows; labels -1/1 -> 0/1), decoded back
to the 10 named fields user, item, daytime, weekday, isweekend, homework, cost, weather,
country, city. The published train file is not available, so it is rebuilt from the
original log `<root>/frappe/raw/frappe.csv` (96,203 positive-only rows):

1. libFM ids: user id = raw `user`; item id = 957 + raw `item`; every other field's ids are
   numbered in the order its values first appear in `frappe.csv`, from the field's offset
   (daytime 5039, weekday 5046, isweekend 5053, homework 5055, cost 5058, weather 5060,
   country 5069, city 5149; 5,382 ids). The offsets are re-derived from the raw file and
   checked, so a different raw file fails loudly instead of decoding garbage.
2. Train positives = raw rows minus the multiset of valid/test positives (each matches a raw
   row exactly on all 10 fields): 96,203 - 28,599 = 67,604.
3. The original pipeline gave every raw positive 2 negatives with the same user and context
   and a uniformly random item the user has no log for in that context, then split 7:2:1.
   So for each (user, context) group with n raw positives and c negatives already in
   valid/test, train gets 2n - c negatives (134,423 in all), sampled the same way with a
   seeded generator (rejection sampling, vectorised).
4. Positives and negatives are shuffled with the same seed: 202,027 rows.

Only the sampled negative items depend on the seed; row counts and positives do not.
Fields keep their raw values (ints for user/item/city, strings otherwise) so vocabularies
are fitted by the encoder on the train split alone. Global tokens: user | item + cost (the
app's price) | time (daytime, weekday, isweekend) | situation (homework, weather) | place
(country, city). Group for gAUC: user.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from adaptive_loop.data.datasets.base import RawDataset, require_file, resolve_data_root
from adaptive_loop.data.schema import CategoricalField, DatasetSchema
from adaptive_loop.errors import DataError

FIELDS = ("user", "item", "daytime", "weekday", "isweekend", "homework", "cost", "weather", "country", "city")
OFFSETS = {
    "user": 0, "item": 957, "daytime": 5039, "weekday": 5046, "isweekend": 5053,
    "homework": 5055, "cost": 5058, "weather": 5060, "country": 5069, "city": 5149,
}
N_IDS = 5382
TOKEN_GROUPS = (("user",), ("item", "cost"), ("daytime", "weekday", "isweekend"), ("homework", "weather"), ("country", "city"))


def frappe_schema() -> DatasetSchema:
    """Schema of Frappe_x1: the 10 categorical fields, label `label`, gAUC group `user`, five global tokens."""
    return DatasetSchema(
        label="label",
        categorical=tuple(CategoricalField(name) for name in FIELDS),
        group="user",
        token_groups=TOKEN_GROUPS,
    )


class _Codebook:
    """Raw value <-> libFM id <-> per-field code (0..k-1), derived from the raw log."""

    def __init__(self, raw: pd.DataFrame, source: Path):
        self.uniques: dict[str, np.ndarray] = {}
        self.codes: dict[str, np.ndarray] = {}
        offset = 0
        for name in FIELDS:
            if name in ("user", "item"):
                values = raw[name].to_numpy(dtype=np.int64)
                uniques = np.arange(int(values.max()) + 1, dtype=np.int64)
                codes = values
                if values.min() < 0 or len(np.unique(values)) != len(uniques):
                    raise DataError(f"{source}: column {name!r} is not a dense 0..k-1 id range as in Frappe v1.0")
            else:
                codes, uniques = pd.factorize(raw[name], sort=False)  # first-appearance order
                if (codes < 0).any():
                    raise DataError(f"{source}: column {name!r} has missing values")
                uniques = np.asarray(uniques)
            if offset != OFFSETS[name]:
                raise DataError(
                    f"{source}: field {name!r} would start at libFM id {offset}, not {OFFSETS[name]}; "
                    "this is not the Frappe v1.0 log the NFM split was made from"
                )
            self.uniques[name] = uniques
            self.codes[name] = np.asarray(codes, dtype=np.int64)
            offset += len(uniques)
        if offset != N_IDS:
            raise DataError(f"{source}: the fields give {offset} libFM ids, expected {N_IDS}")
        self.sizes = {name: len(self.uniques[name]) for name in FIELDS}

    def key(self, codes: dict[str, np.ndarray], fields: tuple[str, ...]) -> np.ndarray:
        """Mixed-radix int64 key of the given fields' codes (unique per combination)."""
        key = np.zeros(len(codes[fields[0]]), dtype=np.int64)
        for name in fields:
            key = key * self.sizes[name] + codes[name]
        return key

    def frame(self, codes: dict[str, np.ndarray]) -> pd.DataFrame:
        return pd.DataFrame({name: self.uniques[name][codes[name]] for name in FIELDS})


def _read_libfm(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Labels (0/1) and per-field codes of a libFM file with one id per field, in field order."""
    text = path.read_text(encoding="ascii")
    tokens = text.replace(":1", "").split()
    if len(tokens) % 11 != 0 or text.count(":") != len(tokens) // 11 * 10:
        raise DataError(f"{path}: expected lines 'label id:1 ...' with exactly 10 ids each (libFM Frappe format)")
    try:
        table = np.asarray(tokens, dtype=np.int64).reshape(-1, 11)
    except ValueError:
        raise DataError(f"{path}: non-integer label or id found; expected libFM 'label id:1 ...' lines") from None
    labels = table[:, 0]
    if not np.isin(labels, [-1, 1]).all():
        raise DataError(f"{path}: labels must be -1 or 1, found {sorted(set(np.unique(labels)) - {-1, 1})[:5]}")
    bounds = list(OFFSETS.values()) + [N_IDS]
    codes: dict[str, np.ndarray] = {}
    for j, name in enumerate(FIELDS):
        ids = table[:, j + 1]
        lo, hi = bounds[j], bounds[j + 1]
        if ids.min() < lo or ids.max() >= hi:
            raise DataError(f"{path}: field {name!r} (position {j + 1}) has ids outside its range {lo}..{hi - 1}")
        codes[name] = ids - lo
    return (labels > 0).astype(np.int64), codes


def _take(codes: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    return {name: values[rows] for name, values in codes.items()}


def rebuild_train(
    book: _Codebook, held_out: list[tuple[np.ndarray, dict[str, np.ndarray]]], seed: int
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The train split as (labels, codes), following the recipe in the module docstring."""
    raw_key = book.key(book.codes, FIELDS)
    labels = np.concatenate([lab for lab, _ in held_out])
    codes = {name: np.concatenate([c[name] for _, c in held_out]) for name in FIELDS}
    held_key = book.key(codes, FIELDS)
    pos_key = held_key[labels == 1]

    # 2. raw positives minus the multiset of held-out positives
    wanted = pd.Series(pos_key).value_counts()
    found = pd.Series(raw_key).value_counts().reindex(wanted.index, fill_value=0)
    if (found < wanted).any():
        missing = int((wanted - found).clip(lower=0).sum())
        raise DataError(f"{missing} valid/test positives do not match any raw Frappe row; the files do not belong together")
    rank = pd.Series(raw_key).groupby(raw_key).cumcount().to_numpy()
    remove = rank < pd.Series(raw_key).map(wanted).fillna(0).to_numpy()
    positives = _take(book.codes, np.flatnonzero(~remove))

    # 3. 2n - c negatives per (user, context) group, item uniform among items not logged there
    context = tuple(f for f in FIELDS if f != "item")
    raw_group = book.key(book.codes, context)
    held_neg_group = book.key(codes, context)[labels == 0]
    n_pos = pd.Series(raw_group).value_counts()
    n_neg = pd.Series(held_neg_group).value_counts().reindex(n_pos.index, fill_value=0)
    if not pd.Index(held_neg_group).isin(n_pos.index).all():
        raise DataError("some valid/test negatives have a (user, context) that never occurs in the raw Frappe log")
    need = (2 * n_pos - n_neg).clip(lower=0)
    first_row = pd.Series(np.arange(len(raw_group))).groupby(raw_group).first()
    groups = np.repeat(need.index.to_numpy(), need.to_numpy())
    template = first_row.reindex(groups).to_numpy()
    negatives = _take(book.codes, template)
    n_items = book.sizes["item"]
    logged = np.unique(raw_group * n_items + book.codes["item"])
    rng = np.random.default_rng(seed)
    items = rng.integers(0, n_items, size=len(groups))
    todo = np.flatnonzero(np.isin(groups * n_items + items, logged, assume_unique=False))
    while todo.size:
        items[todo] = rng.integers(0, n_items, size=todo.size)
        todo = todo[np.isin(groups[todo] * n_items + items[todo], logged)]
    negatives["item"] = items

    # 4. shuffle
    train_codes = {name: np.concatenate([positives[name], negatives[name]]) for name in FIELDS}
    train_labels = np.concatenate([np.ones(len(positives["user"]), np.int64), np.zeros(len(items), np.int64)])
    order = rng.permutation(len(train_labels))
    return train_labels[order], _take(train_codes, order)


def load_frappe_x1(data_root: str | Path | None = None, seed: int = 2020) -> RawDataset:
    """Frappe_x1 with the published valid/test files and a train split rebuilt with `seed`."""
    root = resolve_data_root(data_root)
    raw_path = require_file(root, "frappe", "raw", "frappe.csv")
    valid_path = require_file(root, "frappe", "nfm_split", "frappe.validation.libfm")
    test_path = require_file(root, "frappe", "nfm_split", "frappe.test.libfm")
    try:
        raw = pd.read_csv(raw_path, sep="\t", usecols=list(FIELDS))
    except ValueError as exc:
        raise DataError(f"{raw_path}: cannot read the Frappe log ({str(exc).splitlines()[0]})") from None
    book = _Codebook(raw, raw_path)
    valid = _read_libfm(valid_path)
    test = _read_libfm(test_path)
    train = rebuild_train(book, [valid, test], seed)

    def frame(part: tuple[np.ndarray, dict[str, np.ndarray]]) -> pd.DataFrame:
        labels, codes = part
        return pd.concat([pd.DataFrame({"label": labels}), book.frame(codes)], axis=1)

    return RawDataset(
        name="frappe_x1",
        train=frame(train),
        valid=frame(valid),
        test=frame(test),
        schema=frappe_schema(),
        description="Frappe_x1 (NFM/AFN/BARS split): published valid/test, train rebuilt from the raw log",
        info={"seed": seed, "raw_rows": len(raw)},
    )
