"""MovieLens 100K as a CTR task with a behaviour history and a time-ordered split.

- label = 1 if rating >= 4 (the common binarisation), else 0.
- fields: user, item, age bucket (the MovieLens-1M bands), gender, occupation, `genres`
  (the movie's genre flags as a pooled multi-valued field) and `hist_items`, the user's
  strictly earlier items, oldest first, the last `max_seq_len` kept.
- no leakage: events are sorted by (user, timestamp, position in u.data); an event's history
  holds only that user's events with a strictly smaller timestamp, so ratings made in the
  same second (often a batch of ratings) never see each other.
- `hist_items` shares the item vocabulary (`vocab_from="item"`) and is not pooled: it becomes
  the model's sequence tokens. Histories include all earlier ratings, whatever their label
  (what was watched, not what was liked), and may reach into an earlier split, as in
  production where the log before the cut-off is known.
- split by global timestamp quantiles (default 80/10/10): train is the oldest 80% of events.
- group for gAUC: user. Global tokens: user (user, age, gender, occupation) | item
  (item, genres).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from adaptive_loop.data.datasets.base import RawDataset, check_fractions, require_file, resolve_data_root, time_split
from adaptive_loop.data.schema import CategoricalField, DatasetSchema, SequenceField
from adaptive_loop.errors import ConfigError, DataError

GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
    "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)
AGE_BANDS = (18, 25, 35, 45, 50, 56)  # MovieLens-1M bands: <18, 18-24, 25-34, 35-44, 45-49, 50-55, 56+


def movielens_schema(max_seq_len: int) -> DatasetSchema:
    """Schema of MovieLens 100K (label `label`, gAUC group `user`).

    User, item and profile fields, pooled `genres`, and `hist_items` (up to `max_seq_len`) as sequence tokens.
    """
    return DatasetSchema(
        label="label",
        categorical=tuple(CategoricalField(n) for n in ("user", "item", "age", "gender", "occupation")),
        sequences=(
            SequenceField("genres", max_len=len(GENRES), pooled=True),
            SequenceField("hist_items", max_len=max_seq_len, vocab_from="item", pooled=False),
        ),
        group="user",
        token_groups=(("user", "age", "gender", "occupation"), ("item", "genres")),
    )


def _read(path: Path, sep: str, names: list[str], encoding: str = "latin-1") -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, sep=sep, header=None, names=names, encoding=encoding, engine="c")
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: cannot be read as {sep!r}-separated MovieLens data ({str(exc).splitlines()[0]})") from None
    if frame.empty:
        raise DataError(f"{path} has no rows")
    return frame


def history_lists(users: np.ndarray, times: np.ndarray, items: np.ndarray, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Each event's strictly earlier items of the same user (last `max_len`, oldest first).

    Returns (offsets int32 [n+1], flat item array) in the original row order, ready for an
    Arrow list column. Vectorised: after a stable sort by (user, time), an event's history is
    the slice from max(user start, block start - max_len) to its (user, time) block start.
    """
    n = len(users)
    order = np.lexsort((np.arange(n), times, users))
    u, t, it = users[order], times[order], items[order]
    new_user = np.r_[True, u[1:] != u[:-1]]
    new_block = new_user | np.r_[True, t[1:] != t[:-1]]
    user_start = np.maximum.accumulate(np.where(new_user, np.arange(n), 0))
    block_start = np.maximum.accumulate(np.where(new_block, np.arange(n), 0))
    begin = np.maximum(user_start, block_start - max_len)
    lengths_sorted = block_start - begin
    lengths = np.empty(n, dtype=np.int64)
    lengths[order] = lengths_sorted
    begins = np.empty(n, dtype=np.int64)
    begins[order] = begin
    offsets = np.r_[0, np.cumsum(lengths)]
    rows = np.repeat(np.arange(n), lengths)
    positions = begins[rows] + (np.arange(offsets[-1]) - offsets[rows])
    return offsets, it[positions]


def _list_column(offsets: np.ndarray, values: np.ndarray) -> pd.Series:
    array = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(values))
    return pd.Series(pd.arrays.ArrowExtensionArray(array))


def load_movielens_100k(
    data_root: str | Path | None = None,
    max_seq_len: int = 20,
    fractions: tuple[float, float, float] | list[float] = (0.8, 0.1, 0.1),
    positive_rating: int = 4,
) -> RawDataset:
    """ml-100k with label = rating >= `positive_rating`, a leakage-free history, time-ordered split."""
    if max_seq_len < 1:
        raise ConfigError(f"movielens_100k: max_seq_len must be >= 1, got {max_seq_len}")
    check_fractions(fractions)
    root = resolve_data_root(data_root)
    folder = "movielens_100k"
    ratings = _read(require_file(root, folder, "u.data"), "\t", ["user", "item", "rating", "timestamp"])
    users = _read(require_file(root, folder, "u.user"), "|", ["user", "age_years", "gender", "occupation", "zip"])
    movies = _read(require_file(root, folder, "u.item"), "|", ["item", "title", "release", "video", "url", *GENRES])

    flags = movies[list(GENRES)].to_numpy(dtype=np.int64)
    if not np.isin(flags, [0, 1]).all():
        raise DataError(f"{root / folder / 'u.item'}: the last 19 columns must be 0/1 genre flags")
    rows, cols = np.nonzero(flags)  # row-major: genres of each movie in u.genre order
    genre_offsets = np.r_[0, np.cumsum(flags.sum(axis=1))]
    genre_lists = pa.ListArray.from_arrays(pa.array(genre_offsets.astype(np.int32)), pa.array(np.asarray(GENRES)[cols]))
    genres = pd.DataFrame({"item": movies["item"].to_numpy(), "genres": pd.arrays.ArrowExtensionArray(genre_lists)})

    bands = np.digitize(users["age_years"].to_numpy(), AGE_BANDS)
    labels = ["<18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+"]
    users = users.assign(age=np.asarray(labels)[bands])[["user", "age", "gender", "occupation"]]

    offsets, hist = history_lists(
        ratings["user"].to_numpy(), ratings["timestamp"].to_numpy(), ratings["item"].to_numpy(), max_seq_len
    )
    events = ratings.assign(
        label=(ratings["rating"] >= positive_rating).astype(np.int64),
        hist_items=_list_column(offsets, hist),
    )
    events = events.merge(users, on="user", how="left", validate="many_to_one")
    events = events.merge(genres, on="item", how="left", validate="many_to_one")
    if events["gender"].isna().any() or events["genres"].isna().any():
        raise DataError(f"{root / folder}: some ratings refer to users or items missing from u.user / u.item")
    columns = ["label", "user", "item", "age", "gender", "occupation", "genres", "hist_items", "timestamp", "rating"]
    train, valid, test = time_split(events[columns], "timestamp", tuple(fractions))
    return RawDataset(
        name="movielens_100k",
        train=train,
        valid=valid,
        test=test,
        schema=movielens_schema(max_seq_len),
        description="MovieLens 100K, label rating >= 4, leakage-free item history, time-ordered 80/10/10 split",
        info={"max_seq_len": max_seq_len, "fractions": list(fractions)},
    )
