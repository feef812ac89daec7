"""Atomic writes and the safe checkpoint loader."""


import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from adaptive_loop.errors import CheckpointError
from adaptive_loop.io import atomic_open, json_ready, load_checkpoint, save_checkpoint, write_json


def test_failed_write_leaves_the_old_file(tmp_path) -> None:
    target = tmp_path / "report.json"
    write_json(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_open(target) as handle:
            handle.write('{"v": 2, "half')
            raise RuntimeError("killed mid-write")
    assert target.read_text().strip().startswith('{\n  "v": 1')
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no temporary left behind


def _strict_loads(text: str):
    """Parse as a strict JSON reader would: NaN / Infinity are not JSON tokens."""
    def refuse(token: str):
        raise ValueError(f"non-standard JSON token {token}")
    return json.loads(text, parse_constant=refuse)


def test_result_files_are_strict_json_with_null_for_undefined_values(tmp_path) -> None:
    payload = {"auc": float("nan"), "gain": np.float32(np.inf), "depths": np.array([0.5, np.nan]),
               "n": np.int64(3), "ok": np.bool_(True), "pair": (1, -math.inf), "where": Path("runs/x")}
    write_json(tmp_path / "r.json", payload)
    back = _strict_loads((tmp_path / "r.json").read_text())
    assert back == {"auc": None, "gain": None, "depths": [0.5, None], "n": 3, "ok": True, "pair": [1, None],
                    "where": "runs/x"}
    assert back == json_ready(payload)  # what a file is compared against


def test_state_files_can_keep_infinite_values_exactly(tmp_path) -> None:
    write_json(tmp_path / "c.json", {"threshold": [math.inf, 0.25, -math.inf]}, keep_non_finite=True)
    assert json.loads((tmp_path / "c.json").read_text()) == {"threshold": [math.inf, 0.25, -math.inf]}
    with pytest.raises(ValueError, match="Infinity"):
        _strict_loads((tmp_path / "c.json").read_text())


def test_unserialisable_values_are_refused_before_anything_is_written(tmp_path) -> None:
    with pytest.raises(TypeError, match="object"):
        write_json(tmp_path / "bad.json", {"x": object()})
    assert not list(tmp_path.iterdir())


def test_checkpoint_round_trip(tmp_path) -> None:
    payload = {"model_state": {"w": torch.arange(3.0)}, "epoch": 2, "history": [{"auc": 0.7}]}
    save_checkpoint(tmp_path / "c.pt", payload)
    back = load_checkpoint(tmp_path / "c.pt")
    assert torch.equal(back["model_state"]["w"], torch.arange(3.0)) and back["history"][0]["auc"] == 0.7


class _Payload:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > /tmp/adaptive_loop_pwned",))


def test_malicious_pickle_is_refused_not_executed(tmp_path) -> None:
    import os

    marker = "/tmp/adaptive_loop_pwned"
    if os.path.exists(marker):
        os.remove(marker)
    path = tmp_path / "evil.pt"
    torch.save({"model_state": _Payload()}, path)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)
    assert not os.path.exists(marker)


def test_truncated_checkpoint_is_a_clear_error(tmp_path) -> None:
    save_checkpoint(tmp_path / "c.pt", {"model_state": {"w": torch.zeros(1000)}})
    data = (tmp_path / "c.pt").read_bytes()
    (tmp_path / "c.pt").write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        load_checkpoint(tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "none.pt")
