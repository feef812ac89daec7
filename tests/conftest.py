"""Shared fixtures: a tiny trained run that several tests reuse (trained once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

TINY_OVERRIDES = [
    "data.options.n_rows=3000",
    "data.options.n_users=150",
    "data.options.n_items=80",
    "train.epochs=2",
    "train.progress=false",
]


@pytest.fixture(scope="session")
def tiny_config_path() -> Path:
    return Path(__file__).resolve().parents[1] / "adaptive_loop" / "configs" / "tiny.yaml"


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, tiny_config_path: Path) -> Path:
    """A LoopCTR run trained for two epochs on a few thousand synthetic rows."""
    from adaptive_loop.config import load_config
    from adaptive_loop.training import train

    run_dir = tmp_path_factory.mktemp("tiny_run")
    train(load_config(tiny_config_path, TINY_OVERRIDES), run_dir)
    return run_dir
