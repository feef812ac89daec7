"""Import a script of `benchmarks/` (not a package) as a module, once per test session."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(stem: str) -> ModuleType:
    """`benchmarks/<stem>.py` as a module, registered in `sys.modules` while it executes.

    The registration matters: dataclasses look their module up by name while the file runs.
    """
    name = f"_benchmark_{stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{stem}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
