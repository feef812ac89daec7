"""Checkpoints and resuming: the run directory a trainer writes and what a resume must match.

Run directory layout (all files written atomically):
    config.yaml         the resolved run config
    spec.json           the encoded feature layout the model was built for
    encoder.json        fitted encoders (reused to score new data)
    checkpoints/last.pt after every epoch (model, optimiser, LR schedule, RNG, history)
    checkpoints/best.pt at the best validation monitor so far
    history.json        per-epoch losses and validation metrics

A checkpoint holds only tensors and plain values (`adaptive_loop.io.save_checkpoint`, loaded
with `weights_only=True`); what it holds is written by `Trainer._checkpoint_payload` and put
back by `Trainer._restore`, which checks it here first (`check_resumable`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from adaptive_loop.config import RunConfig, config_from_dict, config_to_yaml
from adaptive_loop.errors import CheckpointError, ConfigError
from adaptive_loop.io import write_json, write_text

CHECKPOINT_FORMAT = 1


def write_run_files(run_dir: Path, config: RunConfig, data: Any) -> None:
    """Write `config.yaml`, `spec.json` and `encoder.json` of a new run (`data`: prepared or streamed data)."""
    write_text(run_dir / "config.yaml", config_to_yaml(config))
    write_json(run_dir / "spec.json", data.spec.to_dict())
    data.encoder.save(run_dir / "encoder.json")


def check_resumable(payload: dict[str, Any], config: RunConfig, source: Path) -> None:
    """Raise `CheckpointError` unless `payload` (a `last.pt`) can continue a run of `config`."""
    if payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{source}: unsupported checkpoint format {payload.get('format')!r}")
    saved = with_current_defaults(payload.get("config", {}))
    differences = config_differences(saved, config.to_dict(), RESUME_MUST_MATCH)
    if differences:
        raise CheckpointError(
            f"{source} was written for another config ({'; '.join(differences[:3])}"
            f"{'; ...' if len(differences) > 3 else ''}); resume with the run's own config.yaml "
            f"(only train.epochs, train.patience and other train.* keys may change) or start a new run directory"
        )


# Config sections a resumed run must share with its checkpoint: other weights, other data or
# another seed (batch order) would silently continue a different experiment.
RESUME_MUST_MATCH = ("seed", "data", "model")


def with_current_defaults(saved: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's config with keys added since it was written set to their defaults.

    So a run checkpointed before a new option existed still resumes, as long as the option
    keeps its default; keys of other models' configs (saved before each model had its own)
    are dropped. A config that no longer parses is compared as saved.
    """
    try:
        return config_from_dict(saved, saved_run=True).to_dict()
    except ConfigError:
        return saved


def config_differences(old: dict[str, Any], new: dict[str, Any], sections: tuple[str, ...]) -> list[str]:
    """Dotted keys under `sections` whose values differ, as 'key: old -> new' strings."""
    out: list[str] = []

    def walk(a: Any, b: Any, key: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b), key=str):
                walk(a.get(k), b.get(k), f"{key}.{k}")
        elif _normalise(a) != _normalise(b):
            out.append(f"{key}: {a!r} in the checkpoint, {b!r} now")

    for section in sections:
        walk(old.get(section), new.get(section), section)
    return out


def _normalise(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    return value


def load_model_state(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load a state dict, turning key or shape mismatches into one clear `CheckpointError`."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or mismatched:
        details = []
        if missing:
            details.append(f"missing {missing[:3]}{'...' if len(missing) > 3 else ''}")
        if unexpected:
            details.append(f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''}")
        if mismatched:
            k = mismatched[0]
            details.append(f"shape of {k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}")
        raise CheckpointError(
            f"checkpoint {source} does not fit this model config ({'; '.join(details)}); it was written for "
            f"another config or dataset"
        )
    model.load_state_dict(state)
