"""The small helpers every part shares: strict-JSON values, file hashes, versions, error lines."""

from __future__ import annotations

import hashlib
import json
import platform

import numpy as np
import torch

from segrob import __version__
from segrob.errors import first_line
from segrob.io_utils import file_sha256, json_safe
from segrob.provenance import package_versions


def test_json_safe_turns_non_finite_and_numpy_values_into_strict_json():
    value = {
        "nan": float("nan"), "inf": float("inf"), "low": -float("inf"), "ok": 0.25,
        1: (np.float32("nan"), np.float64(2.5), np.int64(3)),
        "array": np.array([[1.0, np.nan], [np.inf, 4.0]]),
        "tensor": torch.tensor([0.5, float("nan")]),
        "flags": [True, None, "text"],
    }
    safe = json_safe(value)
    assert safe == {
        "nan": None, "inf": None, "low": None, "ok": 0.25,
        "1": [None, 2.5, 3],
        "array": [[1.0, None], [None, 4.0]],
        "tensor": [0.5, None],
        "flags": [True, None, "text"],
    }
    json.dumps(safe, allow_nan=False)  # raises on any NaN left behind


def test_first_line_keeps_the_first_line_names_an_empty_error_and_cuts_long_ones():
    assert first_line(RuntimeError("\n  bad input\nTraceback detail\nmore")) == "bad input"
    assert first_line(ValueError("")) == "ValueError"
    assert first_line(ValueError("short"), 10) == "short"
    cut = first_line(OSError("x" * 50 + "\nsecond"), 20)
    assert cut == "x" * 17 + "..." and len(cut) == 20


def test_file_sha256_hashes_every_block(tmp_path):
    data = bytes(range(256)) * 8192 + b"tail"  # over two 1 MiB blocks
    path = tmp_path / "model.onnx"
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()
    assert file_sha256(str(path)) == hashlib.sha256(data).hexdigest()


def test_package_versions_lists_segrob_first_then_the_packages_in_order():
    found = package_versions("torch", "numpy", "python")
    assert list(found) == ["segrob", "torch", "numpy", "python"]
    assert found == {"segrob": __version__, "torch": torch.__version__,
                     "numpy": np.__version__, "python": platform.python_version()}
