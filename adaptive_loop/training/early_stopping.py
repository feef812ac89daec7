"""The validation monitor behind early stopping and the best checkpoint (`train.monitor`)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from adaptive_loop.errors import ConfigError


@dataclass(frozen=True)
class Monitor:
    """A parsed `train.monitor` string."""

    metric: str  # "auc" or "logloss"
    depth: int | None  # None = mean over depths 0..L
    maximise: bool

    @classmethod
    def parse(cls, text: str, train_loops: int) -> "Monitor":
        """Parse 'auc@L', 'auc@<k>', 'mean_auc' or the same with logloss.

        Raises `ConfigError` for anything else or for k deeper than `train_loops`.
        """
        match = re.fullmatch(r"(auc|logloss)@(L|\d+)|mean_(auc|logloss)", text.strip())
        if not match:
            raise ConfigError(
                f"train.monitor {text!r} is not one of 'auc@L', 'auc@<k>', 'mean_auc', 'logloss@L', 'logloss@<k>', 'mean_logloss'"
            )
        if match.group(3):
            metric, depth = match.group(3), None
        else:
            metric = match.group(1)
            depth = train_loops if match.group(2) == "L" else int(match.group(2))
            if depth > train_loops:
                raise ConfigError(f"train.monitor {text!r} asks for depth {depth}, deeper than the {train_loops} trained loops")
        return cls(metric=metric, depth=depth, maximise=metric == "auc")

    def value(self, aucs: list[float], loglosses: list[float]) -> float:
        """The monitored number from per-depth validation AUCs and loglosses (one depth, or their mean)."""
        values = aucs if self.metric == "auc" else loglosses
        return float(np.mean(values)) if self.depth is None else float(values[self.depth])

    def improved(self, new: float, best: float, min_delta: float) -> bool:
        """Whether `new` beats `best` by more than `min_delta` (True while `best` is NaN)."""
        if math.isnan(best):
            return True
        return new > best + min_delta if self.maximise else new < best - min_delta
