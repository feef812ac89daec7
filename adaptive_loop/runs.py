"""Loading a finished run directory back: config, feature spec, encoder, model weights, splits.

Evaluation, tracing and scoring all start from a run directory written by the trainer; this
module is the one place that knows its layout and checks that the pieces fit together, and
re-encodes the run's own splits (`load_split`) exactly as in training.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from adaptive_loop.config import RunConfig, load_config
from adaptive_loop.data.batch import EncodedData
from adaptive_loop.data.datasets.base import SPLITS
from adaptive_loop.data.encoders import FeatureEncoder
from adaptive_loop.data.pipeline import prepare_data, uses_streaming
from adaptive_loop.data.spec import FeatureSpec
from adaptive_loop.data.streaming import ParquetSplit
from adaptive_loop.errors import CheckpointError, ConfigError
from adaptive_loop.io import load_checkpoint
from adaptive_loop.model import build_model
from adaptive_loop.training import load_model_state, resolve_device


@dataclass
class LoadedRun:
    """A trained model with everything needed to encode data for it."""

    run_dir: Path
    config: RunConfig
    spec: FeatureSpec
    model: torch.nn.Module
    checkpoint: Path
    device: torch.device

    @property
    def encoder_path(self) -> Path:
        return self.run_dir / "encoder.json"


def load_run(run_dir: str | Path, checkpoint: str = "best", device: str | None = None) -> LoadedRun:
    """Load `run_dir` with its `best` (default) or `last` checkpoint, or a checkpoint file path."""
    root = Path(run_dir)
    if not root.is_dir():
        raise ConfigError(f"run directory {root} does not exist (train one with `adaptive-loop train`)")
    config_path = root / "config.yaml"
    spec_path = root / "spec.json"
    for required in (config_path, spec_path):
        if not required.is_file():
            raise ConfigError(f"{root} is not a complete run directory: {required.name} is missing")
    config = load_config(config_path, saved_run=True)
    try:
        spec = FeatureSpec.from_dict(json.loads(spec_path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError, AttributeError, KeyError) as exc:
        raise ConfigError(
            f"{spec_path} is not a valid feature spec ({type(exc).__name__}: {exc}); restore it from the run "
            "that wrote the checkpoint or train again"
        ) from None
    ckpt_path = Path(checkpoint) if checkpoint not in ("best", "last") else root / "checkpoints" / f"{checkpoint}.pt"
    payload = load_checkpoint(ckpt_path)
    if "model_state" not in payload:
        raise CheckpointError(f"checkpoint {ckpt_path} holds no model weights")
    torch.set_num_threads(max(1, config.train.num_threads))
    target = resolve_device(device or config.train.device)
    torch.manual_seed(config.seed)
    model = build_model(config.model, spec)
    load_model_state(model, payload["model_state"], str(ckpt_path))
    model.to(target).eval()
    return LoadedRun(run_dir=root, config=config, spec=spec, model=model, checkpoint=ckpt_path, device=target)


def load_split(run: LoadedRun, split: str, show_progress: bool = False) -> EncodedData:
    """Encode one split of the run's dataset exactly as in training (same seed, same encoders).

    A streamed run's split is read with the run's saved encoder and gathered in memory
    (evaluation and traces need every row's logits; for data too large for that, score
    with `adaptive_loop.data.streaming.iter_encoded_batches`).
    """
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    encoder = None
    if uses_streaming(run.config.data) and run.encoder_path.is_file():
        encoder = FeatureEncoder.load(run.encoder_path)
    prepared = prepare_data(run.config.data, seed=run.config.seed, show_progress=show_progress, encoder=encoder)
    data = getattr(prepared, split)
    return data.to_encoded() if isinstance(data, ParquetSplit) else data
