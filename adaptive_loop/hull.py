"""The concave-hull walk over per-depth utilities: the one path both budget solvers follow.

Given, for every row, a utility at each depth (higher is better) and the cost of each
depth, a row that pays a price `lam` per unit of cost takes `argmax_t utility_t - lam *
cost_t`. As `lam` falls from +inf, that choice walks along the row's upper concave hull
of the points (cost_t, utility_t), moving at each hull segment's slope. Walking the hull
once gives every price at which any row changes its choice:

- the budgeted oracle (`oracle.budgeted`) walks the hull of minus the per-sample loss and
  sorts all segments by slope into one Lagrangian / greedy path (`improving_only`: a
  segment that does not lower the loss is never worth paying for; `ties="nearest"`: of
  collinear points, stop at each one, so greedy upgrades stay one depth at a time);
- the budgeted allocator (`controllers.learned.utility`) needs the slopes alone, negative
  ones included (negative prices reach every depth up to K), as the breakpoints of its
  price knob (`ties="farthest"`: collinear points give one breakpoint).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class HullSegments:
    """Hull segments of all rows, in the order the walk found them (hull step by hull step).

    Segment j moves row `row[j]` to depth `to_depth[j]` for `step[j]` more cost and
    `slope[j] * step[j]` more utility.
    """

    row: np.ndarray  # int64 [m]
    to_depth: np.ndarray  # int64 [m]
    step: np.ndarray  # float64 [m]
    slope: np.ndarray  # float64 [m]


def hull_walk(utility: np.ndarray, costs: np.ndarray, *, ties: str, improving_only: bool) -> HullSegments:
    """Walk every row's upper concave hull of (costs[t], utility[:, t]) from depth 0.

    Args:
        utility: [n, D] per-row utility of each depth (higher is better).
        costs: [D] cost of each depth; a depth whose cost is not above the current one is
            never a step (its slope is -inf).
        ties: among points of equal best slope, step to the "nearest" or the "farthest".
        improving_only: stop a row at the first segment whose slope is not positive.
    """
    if ties not in ("nearest", "farthest"):
        raise ValueError(f"ties must be 'nearest' or 'farthest', got {ties!r}")
    u = np.asarray(utility, dtype=np.float64)
    n, d = u.shape
    cur = np.zeros(n, dtype=np.int64)
    rows = np.arange(n)
    found_rows, found_depths, found_steps, found_slopes = [], [], [], []
    for _ in range(d - 1):
        if rows.size == 0:
            break
        c = cur[rows]
        du = u[rows] - u[rows, c][:, None]
        dc = costs[None, :] - costs[c][:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = du / dc
        slope[dc <= 0] = -np.inf
        if ties == "nearest":
            best = np.argmax(slope, axis=1)  # the first maximum: the nearest of collinear points
        else:
            best = d - 1 - np.argmax(slope[:, ::-1], axis=1)  # the farthest of equal slopes
        best_slope = slope[np.arange(rows.size), best]
        if improving_only:
            take = best_slope > 0
            rows, best, best_slope, c = rows[take], best[take], best_slope[take], c[take]
        found_rows.append(rows)
        found_depths.append(best)
        found_steps.append(costs[best] - costs[c])
        found_slopes.append(best_slope)
        cur[rows] = best
        rows = rows[best < d - 1]
    if not found_rows:
        empty = np.zeros(0, dtype=np.int64)
        return HullSegments(empty, empty, np.zeros(0), np.zeros(0))
    return HullSegments(
        row=np.concatenate(found_rows),
        to_depth=np.concatenate(found_depths),
        step=np.concatenate(found_steps).astype(np.float64),
        slope=np.concatenate(found_slopes),
    )
