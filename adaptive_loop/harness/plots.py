"""The AUC-vs-FLOPs figure: controller curves, fixed-depth frontier, budgeted oracle."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from matplotlib.figure import Figure

from adaptive_loop.harness.curves import Curve, FixedFrontier
from adaptive_loop.io import write_with
from oracle.budgeted import BudgetedOracleCurve


def plot_auc_vs_flops(
    path: str | os.PathLike[str],
    curves: Sequence[Curve],
    frontier: FixedFrontier,
    oracle_curve: BudgetedOracleCurve | None = None,
    points: Sequence[tuple[str, float, float]] = (),
    title: str = "AUC vs FLOPs",
) -> Path:
    """Write the figure atomically (format from the file suffix, default png).

    Built with matplotlib's object API (no pyplot), so it neither changes the caller's
    backend nor leaves figures open in an interactive session.
    """
    fig = Figure(figsize=(7.5, 5.0), dpi=120)
    ax = fig.subplots()
    ax.plot(frontier.costs, frontier.aucs, "o", color="0.5", label="fixed depths")
    for t, (c, a) in enumerate(zip(frontier.costs, frontier.aucs)):
        ax.annotate(str(t), (c, a), textcoords="offset points", xytext=(3, 3), fontsize=7, color="0.4")
    kc = frontier.costs[frontier.kept]
    ka = frontier.aucs[frontier.kept]
    xmax = max([float(frontier.costs[-1])] + [float(c.costs.max()) for c in curves if c.costs.size])
    ax.plot(list(kc) + [xmax], list(ka) + [ka[-1]], "-", color="0.3", label="fixed-depth frontier (interpolated)")
    if oracle_curve is not None:
        ax.plot(oracle_curve.budgets, oracle_curve.auc, "--", color="tab:red", label="budgeted oracle (uses labels)")
    for curve in curves:
        ax.plot(curve.costs, curve.aucs, ".-", label=f"{curve.name} ({curve.knob_name} sweep)")
    for label, cost, auc in points:
        ax.plot([cost], [auc], "*", markersize=12, label=label)
    ax.set_xlabel("mean cost (FLOPs/sample)")
    ax.set_ylabel("AUC")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")  # the budgeted oracle sits far above the controllers; "best" avoids both
    fig.tight_layout()
    fmt = Path(path).suffix.lstrip(".") or "png"
    return write_with(path, lambda tmp: fig.savefig(tmp, format=fmt))
