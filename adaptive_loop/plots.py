"""Figures for per-depth results (matplotlib, written atomically as PNG)."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from adaptive_loop.evaluation import DepthMetrics
from adaptive_loop.io import write_with


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
