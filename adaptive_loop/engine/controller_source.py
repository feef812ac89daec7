"""Where the engine's controller comes from: a saved controller folder, or a name fitted on a trace.

    controller = resolve_controller("runs/frappe/confidence")              # saved folder
    controller = resolve_controller("confidence", params={"criterion": "entropy"},
                                    calibration_trace="runs/frappe/trace_valid.parquet",
                                    budget_depth=1.0)                         # fit + calibrate

A saved folder is what `controllers.persistence.save_controller` writes (`controller.json`
with the registry name, the constructor parameters, K, the calibration and the fitted state
- plain JSON plus model files for learned controllers, never a pickle). A name is made with
`make_controller(name, **params)`, fitted on the calibration trace and, when a budget is
given (`budget` in FLOPs/sample or `budget_depth` as a fixed depth, possibly fractional),
calibrated to it there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adaptive_loop.cost import CostModel
from adaptive_loop.errors import ConfigError
from controllers.base import Controller


@dataclass(frozen=True)
class ControllerOrigin:
    """How a controller was obtained (for reports)."""

    kind: str  # "saved" or "fitted"
    source: str
    budget: float | None = None
    trace_flops: tuple[float, float, float] | None = None  # (entry, loop, exit) of the calibration trace


def resolve_controller(
    spec: str | Path,
    params: dict[str, Any] | None = None,
    calibration_trace: str | Path | None = None,
    budget: float | None = None,
    budget_depth: float | None = None,
) -> tuple[Controller, ControllerOrigin]:
    """A fitted controller from a saved folder or from a registry name (see the module docstring)."""
    from controllers.persistence import CONTROLLER_FILE, load_controller

    path = Path(spec)
    if path.is_dir() or path.name == CONTROLLER_FILE:
        folder = path if path.is_dir() else path.parent
        if params or calibration_trace is not None or budget is not None or budget_depth is not None:
            raise ConfigError(
                f"{folder} is a saved controller: it is already fitted and calibrated, so --param, "
                f"--calibration-trace and --budget/--budget-depth do not apply"
            )
        return load_controller(folder), ControllerOrigin("saved", str(folder))
    from controllers.registry import available_controllers, make_controller

    name = str(spec)
    if name not in available_controllers():
        raise ConfigError(
            f"--controller {name!r} is neither a saved controller folder (with {CONTROLLER_FILE}) nor a controller "
            f"name; names: {', '.join(available_controllers())}"
        )
    if calibration_trace is None:
        raise ConfigError(
            f"controller {name!r} must be fitted: pass --calibration-trace (a validation trace of the same run, "
            f"written with `adaptive-loop trace`) or a saved controller folder"
        )
    if budget is not None and budget_depth is not None:
        raise ConfigError("give either --budget or --budget-depth, not both")
    from adaptive_loop.trace import load_trace

    trace = load_trace(calibration_trace)
    controller = make_controller(name, **(params or {}))
    controller.fit(trace)
    target = budget
    if budget_depth is not None:
        target = float(CostModel.from_trace(trace).fixed_depth(float(budget_depth)))
    if target is not None:
        controller.calibrate(trace, float(target))
    meta = trace.meta
    flops = (float(meta.flops_entry), float(meta.flops_loop), float(meta.flops_exit))
    return controller, ControllerOrigin("fitted", str(calibration_trace), target, flops)


def check_trace_matches_model(model: Any, trace_flops: tuple[float, float, float] | None) -> None:
    """Raise `ConfigError` when the calibration trace was written by a model with other FLOPs.

    A controller calibrated on another model's trace would meet its budget only by accident.
    """
    if trace_flops is None:
        return
    f = model.flops()
    mine = (float(f.entry), float(f.loop), float(f.exit))
    if any(abs(a - b) > 1e-6 * max(abs(a), 1.0) for a, b in zip(mine, trace_flops)):
        raise ConfigError(
            f"the calibration trace was written by a model with FLOPs (entry, loop, exit) = {trace_flops}, but the "
            f"scored model has {mine}: trace the same run (`adaptive-loop trace --run ...`) and calibrate on that"
        )
