"""Regenerate ``report_schema_1_0.json``: a tiny deterministic audit saved as a schema 1.0 report.

Run from the repository root: ``.venv/bin/python tests/data/make_report_schema_1_0.py``. The
committed file was written by the code of the commit that added it, so the tests that load it
check that reports saved by that version keep loading, round-tripping and rendering.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from segrob.audit import AuditOptions, audit, parse_bounds
from segrob.audit.data_source import resolve_audit_data
from segrob.data import write_array
from segrob.models import create_model
from segrob.onnx.export import export_model
from segrob.report import save_report

TARGET = Path(__file__).with_name("report_schema_1_0.json")


def write_cases(root: Path) -> None:
    """Three 24x24 cases with two foreground classes (a central box and a corner)."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for index in range(3):
        rng = np.random.default_rng(index)
        image = rng.normal(100.0, 20.0, size=(24, 24)).astype(np.float32)
        label = np.zeros((24, 24), dtype=np.uint8)
        label[6:18, 6:18] = 1
        label[:3, :3] = 2
        image[label == 1] += 40.0
        write_array(root / "images" / f"c{index}.tif", image, (0.5, 0.7))
        write_array(root / "labels" / f"c{index}.tif", label, (0.5, 0.7))


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)
        model = create_model("unet", spatial_dims=2, in_channels=1, out_channels=3, channels=(4, 8))
        export_model(model, "unet.onnx", config={"normalization": {"method": "zscore"},
                                                 "fbr_range": {"min": 0.2, "max": 0.3}})
        write_cases(Path("data"))
        data = resolve_audit_data("data", n=None, size=None, spatial_dims=2)
        options = AuditOptions(suite="texture", device="cpu", bounds=parse_bounds("dice=0.05,rr=0.5"))
        report = audit("unet.onnx", data, options)
    save_report(report, TARGET)
    print(f"wrote {TARGET} ({TARGET.stat().st_size} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
