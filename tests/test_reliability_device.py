"""Device handling: one config runs on CUDA when available and on the CPU otherwise.

`resolve_device` is the only place a device is chosen (training, evaluation, tracing and
scoring all reach it through `train.device`); these tests fake CUDA's presence with
monkeypatched `torch.cuda` functions, so they run on machines without a GPU.
"""

from __future__ import annotations

import pytest
import torch

from adaptive_loop.config import load_config
from adaptive_loop.distributed import backend_for
from adaptive_loop.errors import ConfigError
from adaptive_loop.runs import load_run
from adaptive_loop.training import resolve_device


@pytest.fixture
def with_gpus(monkeypatch):
    def fake(count: int) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)

    return fake


def test_auto_picks_cuda_when_available_else_cpu(with_gpus) -> None:
    with_gpus(1)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
    assert resolve_device("cpu") == torch.device("cpu")
    with_gpus(0)
    assert resolve_device("auto") == torch.device("cpu")


def test_impossible_devices_are_config_errors(with_gpus) -> None:
    with_gpus(0)
    with pytest.raises(ConfigError, match="CUDA is not available on this machine"):
        resolve_device("cuda")
    with_gpus(1)
    with pytest.raises(ConfigError, match="only 1 CUDA device\\(s\\) are visible"):
        resolve_device("cuda:3")
    with pytest.raises(ConfigError, match="is not a valid device"):
        resolve_device("gpu")
    with pytest.raises(ConfigError, match="only 'auto', 'cpu', 'cuda'"):
        resolve_device("meta")


def test_each_torchrun_process_gets_its_own_gpu_and_nccl(with_gpus) -> None:
    with_gpus(2)
    assert backend_for(torch.device("cuda"), local_rank=1) == ("nccl", torch.device("cuda", 1))
    assert backend_for(torch.device("cpu"), local_rank=1) == ("gloo", torch.device("cpu"))
    with pytest.raises(ConfigError, match="LOCAL_RANK=2 but only 2 CUDA device"):
        backend_for(torch.device("cuda"), local_rank=2)


def test_evaluation_and_tracing_resolve_the_device_the_same_way(tiny_run, with_gpus) -> None:
    with_gpus(0)
    run = load_run(tiny_run)  # what evaluate_run, trace_run and scoring start from
    assert run.device == torch.device("cpu") and next(run.model.parameters()).device.type == "cpu"
    assert load_config(tiny_run / "config.yaml").train.device == "auto"  # the same config on a GPU machine ...
    with pytest.raises(ConfigError, match="CUDA is not available"):
        load_run(tiny_run, device="cuda")  # ... and an explicit request goes through the same check
