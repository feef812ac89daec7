"""Markdown and plain-text rendering of result tables without extra dependencies."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd


def format_value(value: Any, digits: int = 4) -> str:
    """Numbers rounded for reading; big FLOP counts in engineering form; NaN/None as '-'."""
    if value is None:
        return "-"
    if isinstance(value, (bool,)):
        return str(value)
    if isinstance(value, (int,)) or (hasattr(value, "dtype") and getattr(value, "dtype").kind in "iu"):
        return str(int(value))
    if isinstance(value, float) or hasattr(value, "dtype"):
        v = float(value)
        if math.isnan(v):
            return "-"
        if abs(v) >= 1e5:
            return f"{v:.4g}"
        return f"{v:.{digits}f}"
    return str(value)


def frame_to_markdown(frame: pd.DataFrame, digits: int = 4) -> str:
    """A GitHub-flavoured markdown table of a DataFrame (index dropped)."""
    columns = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(format_value(v, digits) for v in row) + " |")
    return "\n".join(lines) + "\n"


def frame_to_text(frame: pd.DataFrame, digits: int = 4) -> str:
    """Aligned plain text for terminals."""
    shown = frame.copy()
    for col in shown.columns:
        shown[col] = [format_value(v, digits) for v in shown[col]]
    return shown.to_string(index=False) + "\n"
