"""Saving a fitted controller to a folder and loading it back, without pickle.

    save_controller(controller, "runs/frappe/act")      # controller.json + model files
    controller = load_controller("runs/frappe/act")

`controller.json` holds the registry name, the constructor parameters, K, the calibration
result and what the fit produced. Learned controllers write their models beside it through
their own `save_fitted` / `load_fitted` hooks: torch heads with
`adaptive_loop.io.save_checkpoint` (loaded with `weights_only=True`), LightGBM boosters in
LightGBM's text format with a SHA-256. Rule-based controllers store their few fitted
arrays in the JSON. Every file is written atomically; anything unreadable is a
`CheckpointError` naming the file.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from adaptive_loop.errors import CheckpointError, ConfigError
from adaptive_loop.io import write_json
from controllers.base import CalibrationResult, Controller
from controllers.registry import make_controller

CONTROLLER_FILE = "controller.json"
FORMAT = 1


def save_controller(controller: Controller, directory: str | Path) -> Path:
    """Write a fitted controller into `directory`; returns the path of `controller.json`."""
    controller._check_fitted()
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    if hasattr(controller, "save_fitted"):
        fitted = {"kind": "artifacts", "meta": controller.save_fitted(target)}
    else:
        fitted = {"kind": "arrays", "arrays": _fitted_arrays(controller)}
    calibration = getattr(controller, "calibration_", None)
    payload = {
        "format": FORMAT,
        "name": controller.name,
        "params": controller.get_params(deep=False),  # write_json makes tuples and numpy values plain
        "max_depth": int(controller.max_depth_),
        "n_samples_fit": int(getattr(controller, "n_samples_fit_", 0)),
        "calibration": None if calibration is None else asdict(calibration),
        "fitted": fitted,
    }
    return write_json(target / CONTROLLER_FILE, payload, keep_non_finite=True)  # thresholds may be +-inf


def load_controller(directory: str | Path) -> Controller:
    """Rebuild a controller saved with `save_controller` (fitted, with its calibrated knob)."""
    source = Path(directory)
    path = source / CONTROLLER_FILE
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist: {source} is not a saved controller folder")
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc}); save the controller again") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a controller file of format {FORMAT}")
    try:
        params = dict(payload["params"])
        if isinstance(params.get("features"), list):
            params["features"] = tuple(params["features"])
        controller = make_controller(payload["name"], **params)
        controller.max_depth_ = int(payload["max_depth"])
        controller.n_samples_fit_ = int(payload["n_samples_fit"])
        fitted = payload["fitted"]
    except (KeyError, TypeError) as exc:
        raise CheckpointError(f"{path} lacks {exc}; save the controller again") from None
    except ConfigError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    if fitted.get("kind") == "artifacts":
        if not hasattr(controller, "load_fitted"):
            raise CheckpointError(f"{path}: controller {payload['name']!r} cannot load model files")
        controller.load_fitted(source, fitted["meta"])
    else:
        for name, item in fitted.get("arrays", {}).items():
            setattr(controller, name, np.asarray(item["value"], dtype=item["dtype"]) if item["array"] else item["value"])
    if payload.get("calibration"):
        cal = dict(payload["calibration"])
        cal["feasible_range"] = tuple(cal["feasible_range"])
        controller.calibration_ = CalibrationResult(**cal)
    return controller


def _fitted_arrays(controller: Controller) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in vars(controller).items():
        if not name.endswith("_") or name.startswith("_") or name in ("max_depth_", "n_samples_fit_", "calibration_"):
            continue
        if isinstance(value, np.ndarray):
            out[name] = {"array": True, "dtype": str(value.dtype), "value": value.tolist()}
        elif isinstance(value, (int, float, str, bool, np.integer, np.floating)) or value is None:
            out[name] = {"array": False, "dtype": None, "value": value}
        else:
            raise ConfigError(f"{type(controller).__name__}: fitted attribute {name} of type {type(value).__name__} cannot be saved")
    return out
