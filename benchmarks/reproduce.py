"""Reproduce the LoopCTR paper's claims on one dataset, against peers, in one resumable command.

For every variant (DeepFM, DCNv2, StackCTR(3), LoopCTR with L = 0..4 training loops, and the
L = 3 ablations without MoE, without hyper-connections, with top-1 and top-4 of 4 experts)
and every seed, trains on one shared split with one training recipe, evaluates test AUC at
every inference depth 0..K, computes the oracle headroom, and writes:

    benchmarks/results/reproduce_<dataset>.json     mean and std over seeds per (variant, depth) cell,
                                                    claim verdicts, throughput
    benchmarks/results/reproduce_<dataset>.md       the tables and verdicts
    benchmarks/results/reproduce_<dataset>_loop_scaling.png   test AUC over (L, i) - the paper's Figure 2
    benchmarks/results/reproduce_<dataset>_headroom.png       oracle ceiling and headroom vs L
    benchmarks/results/profile_train_step_<dataset>.txt   torch.profiler top ops of LoopCTR training steps

Run directories go to runs/reproduce/<dataset>/<variant>/seed<seed>/. Interrupt at any time:
the same command skips finished cells and resumes the unfinished one from its last epoch.
Each finished cell's result (and the throughput measurement) is also kept in
benchmarks/results/reproduce_<dataset>_cells/ (commit it): a fresh checkout reuses those cells
and trains only the rest.

Full runs (3 seeds, all 12 variants; days of CPU on 2 cores - LoopCTR trains at ~1-3k samples/s):

    python benchmarks/reproduce.py --dataset frappe_x1
    python benchmarks/reproduce.py --dataset movielens_100k

A part of it (groups: baselines, scaling, ablations; or variant names):

    python benchmarks/reproduce.py --dataset frappe_x1 --variants baselines,loopctr_L0,loopctr_L3

Reduced runs (labelled REDUCED in every output; --tag keeps them apart from the full results):

    python benchmarks/reproduce.py --dataset movielens_100k --seeds 1 --epochs 3 \
        --variants loopctr_L0,loopctr_L1,loopctr_L3 --tag reduced
    python benchmarks/reproduce.py --dataset synthetic --config tiny --seeds 1 --epochs 1 \
        --max-train-rows 2000 --variants deepfm,loopctr_L0,loopctr_L1 --out-root /tmp/repro --tag smoke

Rebuild the reports from finished cells without training: add --report-only.
`python benchmarks/reproduce.py --help` lists every option.
"""

from __future__ import annotations

import sys

from adaptive_loop.reproduce.runner import main

if __name__ == "__main__":
    sys.exit(main())
