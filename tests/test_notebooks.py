"""The notebooks in notebooks/ run top to bottom on a fresh kernel, and the committed copies hold real outputs.

Each notebook is copied into a temporary folder and executed there with nbclient in small
mode (`ADAPTIVE_LOOP_NOTEBOOK_SMALL=1`: a few thousand rows, tiny models), writing its files
under the temporary folder (`ADAPTIVE_LOOP_NOTEBOOK_OUT`). A run passes when no cell raised,
at least one figure was drawn and the files the notebook promises exist. Separately, the
committed copies must carry the outputs of a default-size run (the figures a reader sees on
the web) and stay small enough to view.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="notebook tests need the dev extra (nbformat, nbclient, ipykernel)")
nbclient = pytest.importorskip("nbclient", reason="notebook tests need the dev extra (nbformat, nbclient, ipykernel)")

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CELL_TIMEOUT = 180  # seconds one cell may take in small mode (the slowest takes a few seconds)
MAX_BYTES = 1_500_000  # a committed notebook must stay viewable on the web

# Files (relative to the notebook's output folder) each notebook promises to write in small mode.
EXPECTED_FILES = {
    "01_quickstart": ["run/checkpoints/best.pt", "run/per_depth_test.json", "run/trace_valid.parquet",
                      "run/trace_test.parquet"],
    "02_oracle_depth": ["run/checkpoints/best.pt", "run/trace_valid.parquet", "run/trace_test.parquet"],
    "03_controllers": ["run/trace_valid.parquet", "auc_vs_flops.png", "tuning/study.db"],
    "04_bring_your_own_data": ["clicks.csv", "config.yaml", "run/encoder.json", "controller/controller.json",
                               "new_rows.csv", "scores.csv"],
    "05_depth_routing": ["ps/checkpoints/best.pt", "routed/checkpoints/best.pt", "router/controller.json"],
}


def _outputs(notebook) -> list:
    return [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]


def _errors(notebook) -> list[str]:
    return [f"{o.get('ename')}: {o.get('evalue')}" for o in _outputs(notebook) if o.get("output_type") == "error"]


def _images(notebook) -> int:
    return sum("image/png" in o.get("data", {}) for o in _outputs(notebook))


def _text(notebook) -> str:
    parts = []
    for o in _outputs(notebook):
        if o.get("output_type") == "stream":
            parts.append(o.get("text", ""))
        elif "text/plain" in o.get("data", {}):
            parts.append(o["data"]["text/plain"])
    return "\n".join(parts)


def test_notebooks_exist() -> None:
    assert [p.stem for p in NOTEBOOKS] == sorted(EXPECTED_FILES), "every notebook needs an EXPECTED_FILES entry"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_small_mode(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    monkeypatch.setenv("ADAPTIVE_LOOP_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("ADAPTIVE_LOOP_NOTEBOOK_OUT", str(out))
    copy = tmp_path / path.name
    shutil.copyfile(path, copy)
    notebook = nbformat.read(copy, as_version=4)
    for cell in notebook.cells:  # start from a clean copy: only this run's outputs count
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    client = nbclient.NotebookClient(notebook, timeout=CELL_TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    started = time.perf_counter()
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as exc:
        pytest.fail(f"{path.name} failed in small mode:\n{str(exc)[-3000:]}")
    seconds = time.perf_counter() - started

    assert not _errors(notebook)
    assert _images(notebook) >= 1, f"{path.name} drew no figure"
    assert "small mode: True" in _text(notebook), "the notebook did not pick up ADAPTIVE_LOOP_NOTEBOOK_SMALL"
    folder = out / path.stem
    missing = [f for f in EXPECTED_FILES[path.stem] if not (folder / f).is_file()]
    assert not missing, f"{path.name} did not write {missing} under {folder}"
    assert not any(tmp_path.glob("runs")), "the notebook wrote outside its output folder"
    print(f"{path.name}: {seconds:.1f} s in small mode")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_notebook_holds_a_default_run(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), f"{path.name} is not fully executed; run notebooks/execute.py"
    assert not _errors(notebook), f"{path.name} was committed with errors"
    assert _images(notebook) >= 1, f"{path.name} was committed without figures"
    assert "small mode: False" in _text(notebook), f"{path.name} holds a small-mode run; run notebooks/execute.py"
    assert path.stat().st_size < MAX_BYTES, f"{path.name} is {path.stat().st_size:,} bytes; keep it under {MAX_BYTES:,}"
