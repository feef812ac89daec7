"""The LoopCTR reproduction benchmark: the paper's claims on real data, against peers, in one command.

    python benchmarks/reproduce.py --dataset frappe_x1

- `variants`: the models (baselines, the loop-scaling grid, ablations) as config overrides;
- `settings`: seeds, epochs, subsampling and the fingerprint a resumed cell must match;
- `cells`: train / resume / reuse one (variant, seed) and evaluate it at every depth;
- `aggregate`: mean and std over seeds; `claims`: verdicts with their numbers;
- `throughput`: samples/s and GFLOP/s of training against this CPU's matmul rate, and a profile;
- `report`: JSON payload, markdown and figures; `runner`: the command line.
"""

from adaptive_loop.reproduce.runner import main, run_benchmark

__all__ = ["main", "run_benchmark"]
