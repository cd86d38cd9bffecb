"""The audit's records are exactly those saved before its caches and faster metrics existed."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from segrob.audit import audit
from segrob.perturb import PERTURBATIONS

SCRIPT = Path(__file__).parent / "data" / "make_audit_baseline.py"
spec = importlib.util.spec_from_file_location("make_audit_baseline", SCRIPT)
baseline = importlib.util.module_from_spec(spec)
spec.loader.exec_module(baseline)


def _same_but_last_bits(record: dict, expected: dict) -> bool:
    """Equal, but for scores within float32's rounding: what another CPU's MKL code gives."""
    scores = ("metrics", "per_class")
    close = lambda a, b: a == pytest.approx(b, rel=1e-6, abs=1e-9, nan_ok=True)  # noqa: E731
    return ({k: v for k, v in record.items() if k not in scores}
            == {k: v for k, v in expected.items() if k not in scores}
            and close(record["metrics"], expected["metrics"])
            and record["per_class"].keys() == expected["per_class"].keys()
            and all(close(record["per_class"][c], expected["per_class"][c]) for c in record["per_class"]))


@pytest.mark.parametrize("dims", [2, 3])
def test_audit_records_match_the_saved_baseline(dims):
    """Bit for bit, but for the members whose bits depend on the CPU (``cpu_dependent_bits``):
    the baseline was saved on one machine, and their records may differ on another in the last
    digits of the metrics (seen: ECE and entropy within 1e-7)."""
    report = audit(baseline.model_path(dims), baseline.baseline_data(dims), baseline.SETUPS[dims][2])
    saved = json.loads(baseline.records_path(dims).read_text())
    records = json.loads(json.dumps(report.to_dict()["records"]))
    assert len(records) == len(saved)
    for record, expected in zip(records, saved, strict=True):
        name = record["perturbation"]
        where = (record["case"], name, record["severity"])
        if name != "clean" and PERTURBATIONS[name].cpu_dependent_bits:
            assert _same_but_last_bits(record, expected), where
        else:
            assert record == expected, where


def test_whole_volume_inference_runs_each_volume_in_one_pass():
    from dataclasses import replace

    options = replace(baseline.SETUPS[3][2], window=None, suite="clean")
    report = audit(baseline.model_path(3), baseline.baseline_data(3), replace(options, inference="whole"))
    windowed = audit(baseline.model_path(3), baseline.baseline_data(3), options)
    assert report.settings["inference"]["window"] is None and report.settings["inference_mode"] == "whole"
    assert windowed.settings["inference"]["window"] == [16, 16, 16]
    assert 0.0 < report.summary.clean.mean("dice") <= 1.0
    assert report.records != windowed.records  # a different tiling: other logits, other scores


def test_the_cuda_provider_audit_scores_what_the_cpu_audit_scores(cuda_provider):
    from dataclasses import replace

    options = replace(baseline.SETUPS[2][2], device="cuda", threads=None)
    report = audit(baseline.model_path(2), baseline.baseline_data(2), options)
    saved = json.loads(baseline.records_path(2).read_text())
    assert report.settings["providers"][0] == "CUDAExecutionProvider"
    for record, expected in zip(report.to_dict()["records"], saved, strict=True):
        assert record["metrics"]["dice"] == pytest.approx(expected["metrics"]["dice"], abs=1e-3)
