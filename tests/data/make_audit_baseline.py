"""Regenerate the audit baseline: two tiny trained models and the records of their audits.

Run from the repository root: ``.venv/bin/python tests/data/make_audit_baseline.py``. The committed
files were written by the code before the audit's caches and faster metrics, so
``tests/test_audit_baseline.py`` checks that those changed no record: every metric of every cell
of a 2D audit (every member of the ``all`` suite, geometric ones included) and of a 3D audit
(sliding window).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import torch

from segrob.audit import AuditOptions, audit
from segrob.audit.data_source import resolve_audit_data
from segrob.data.synth import SynthConfig, write_synthetic
from segrob.training import TrainConfig, load_run, train

HERE = Path(__file__).parent
# (dims, image size, cases, audit options)
SETUPS = {
    2: (48, 3, AuditOptions(suite="all", batch_size=8, device="cpu", threads=1)),
    3: (24, 2, AuditOptions(suite="all", batch_size=2, device="cpu", threads=1, window=(16, 16, 16))),
}


def model_path(dims: int) -> Path:
    return HERE / f"audit_baseline_{dims}d.onnx"


def records_path(dims: int) -> Path:
    return HERE / f"audit_baseline_{dims}d_records.json"


def baseline_data(dims: int):
    size, n, _ = SETUPS[dims]
    return resolve_audit_data("synth:medium", n=n, size=size, spatial_dims=dims)


def make_model(dims: int, work: Path) -> None:
    from segrob.onnx.export import ExportOptions, export_model

    size = SETUPS[dims][0]
    data = work / f"train{dims}d"
    write_synthetic(SynthConfig(dims=dims, n=8, size=size, blend=0.5, seed=1), data)
    run = work / f"run{dims}d"
    train(TrainConfig(data=str(data), out=str(run), arch="unet", epochs=60 if dims == 2 else 15, lr=3e-3,
                      seed=0, options={"channels": (4, 8)}, patch_size=None if dims == 2 else 16,
                      device="cpu", threads=1))
    model, config = load_run(run)
    export_model(model, model_path(dims), config=config.to_dict(), options=ExportOptions(overwrite=True))


def main() -> None:
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        for dims in SETUPS:
            if "--records-only" not in sys.argv:
                make_model(dims, Path(tmp))
            report = audit(model_path(dims), baseline_data(dims), SETUPS[dims][2])
            records_path(dims).write_text(json.dumps(report.to_dict()["records"], indent=1) + "\n")
            print(dims, "D clean Dice", report.summary.clean.mean("dice"), len(report.records), "records")


if __name__ == "__main__":
    main()
