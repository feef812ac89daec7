"""The AUC a model could reach on each needed-depth regime of the synthetic data at each inference depth.

After i loop steps the start event of a row can have summed the first i + 1 endorsements of
its referral path (its own and those of its i nearest referrers; one more with the Entry hop,
`entry_hop: true`). This script generates rows with the embedded generator and computes, per
needed-depth regime, the AUC of the Bayes posterior given exactly that much of the path and
the first-order effects: P(click) = E_R[sigmoid(strength * (S + R) / sqrt(m) + first_order * fo)],
with S the sum read so far, R the sum of the m - (i + 1) endorsements not read yet (fair coins)
and m the path length: what each (regime, depth) cell of the demo's `regime_auc` table can
reach by following links. A model also reads the history's average endorsement, which holds a
little more at depths short of the needed one (the path is a few of the history's events) and
is left out here; at and beyond the needed depth the figure is the regime's Bayes AUC.

    python benchmarks/synthetic_reachable_auc.py                 # the demo's data options
    python benchmarks/synthetic_reachable_auc.py --strength 2.5 --entry-hop
"""

from __future__ import annotations

import argparse
from math import comb

import numpy as np
from sklearn.metrics import roc_auc_score

from adaptive_loop.data.datasets.synthetic import generate_synthetic


def path_endorsements(frame) -> tuple[np.ndarray, np.ndarray]:
    """([n, seq_len] the +1 / -1 endorsements from the latest event up its referral chain, 0 after
    the origin; [n] path lengths)."""
    nxt, fb = (np.stack(frame[c].to_numpy()) for c in ("hist_next", "hist_fb"))
    rows = np.arange(len(frame))
    current = np.full(len(frame), nxt.shape[1] - 1)
    on_path = np.ones(len(frame), dtype=bool)
    terms = np.zeros(nxt.shape)
    for step in range(nxt.shape[1]):
        terms[:, step] = np.where(on_path, np.where(fb[rows, current] == 2, 1.0, -1.0), 0.0)
        on_path &= nxt[rows, current] != current  # an origin refers to itself: the path ends there
        current = nxt[rows, current]
    return terms, (terms != 0).sum(axis=1)


def posterior(read: np.ndarray, unread: int, length: int, first_order: np.ndarray, strength: float) -> np.ndarray:
    """P(click) given the sum `read` of the endorsements read so far and `unread` fair coins still hidden."""
    out = np.zeros_like(first_order)
    for heads in range(unread + 1):
        rest = 2 * heads - unread
        out += comb(unread, heads) / 2**unread / (1 + np.exp(-(strength * (read + rest) / np.sqrt(length) + first_order)))
    return out


def reachable_auc(n_rows: int = 100_000, seed: int = 0, strength: float = 4.0, entry_hop: bool = False,
                  max_depth: int = 4) -> dict[int, list[float]]:
    """{needed depth d: [reachable AUC at inference depth 0..max_depth]} on `n_rows` generated rows."""
    frame = generate_synthetic(n_rows=n_rows, seed=seed, strength=strength, entry_hop=entry_hop)
    logit = np.log(frame["true_prob"] / (1 - frame["true_prob"])).to_numpy()
    terms, lengths = path_endorsements(frame)
    first_order = logit - strength * terms.sum(axis=1) / np.sqrt(lengths)
    label, needed = frame["label"].to_numpy(), frame["needed_depth"].to_numpy()
    out = {}
    for d in range(4):
        rows = np.flatnonzero(needed == d)
        length = int(lengths[rows[0]])
        row = []
        for depth in range(max_depth + 1):
            seen = min(depth + 1 + int(entry_hop), length)
            read = terms[rows, :seen].sum(axis=1)
            row.append(float(roc_auc_score(label[rows], posterior(read, length - seen, length, first_order[rows], strength))))
        out[d] = row
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--strength", type=float, default=4.0, help="generator strength (default 4.0, the demo's)")
    parser.add_argument("--entry-hop", action="store_true", help="the Entry takes the first link (entry_hop: true)")
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args(argv)
    table = reachable_auc(args.rows, strength=args.strength, entry_hop=args.entry_hop)
    print(f"reachable AUC per needed depth at inference depths 0..4 (strength {args.strength}, "
          f"entry_hop {args.entry_hop}, {args.rows:,} rows)")
    print(f"{'needed':>8} " + " ".join(f"{'d' + str(i):>6}" for i in range(5)))
    for d, row in table.items():
        print(f"{d:>8} " + " ".join(f"{a:6.3f}" for a in row))


if __name__ == "__main__":
    main()
