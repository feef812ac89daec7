"""The small Open Bandit Dataset sample (ZOZOTOWN, uniform-random policy, all campaign).

10,000 impressions with about 0.4% clicks: too few positives for a leaderboard, but real,
tiny and fast, so it serves smoke tests. Label: `click`. Fields: item_id, position,
user_feature_0..3, item_feature_1..3 (categorical), item_feature_0 (numeric) and
`affinity`, the user-item affinity of the shown item (numeric). The other 79 affinity
columns describe items that were not shown and are dropped, as is `propensity_score`
(a property of the logging policy, not of the user or item). Random 80/10/10 split, seeded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from adaptive_loop.data.datasets.base import RawDataset, random_split, require_file, resolve_data_root
from adaptive_loop.data.schema import CategoricalField, DatasetSchema, NumericField
from adaptive_loop.errors import DataError

USER_FIELDS = tuple(f"user_feature_{k}" for k in range(4))
ITEM_FIELDS = ("item_feature_1", "item_feature_2", "item_feature_3")


def open_bandit_schema() -> DatasetSchema:
    """Schema of the Open Bandit sample (label `click`).

    Item, position, user and item fields, two numeric fields, three global tokens.
    """
    return DatasetSchema(
        label="click",
        categorical=tuple(CategoricalField(n) for n in ("item_id", "position", *USER_FIELDS, *ITEM_FIELDS)),
        numeric=(NumericField("item_feature_0"), NumericField("affinity")),
        token_groups=(USER_FIELDS, ("item_id", *ITEM_FIELDS, "item_feature_0", "affinity"), ("position",)),
    )


def load_open_bandit(
    data_root: str | Path | None = None,
    seed: int = 0,
    policy: str = "random",
    campaign: str = "all",
    fractions: tuple[float, float, float] | list[float] = (0.8, 0.1, 0.1),
) -> RawDataset:
    """One Open Bandit sample file (`policy` random|bts, `campaign` all|men|women), split at random."""
    root = resolve_data_root(data_root)
    folder = ("open_bandit_small", policy, campaign)
    log_path = require_file(root, *folder, f"{campaign}.csv")
    items_path = require_file(root, *folder, "item_context.csv")
    log = pd.read_csv(log_path, index_col=0)
    items = pd.read_csv(items_path, index_col=0)
    needed = ["item_id", "position", "click", *USER_FIELDS]
    missing = [c for c in needed if c not in log.columns]
    if missing:
        raise DataError(f"{log_path}: missing column(s) {', '.join(missing)}")
    affinity_cols = [c for c in log.columns if str(c).startswith("user-item_affinity_")]
    item_ids = log["item_id"].to_numpy(dtype=np.int64)
    if affinity_cols:
        by_item = {int(str(c).rsplit("_", 1)[1]): k for k, c in enumerate(affinity_cols)}
        column_of = np.array([by_item.get(int(i), -1) for i in range(int(item_ids.max()) + 1)])
        which = column_of[item_ids]
        matrix = log[affinity_cols].to_numpy(dtype=np.float64)
        affinity = np.where(which >= 0, matrix[np.arange(len(log)), np.maximum(which, 0)], np.nan)
    else:
        affinity = np.full(len(log), np.nan)
    frame = log[needed].assign(affinity=affinity)
    frame = frame.merge(items, on="item_id", how="left", validate="many_to_one")
    if frame["item_feature_0"].isna().all():
        raise DataError(f"{items_path}: no item_id of {log_path} is described there")
    train, valid, test = random_split(frame, tuple(fractions), seed)
    return RawDataset(
        name="open_bandit",
        train=train,
        valid=valid,
        test=test,
        schema=open_bandit_schema(),
        description=f"Open Bandit Dataset sample ({policy}/{campaign}), click label, random 80/10/10 split",
        info={"seed": seed, "policy": policy, "campaign": campaign},
    )
