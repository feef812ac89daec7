"""Writing per-depth results: JSON, CSV and the AUC-vs-depth / AUC-vs-FLOPs figure."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from adaptive_loop.io import write_json, write_with
from adaptive_loop.training.per_depth import DepthMetrics


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


def plot_depth_curves(rows: list[DepthMetrics], path: str | Path, title: str, train_loops: int | None = None) -> Path:
    """Two panels: AUC against loop depth, and AUC against FLOPs per sample."""
    depths = [r.depth for r in rows]
    aucs = [r.auc for r in rows]
    flops = [r.flops_per_sample / 1e6 for r in rows]
    fig = Figure(figsize=(10, 4))  # object API: the caller's matplotlib backend is left alone
    left, right = fig.subplots(1, 2)
    left.plot(depths, aucs, marker="o", label="fixed depth")
    if train_loops is not None:
        left.axvline(train_loops, color="grey", linestyle="--", linewidth=1, label=f"trained loops L={train_loops}")
    left.set_xlabel("inference loop depth i")
    left.set_ylabel("AUC")
    left.set_title("AUC vs loop depth")
    left.set_xticks(depths)
    left.legend()
    right.plot(flops, aucs, marker="o", label="fixed depth")
    for r, x, y in zip(rows, flops, aucs):
        right.annotate(str(r.depth), (x, y), textcoords="offset points", xytext=(4, -10), fontsize=8)
    right.set_xlabel("MFLOPs per sample")
    right.set_ylabel("AUC")
    right.set_title("AUC vs compute")
    right.legend()
    fig.suptitle(title)
    fig.tight_layout()
    target = Path(path)
    write_with(target, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    return target
