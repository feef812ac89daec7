"""Writing per-depth results: JSON, CSV and the AUC-vs-depth / AUC-vs-FLOPs figure."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from adaptive_loop.evaluation import DepthMetrics
from adaptive_loop.io import write_json, write_with
from adaptive_loop.plots import plot_depth_curves


@dataclass
class DepthReportFiles:
    """Where a per-depth report was written."""

    json: Path
    csv: Path
    plot: Path


def write_depth_report(
    rows: list[DepthMetrics],
    out_dir: str | Path,
    stem: str,
    title: str,
    train_loops: int | None,
    extra: dict[str, Any] | None = None,
) -> DepthReportFiles:
    """Write `<stem>.json`, `<stem>.csv` and `<stem>.png` into `out_dir`, each atomically."""
    out = Path(out_dir)
    frame = pd.DataFrame([r.to_dict() for r in rows])
    csv_path = write_with(out / f"{stem}.csv", lambda tmp: frame.to_csv(tmp, index=False))
    payload = {"title": title, "train_loops": train_loops, "depths": [r.to_dict() for r in rows], **(extra or {})}
    json_path = write_json(out / f"{stem}.json", payload)
    plot_path = plot_depth_curves(rows, out / f"{stem}.png", title=title, train_loops=train_loops)
    return DepthReportFiles(json=json_path, csv=csv_path, plot=plot_path)
