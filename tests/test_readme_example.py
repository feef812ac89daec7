"""The README's "How to add a controller" example runs as printed, on traces shaped like the demo's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from _trace_factory import make_trace

import controllers.registry as registry
from adaptive_loop.trace import save_trace

README = Path(__file__).resolve().parents[1] / "README.md"


def _section_code(heading: str) -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, f"expected one python block under '{heading}', found {len(blocks)}"
    return blocks[0]


def test_how_to_add_a_controller_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    code = _section_code("How to add a controller")
    (tmp_path / "runs" / "demo").mkdir(parents=True)
    save_trace(make_trace(2000, max_depth=5, seed=41, split="valid"), tmp_path / "runs/demo/trace_valid.parquet")
    save_trace(make_trace(2000, max_depth=5, seed=42, split="test"), tmp_path / "runs/demo/trace_test.parquet")
    monkeypatch.chdir(tmp_path)
    registry.available_controllers()  # the built-in controllers register themselves before the copy below
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # keep the example's class out of other tests

    namespace: dict = {"__name__": "readme_example"}
    exec(compile(code, str(README), "exec"), namespace)

    out = capsys.readouterr().out
    assert re.search(r"AUC 0\.\d{4} at [\d,]+ FLOPs/sample", out), out
    controller = namespace["controller"]
    assert registry.make_controller("logit_magnitude").__class__ is namespace["LogitMagnitude"]
    budget = namespace["CostModel"].from_trace(namespace["valid"]).fixed_depth(1)
    assert controller.decide(namespace["valid"]).mean_cost <= budget + 1e-6  # calibrated to the depth-1 cost
    assert 0 < namespace["report"].mean_cost
