"""Model-side producers of null traces: MC-dropout passes and seed runs on the same split."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from adaptive_loop.errors import ConfigError
from adaptive_loop.model import LoopCTRConfig
from adaptive_loop.model.dropout import Dropout
from adaptive_loop.model.transformer import TransformerLayer
from adaptive_loop.null_traces import MANIFEST, dropout_modules, mc_dropout_mode, mc_dropout_traces, seed_run_traces, train_seed_runs
from adaptive_loop.trace import load_trace


def test_mc_dropout_mode_samples_dropout_only():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 1), nn.Dropout(0.0))
    model.train()
    model(torch.randn(64, 4))  # give BatchNorm non-trivial running statistics
    model.eval()
    x = torch.randn(16, 4)
    with torch.no_grad():
        reference = model(x)
        stats = model[1].running_mean.clone()
        with mc_dropout_mode(model, p=0.3):
            model.eval()  # callers such as predict_depths switch to eval first; dropout must still sample
            a, b = model(x), model(x)
            assert model[2].p == model[4].p == 0.3
        assert not torch.equal(a, b)
        assert torch.equal(model[1].running_mean, stats)  # BatchNorm stayed in eval mode
        assert torch.equal(model(x), reference) and model[2].p == 0.5 and model[4].p == 0.0 and not model.training
    with pytest.raises(ConfigError, match="rate"):
        with mc_dropout_mode(model, p=1.5):
            pass


def test_mc_dropout_traces_of_a_run(tiny_run, tmp_path):
    with pytest.raises(ConfigError, match="no dropout"):
        mc_dropout_traces(tiny_run, tmp_path / "mc", split="valid", n_passes=2)
    paths = mc_dropout_traces(tiny_run, tmp_path / "mc", split="valid", n_passes=2, p=0.3, max_depth=2, seed=1)
    a, b = (load_trace(p) for p in paths)
    assert a.max_depth == 2 and np.array_equal(a.ids, b.ids) and np.array_equal(a.labels, b.labels)
    assert not np.allclose(a.logits, b.logits)
    manifest = json.loads((tmp_path / "mc" / MANIFEST).read_text())
    assert manifest["n_passes"] == 2 and manifest["p_override"] == 0.3 and manifest["split"] == "valid"
    before = [p.stat().st_mtime_ns for p in paths]
    again = mc_dropout_traces(tiny_run, tmp_path / "mc", split="valid", n_passes=2, p=0.3, max_depth=2, seed=1)
    assert [p.stat().st_mtime_ns for p in again] == before  # same settings: reused, not recomputed
    (deterministic,) = seed_run_traces([tiny_run], "valid", max_depth=2)
    plain = load_trace(deterministic)
    assert np.array_equal(plain.ids, a.ids) and a.meta.model_config == plain.meta.model_config


def test_seed_runs_pin_the_data_split(tiny_run, monkeypatch):
    """Siblings change only `seed`; the data seed stays the base run's (training itself is stubbed: it is slow)."""
    import adaptive_loop.training as training

    trained = []

    def fake_train(config, run_dir, progress=None):
        trained.append((config, run_dir))
        (run_dir / "checkpoints").mkdir(parents=True)
        (run_dir / "checkpoints" / "best.pt").write_bytes(b"")

    monkeypatch.setattr(training, "train", fake_train)
    runs = train_seed_runs(tiny_run, 3)
    assert runs[0] == tiny_run and [r.name for r in runs[1:]] == [f"{tiny_run.name}_seed8", f"{tiny_run.name}_seed9"]
    assert [c.seed for c, _ in trained] == [8, 9]
    assert all(c.data.options["seed"] == 7 and c.model == trained[0][0].model for c, _ in trained)
    assert train_seed_runs(tiny_run, 3) == runs and len(trained) == 2  # done runs are reused
    with pytest.raises(ConfigError, match="not a run directory"):
        train_seed_runs(tiny_run / "checkpoints", 2)


def test_mc_dropout_finds_loopctr_dropout_layers():
    """LoopCTR's own (faster) dropout layers are dropout layers for MC dropout: none is missed."""
    layer = Dropout(0.5)
    assert dropout_modules(nn.Sequential(nn.Linear(2, 2), layer)) == [layer]
    block = TransformerLayer(LoopCTRConfig.tiny(dropout=0.1))
    assert block.drop in dropout_modules(block)
