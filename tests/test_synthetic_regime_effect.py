"""The demo's promise at small scale: LoopCTR trained on the synthetic data uses its loops on the rows that need them.

One short training of the `demo` config (its fixed seed, half the demo's rows, about a minute)
must already show the regime effect the demo is built on: on needed-depth-3 rows deeper
inference ranks better, on needed-depth-0 rows depth 0 is as good as any depth.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from adaptive_loop.config import load_config, resolve_config
from adaptive_loop.data.pipeline import prepare_data
from adaptive_loop.regimes import regime_auc
from adaptive_loop.runs import load_run
from adaptive_loop.training import train
from adaptive_loop.training.per_depth import predict_depths

SMALL = ["data.options.n_rows=40000", "train.progress=false"]  # the demo config: 4 epochs, 1 thread, seed 42


def test_deeper_inference_helps_needed_depth_3_rows_and_not_needed_depth_0_rows(tmp_path: Path) -> None:
    config = load_config(resolve_config("demo"), SMALL)
    data = prepare_data(config.data, seed=config.seed)
    train(config, tmp_path / "run", data=data, progress=False)
    run = load_run(tmp_path / "run")
    logits, _ = predict_depths(run.model, data.test, 3, config.train.eval_batch_size)
    needed = np.asarray(data.test.extras["needed_depth"])
    table = {r.regime: r for r in regime_auc(data.test.labels, logits, needed, data.test.extras["true_prob"])}
    shallow, deep = table[0].depth_auc, table[3].depth_auc
    assert deep[3] > deep[0] + 0.05, deep  # the loops follow the referral path of the rows that need them
    assert shallow[0] > max(shallow) - 0.01, shallow  # rows answered by their own event need no loop
    assert shallow[0] > table[0].bayes_auc - 0.02  # and depth 0 answers them almost perfectly
