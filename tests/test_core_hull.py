"""The one concave-hull walk: its steps are exactly the choices a price sweep makes."""

from __future__ import annotations

import numpy as np
import pytest

from adaptive_loop.hull import hull_walk


def _choices_over_prices(u: np.ndarray, costs: np.ndarray, prices: np.ndarray) -> list[list[int]]:
    """Per row, the distinct depths argmax_t u_t - lam c_t takes as lam falls (ties to the shallowest)."""
    picks = np.argmax(u[:, None, :] - prices[None, :, None] * costs[None, None, :], axis=2)
    out = []
    for row in picks:
        seq = [int(row[0])]
        for d in row[1:]:
            if d != seq[-1]:
                seq.append(int(d))
        out.append(seq)
    return out


def test_farthest_walk_visits_what_a_price_sweep_chooses() -> None:
    rng = np.random.default_rng(0)
    u = rng.normal(size=(60, 6))
    costs = np.array([0.0, 1.0, 2.5, 3.0, 4.5, 6.0])
    seg = hull_walk(u, costs, ties="farthest", improving_only=False)
    walked = {r: [0] for r in range(u.shape[0])}
    for r, d in zip(seg.row, seg.to_depth):
        walked[int(r)].append(int(d))
    swept = _choices_over_prices(u, costs, np.linspace(50, -50, 40001))
    for r in range(u.shape[0]):
        assert walked[r] == swept[r]
    # slopes are the utility gained per unit of cost on each step
    start = {r: 0 for r in range(u.shape[0])}
    for r, d, step, slope in zip(seg.row, seg.to_depth, seg.step, seg.slope):
        a = start[int(r)]
        assert step == pytest.approx(costs[d] - costs[a])
        assert slope == pytest.approx((u[r, d] - u[r, a]) / step)
        start[int(r)] = int(d)


def test_improving_walk_stops_at_the_best_depth_and_nearest_ties_visit_collinear_points() -> None:
    u = np.array([[0.0, 1.0, 2.0, 3.0, 2.0], [0.0, -1.0, -2.0, -3.0, -4.0]])
    costs = np.arange(5.0)
    near = hull_walk(u, costs, ties="nearest", improving_only=True)
    assert near.row.tolist() == [0, 0, 0] and near.to_depth.tolist() == [1, 2, 3]  # row 1 never improves
    far = hull_walk(u, costs, ties="farthest", improving_only=True)
    assert far.row.tolist() == [0] and far.to_depth.tolist() == [3]
    every = hull_walk(u, costs, ties="farthest", improving_only=False)
    assert sorted(every.slope.tolist()) == [-1.0, -1.0, 1.0]  # negative prices reach the deepest depth
    with pytest.raises(ValueError, match="ties"):
        hull_walk(u, costs, ties="closest", improving_only=True)
