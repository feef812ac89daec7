"""The AUC a model could reach on each needed-depth regime of the synthetic data at each inference depth.

At inference depth i, LoopCTR's start event can have read every event within i + 1 referral
links of it along its chain (parents and children: the Entry hop plus one hop per loop). This
script computes, by Monte Carlo on the generator's own model of a chain (origin exact, relays
flipped i.i.d. with probability q, label logit = strength * (+-1) + first_order * N(0, 1)), the
AUC of the Bayes posterior given exactly that information. It shows how much the noisy relays
already give at depth 0 and what each extra loop is worth, for several relay noises.

    python benchmarks/synthetic_reachable_auc.py --noise 0.25 0.3 0.4 0.5
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.metrics import roc_auc_score

CHAIN_LEVELS = 5  # origin (level 0) and relays at levels 1..4, as in the generator


def reachable_auc(noise: float, strength: float = 4.0, first_order: float = 0.5, max_depth: int = 4,
                  n: int = 200_000, seed: int = 0) -> dict[int, list[float]]:
    """{needed depth d: [AUC at inference depth 0..max_depth]} for relay flip probability `noise`."""
    rng = np.random.default_rng(seed)
    weight = np.log((1 - noise) / noise) if 0 < noise < 0.5 else (50.0 if noise == 0 else 0.0)
    out = {}
    for d in range(4):
        start = d + 1
        target = rng.random(n) < 0.5
        fo = first_order * rng.standard_normal(n)
        fb = np.repeat(target[:, None], CHAIN_LEVELS, 1) ^ (rng.random((n, CHAIN_LEVELS)) < noise)
        fb[:, 0] = target
        label = rng.random(n) < 1 / (1 + np.exp(-(strength * (2 * target - 1) + fo)))
        row = []
        for depth in range(max_depth + 1):
            levels = range(max(0, start - 1 - depth), min(CHAIN_LEVELS - 1, start + 1 + depth) + 1)
            if 0 in levels:
                posterior = target.astype(np.float64)
            else:
                votes = sum(np.where(fb[:, lvl], 1.0, -1.0) for lvl in levels)
                posterior = 1 / (1 + np.exp(-weight * votes))
            prob = posterior / (1 + np.exp(-(strength + fo))) + (1 - posterior) / (1 + np.exp(-(-strength + fo)))
            row.append(float(roc_auc_score(label, prob)))
        out[d] = row
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--noise", type=float, nargs="+", default=[0.25, 0.3, 0.4, 0.5])
    parser.add_argument("--strength", type=float, default=4.0)
    args = parser.parse_args(argv)
    for q in args.noise:
        print(f"relay_noise {q}")
        print(f"{'needed':>8} " + " ".join(f"{'d' + str(i):>6}" for i in range(5)))
        for d, row in reachable_auc(q, args.strength).items():
            print(f"{d:>8} " + " ".join(f"{a:6.3f}" for a in row))


if __name__ == "__main__":
    main()
