"""Training-time OOV dropout: replace a field's ids by the OOV id with a given probability.

Why: when the evaluation splits hold many ids never seen in training (MovieLens-100K split
by time: ~85% of validation and test rows have a user absent from the training window),
a model trained on fully known ids learns to lean on per-id embeddings that are useless
at evaluation, and the OOV embedding it then meets is never trained. Replacing the id by
OOV (`adaptive_loop.data.spec.OOV_ID`) in a random share of training rows trains the OOV
row and teaches the model to predict from the remaining features (history, item,
demographics) - the "id dropout" used against cold start. Padding (id 0) is left as it is.

The mask is drawn from torch's global RNG, whose state every checkpoint stores, so runs
stay reproducible and resumable; with no field configured nothing is drawn.
"""

from __future__ import annotations

import dataclasses

import torch

from adaptive_loop.data.batch import Batch
from adaptive_loop.data.spec import OOV_ID, PAD_ID, FeatureSpec
from adaptive_loop.errors import ConfigError


class OOVDropout:
    """Per-field OOV replacement for training batches (`train.oov_dropout: {field: probability}`)."""

    def __init__(self, rates: dict[str, float], spec: FeatureSpec) -> None:
        columns = {f.name: i for i, f in enumerate(spec.categorical)}
        self.rates: list[tuple[int, float]] = []
        for name, rate in rates.items():
            if name not in columns:
                raise ConfigError(
                    f"train.oov_dropout names {name!r}, which is not a categorical field; fields: {', '.join(columns)}"
                )
            if rate > 0:
                self.rates.append((columns[name], float(rate)))

    def __bool__(self) -> bool:
        return bool(self.rates)

    def __call__(self, batch: Batch) -> Batch:
        """A copy of `batch` whose configured columns are OOV in a random share of rows."""
        if not self.rates:
            return batch
        cat = batch.cat.clone()
        for col, rate in self.rates:
            drop = (torch.rand(cat.shape[0], device=cat.device) < rate) & (cat[:, col] != PAD_ID)
            cat[:, col] = torch.where(drop, torch.full_like(cat[:, col], OOV_ID), cat[:, col])
        return dataclasses.replace(batch, cat=cat)
