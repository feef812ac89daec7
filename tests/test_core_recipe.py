"""Training recipe: optimiser choice, FuxiCTR-style L2 penalties, LR cut on plateau, depth loss
weights, batch-norm towers, and the refusal of a validation split whose AUC is undefined."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from adaptive_loop.config import TrainConfig, load_config
from adaptive_loop.data.pipeline import prepare_data
from adaptive_loop.errors import ConfigError, DataError
from adaptive_loop.model import LoopCTRConfig, build_model, tiny_config
from adaptive_loop.model.api import FlopsBreakdown
from adaptive_loop.model.dropout import Dropout
from adaptive_loop.model.layers import MLP
from adaptive_loop.training import Trainer, process_supervised_loss, train
from adaptive_loop.training.optim import PlateauSchedule, build_optimizer, l2_penalty, split_parameters
from adaptive_loop.training.per_depth import UndefinedAUCWarning, per_depth_metrics

from conftest import TINY_OVERRIDES


@pytest.fixture(scope="module")
def tiny(tiny_config_path):
    config = load_config(tiny_config_path, TINY_OVERRIDES + ["data.options.n_rows=1200", "train.num_threads=1"])
    return config, prepare_data(config.data, seed=config.seed)


def _with(config, **train_fields):
    return dataclasses.replace(config, train=dataclasses.replace(config.train, **train_fields))


def _model(data, name: str, **model_fields) -> nn.Module:
    torch.manual_seed(0)
    return build_model(tiny_config(name, **model_fields), data.spec)


# ----------------------------------------------------------------- parameters and penalties
def test_deepfm_embeddings_include_first_order_weights_and_nothing_dense(tiny) -> None:
    _, data = tiny
    model = _model(data, name="deepfm", train_loops=0)
    split = split_parameters(model)
    assert any(n.startswith("first_order.") for n in split.embedding_names)
    assert any(n.startswith("fields.embeddings.") for n in split.embedding_names)
    assert not any(n.startswith("deep.") for n in split.embedding_names)
    n_all = sum(1 for p in model.parameters() if p.requires_grad)
    assert len(split.embedding) + len(split.dense) == n_all


def test_loopctr_embeddings_are_the_tokenizer_tables_only(tiny) -> None:
    _, data = tiny
    split = split_parameters(_model(data, name="loopctr", train_loops=2))
    assert split.embedding_names and all(n.startswith("entry.tokenizer.embeddings.tables.") for n in split.embedding_names)


def test_l2_penalty_is_half_lambda_squared_norm_with_gradient_lambda_times_weights(tiny) -> None:
    _, data = tiny
    model = _model(data, name="dcnv2", train_loops=0)
    split = split_parameters(model)
    assert l2_penalty(split, 0.0, 0.0) is None
    penalty = l2_penalty(split, 0.05, 0.0)
    expected = 0.025 * sum(float((p.detach().double() ** 2).sum()) for p in split.embedding)
    assert float(penalty.detach()) == pytest.approx(expected, rel=1e-5)
    penalty.backward()
    for p in split.embedding:
        torch.testing.assert_close(p.grad, 0.05 * p.detach())
    assert all(p.grad is None for p in split.dense)
    both = l2_penalty(split, 0.05, 0.01)
    dense = 0.005 * sum(float((p.detach().double() ** 2).sum()) for p in split.dense)
    assert float(both.detach()) == pytest.approx(expected + dense, rel=1e-5)


def test_optimizer_choice() -> None:
    params = [nn.Parameter(torch.zeros(3))]
    assert type(build_optimizer(params, TrainConfig(optimizer="adam"))) is torch.optim.Adam
    adamw = build_optimizer(params, TrainConfig(optimizer="adamw", lr=2e-3, weight_decay=0.01))
    assert type(adamw) is torch.optim.AdamW
    assert (adamw.param_groups[0]["lr"], adamw.param_groups[0]["weight_decay"]) == (2e-3, 0.01)
    with pytest.raises(ConfigError, match="optimizer"):
        TrainConfig(optimizer="sgd")


# ----------------------------------------------------------------- schedule
def test_plateau_schedule_cuts_by_factor_down_to_the_floor_only_without_a_gain() -> None:
    opt = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=1e-3)
    schedule = PlateauSchedule("plateau", factor=0.1, min_lr=5e-6)
    assert not schedule.after_epoch(opt, improved=True) and opt.param_groups[0]["lr"] == 1e-3
    lrs = []
    for _ in range(4):
        assert schedule.after_epoch(opt, improved=False)
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs == pytest.approx([1e-4, 1e-5, 5e-6, 5e-6])
    assert schedule.state_dict()["cuts"] == 4
    constant = PlateauSchedule("constant")
    assert not constant.after_epoch(opt, improved=False)


def test_plateau_needs_patience_to_use_the_reduced_rate() -> None:
    with pytest.raises(ConfigError, match="patience"):
        TrainConfig(lr_schedule="plateau", patience=1)
    with pytest.raises(ConfigError, match="lr_factor"):
        TrainConfig(lr_schedule="plateau", lr_factor=1.0)


def test_training_cuts_the_lr_after_each_epoch_without_gain_and_keeps_going(tiny, tmp_path) -> None:
    config, data = tiny
    # min_delta = 1 makes every epoch after the first one "without a gain"
    config = _with(config, epochs=5, patience=3, min_delta=1.0, lr=1e-3, lr_schedule="plateau", min_lr=2e-5,
                   optimizer="adam", embedding_l2=0.01)
    result = train(config, tmp_path / "run", data=data)
    assert [r.lr for r in result.history] == pytest.approx([1e-3, 1e-3, 1e-4, 2e-5])  # cut after epochs 2 and 3, floored at min_lr
    assert result.stopped_early and result.best_epoch == 0
    assert all(r.train_penalty > 0 for r in result.history)


# ----------------------------------------------------------------- loss weights across depths
def test_depth_loss_weights_give_a_weighted_mean_of_the_per_depth_bce() -> None:
    logits = torch.tensor([[0.0, 2.0, -1.0], [1.0, -1.0, 0.5]])
    labels = torch.tensor([1.0, 0.0])
    per = nn.functional.binary_cross_entropy_with_logits(logits, labels[:, None].expand(-1, 3), reduction="none").mean(0)
    weights = torch.tensor([1.0, 0.0, 3.0])
    _, bce = process_supervised_loss(logits, labels, torch.tensor(0.0), 0.0, weights)
    assert float(bce) == pytest.approx(float((per[0] + 3 * per[2]) / 4))
    _, uniform = process_supervised_loss(logits, labels, torch.tensor(0.0), 0.0, torch.ones(3))
    assert float(uniform) == pytest.approx(float(per.mean()))


def test_depth_loss_weights_must_match_the_trained_depths(tiny, tmp_path) -> None:
    config, data = tiny
    with pytest.raises(ConfigError, match="one weight per depth"):
        Trainer(_with(config, depth_loss_weights=(1.0, 1.0)), data, tmp_path / "run", progress=False)
    with pytest.raises(ConfigError, match="positive sum"):
        TrainConfig(depth_loss_weights=(0.0, 0.0))


# ----------------------------------------------------------------- model options
def test_mlp_hidden_layers_are_linear_batchnorm_relu_dropout_with_xavier_init() -> None:
    torch.manual_seed(0)
    mlp = MLP(12, (8, 6), 1, dropout=0.3, batch_norm=True, init="xavier_normal")
    kinds = [type(m).__name__ for m in mlp.net]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Dropout", "Linear", "BatchNorm1d", "ReLU", "Dropout", "Linear"]
    assert all(float(m.bias.detach().abs().sum()) == 0.0 for m in mlp.net if isinstance(m, nn.Linear))
    plain = MLP(12, (8,), 1)
    assert [type(m).__name__ for m in plain.net] == ["Linear", "ReLU", "Linear"]


def test_per_site_dropout_falls_back_to_model_dropout(tiny) -> None:
    _, data = tiny
    cfg = LoopCTRConfig.tiny(dropout=0.1, tower_dropout=0.4)
    # attention weights do not inherit model.dropout: that would cost the fused attention kernel
    assert (cfg.attention_dropout_rate, cfg.sublayer_dropout_rate, cfg.tower_dropout_rate) == (0.0, 0.1, 0.4)
    model = build_model(dataclasses.replace(cfg, batch_norm=True, attention_dropout=0.3), data.spec)
    tower = model.exit_block.tower.net
    assert any(isinstance(m, nn.BatchNorm1d) for m in tower)
    assert [m.p for m in tower if isinstance(m, Dropout)] == [0.4]
    assert model.loops[0].layer.attn.dropout == 0.3 and model.loops[0].layer.drop.p == 0.1
    with pytest.raises(ConfigError, match="tower_dropout"):
        LoopCTRConfig.tiny(tower_dropout=1.0)
    # a baseline's model.dropout is its tower dropout
    dcn = build_model(tiny_config("dcnv2", batch_norm=True, dropout=0.4, dcn_structure="parallel"), data.spec)
    assert [type(m).__name__ for m in dcn.deep] == ["Linear", "BatchNorm1d", "ReLU", "Dropout"]
    assert [m.p for m in dcn.deep if isinstance(m, Dropout)] == [0.4]


def test_batch_norm_refuses_a_batch_size_leaving_one_row(tiny, tmp_path) -> None:
    config, data = tiny
    n = len(data.train)
    bad = dataclasses.replace(_with(config, batch_size=n - 1),
                              model=dataclasses.replace(config.model, batch_norm=True))
    with pytest.raises(ConfigError, match="last batch of 1 row"):
        Trainer(bad, data, tmp_path / "run", progress=False)


# ----------------------------------------------------------------- undefined AUC
def test_single_class_validation_split_is_one_clear_error_before_training(tiny, tmp_path) -> None:
    config, data = tiny
    valid = dataclasses.replace(data.valid, labels=np.ones_like(data.valid.labels))
    one_class = dataclasses.replace(data, valid=valid)
    with pytest.raises(DataError, match="single class .* AUC is undefined.*logloss@L"):
        train(config, tmp_path / "run", data=one_class)
    assert not (tmp_path / "run" / "checkpoints" / "best.pt").exists()
    # monitoring logloss keeps training defined
    result = train(_with(config, monitor="logloss@L", epochs=1), tmp_path / "logloss", data=one_class)
    assert np.isfinite(result.best_monitor)


def test_evaluating_a_single_class_split_warns_and_names_it() -> None:
    labels = np.zeros(5)
    logits = np.zeros((5, 1))
    with pytest.warns(UndefinedAUCWarning, match="test split has a single class"):
        rows = per_depth_metrics(labels, logits, FlopsBreakdown(0.0, 0.0, 0.0, 0.0), split="test")
    assert np.isnan(rows[0].auc) and np.isfinite(rows[0].logloss)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        per_depth_metrics(np.array([0.0, 1.0]), np.zeros((2, 1)), FlopsBreakdown(0.0, 0.0, 0.0, 0.0), split="test")


def test_per_field_tokens_ignore_the_schema_groups() -> None:
    from adaptive_loop.model.testing import random_batch, toy_spec

    spec = toy_spec(n_categorical=4, n_numeric=2, history=0, pooled=True, token_groups=(("c0", "c1", "c2"),))
    grouped = build_model(LoopCTRConfig.tiny(), spec)
    per_field = build_model(LoopCTRConfig.tiny(token_groups="per_field"), spec)
    # schema: [c0 c1 c2] | item | numerics | genre ; per field: c0 | c1 | c2 | item | numerics | genre
    assert grouped.entry.tokenizer.n_glb == 4 and per_field.entry.tokenizer.n_glb == 6
    out = per_field(random_batch(spec, 5), depth=1)
    assert out.logits.shape == (5, 2)
    with pytest.raises(ConfigError, match="token_groups"):
        LoopCTRConfig.tiny(token_groups="grouped")


def test_oov_dropout_replaces_a_share_of_one_fields_ids_and_keeps_padding() -> None:
    from adaptive_loop.training.oov_dropout import OOVDropout
    from adaptive_loop.data.spec import OOV_ID, PAD_ID
    from adaptive_loop.model.testing import random_batch, toy_spec

    spec = toy_spec(n_categorical=3, history=0)
    batch = random_batch(spec, 4000)
    batch.cat[:10, 0] = PAD_ID
    torch.manual_seed(0)
    out = OOVDropout({"c0": 0.5}, spec)(batch)
    dropped = (out.cat[:, 0] == OOV_ID) & (batch.cat[:, 0] != OOV_ID)
    assert 0.45 < float(dropped.float().mean()) < 0.55
    assert bool((out.cat[:10, 0] == PAD_ID).all())
    torch.testing.assert_close(out.cat[:, 1:], batch.cat[:, 1:])  # other fields untouched
    assert not bool((batch.cat[10:, 0] == OOV_ID).all())  # the input batch is not modified
    assert not OOVDropout({}, spec) and OOVDropout({}, spec)(batch) is batch
    with pytest.raises(ConfigError, match="not a categorical field"):
        OOVDropout({"nope": 0.1}, spec)
    with pytest.raises(ConfigError, match="probability"):
        TrainConfig(oov_dropout={"c0": 1.5})
