"""Writing a headroom decomposition: JSON, markdown and its figure (matplotlib object API; the caller's backend is left alone).

Left: AUC against FLOPs/sample: the fixed depths and their frontier (each depth kept only if
it beats every cheaper one, interpolated linearly in cost), the budgeted oracle of the
depths, the budgeted oracle of the parametric null (its first draw), and the predictability
bound's choice at the cost of reading every depth. Right: the decomposition as bars: oracle
headroom, each null's headroom, each excess with its bootstrap interval, and the
predictable gain with its interval.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from adaptive_loop.errors import ConfigError
from adaptive_loop.harness.decomposition import HeadroomDecomposition
from adaptive_loop.io import write_json, write_text, write_with

if TYPE_CHECKING:
    from oracle.excess import Interval


def write_decomposition(
    result: HeadroomDecomposition, out_dir: str | Path, stem: str = "headroom_decomposition", title: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Write `<stem>.json`, `.md` and `.png` into `out_dir` (each atomically); returns the paths."""
    out = Path(out_dir)
    paths = {"json": out / f"{stem}.json", "markdown": out / f"{stem}.md", "figure": out / f"{stem}.png"}
    plot_headroom_decomposition(paths["figure"], result, title=title)
    write_json(paths["json"], {**result.to_dict(), **(extra or {})})
    write_text(paths["markdown"], result.to_markdown(title) + f"\n![headroom decomposition]({paths['figure'].name})\n")
    return paths


def read_excess(path: str | os.PathLike[str]) -> dict[str, float]:
    """The headline excess headroom per dataset from a `headroom_decomposition.json`.

    Controller benchmarks read it to report each controller's share of the excess beside its
    share of the oracle headroom; datasets without a finite excess are left out.
    """
    path = Path(path)
    try:
        records = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such headroom decomposition (write it with benchmarks/headroom_decomposition.py)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable headroom decomposition JSON ({exc})") from None
    if not isinstance(records, dict) or not all(isinstance(r, dict) for r in records.values()):
        raise ConfigError(f"{path}: expected {{dataset: record}} as written by benchmarks/headroom_decomposition.py")
    out: dict[str, float] = {}
    for name, record in records.items():
        value = record.get("excess")
        if isinstance(value, (int, float)) and math.isfinite(value):
            out[name] = float(value)
    return out


def _frontier(costs: np.ndarray, aucs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fixed depths that beat every cheaper depth (costs increase with depth)."""
    kept = [0]
    for t in range(1, len(aucs)):
        if aucs[t] > aucs[kept[-1]]:
            kept.append(t)
    return costs[kept], aucs[kept]


def plot_headroom_decomposition(path: str | os.PathLike[str], result: HeadroomDecomposition, title: str | None = None) -> Path:
    """Write the two-panel figure of one decomposition atomically (format from the suffix, default png)."""
    t = result.table
    return plot_decompositions(path, {title or f"{t.dataset or 'trace'}{'/' + t.split if t.split else ''}": result})


def plot_decompositions(path: str | os.PathLike[str], results: Mapping[str, HeadroomDecomposition]) -> Path:
    """One row of two panels per decomposition (keyed by its title), written atomically."""
    fig = Figure(figsize=(13.0, 4.6 * max(1, len(results))), dpi=110)
    axes = fig.subplots(max(1, len(results)), 2, squeeze=False, gridspec_kw={"width_ratios": [1.1, 1.0]})
    for (name, result), (left, right) in zip(results.items(), axes):
        draw_decomposition(left, right, result, name)
    fig.tight_layout()
    fmt = Path(path).suffix.lstrip(".") or "png"
    return write_with(path, lambda tmp: fig.savefig(tmp, format=fmt))


def draw_decomposition(left: Axes, right: Axes, result: HeadroomDecomposition, name: str) -> None:
    """Draw the AUC-vs-FLOPs panel into `left` and the decomposition bars into `right`."""
    fixed = result.table.fixed
    costs = np.array([r.flops for r in fixed])
    aucs = np.array([r.auc for r in fixed])
    left.plot(costs, aucs, "o", color="0.45", label="fixed depths")
    for r in fixed:
        left.annotate(str(r.depth), (r.flops, r.auc), textcoords="offset points", xytext=(3, 3), fontsize=7, color="0.4")
    kc, ka = _frontier(costs, aucs)
    left.plot(list(kc) + [costs[-1]], list(ka) + [ka[-1]], "-", color="0.25", label="fixed-depth frontier")
    if result.curve is not None:
        left.plot(result.curve.budgets, result.curve.auc, "--", color="tab:red", label="budgeted oracle, depths (uses labels)")
    if result.null_curve is not None:
        left.plot(result.null_curve.budgets, result.null_curve.auc, ":", color="tab:purple", linewidth=2,
                  label="budgeted oracle, parametric null")
    if result.predictability is not None:
        p = result.predictability
        left.plot([p.mean_cost], [p.auc], "*", markersize=13, color="tab:green",
                  label=f"predicted depth, no labels ({p.folds}-fold cross-fit)")
    left.set_xlabel("mean cost (FLOPs/sample)")
    left.set_ylabel("AUC")
    left.set_title(f"{name}: fixed depths, frontier, budgeted oracles", fontsize=10)
    left.grid(True, alpha=0.3)
    left.legend(fontsize=7, loc="center right")

    bars: list[tuple[str, Interval | None, float, str]] = [
        ("oracle headroom", result.oracle_interval, result.oracle_headroom, "tab:red")]
    for c in result.comparisons:
        bars.append((f"null: {c.null} ({c.n_candidates} cand.)", c.null_headroom, c.null_headroom.estimate, "0.6"))
    for c in result.comparisons:
        mark = " *" if c.null == result.primary else ""
        bars.append((f"excess over {c.null}{mark}", c.excess, c.excess.estimate, "tab:blue"))
    if result.predictability is not None:
        bars.append(("predictable gain (no labels)", result.predictable, result.predictability.gain, "tab:green"))
    names = [b[0] for b in bars]
    values = [b[2] for b in bars]
    colors = [b[3] for b in bars]
    errors = [(v - i.low, i.high - v) if i is not None and np.isfinite(i.low) else (0.0, 0.0) for _, i, v, _ in bars]
    y = np.arange(len(names))[::-1]
    xerr = np.array(errors).T
    right.barh(y, values, xerr=xerr, color=colors, alpha=0.85, capsize=3)
    right.set_yticks(y)
    right.set_yticklabels(names, fontsize=8)
    right.axvline(0.0, color="0.2", linewidth=0.8)
    right.set_xlabel("AUC")
    level = result.settings.get("level", 0.95)
    right.set_title(f"{name}: decomposition ({level:.0%} paired bootstrap intervals; * headline)", fontsize=10)
    right.grid(True, axis="x", alpha=0.3)
