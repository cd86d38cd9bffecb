"""`segrob audit` and `segrob report` end to end on a tiny exported model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from segrob_cli.main import app
from typer.testing import CliRunner

from segrob.audit.records import CellRecord, record_line
from segrob.data import write_array
from segrob.data.synth import SynthConfig, write_synthetic
from segrob.report import load_report, validate_report

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A tiny 2D U-Net with segrob metadata (random weights: behaviour, not accuracy, is tested)."""
    import torch

    from segrob.models import create_model
    from segrob.onnx.export import export_model

    root = tmp_path_factory.mktemp("audit")
    torch.manual_seed(0)
    model = create_model("unet", spatial_dims=2, in_channels=1, out_channels=2, channels=(4, 8))
    export_model(model, root / "unet.onnx", config={"normalization": {"method": "zscore"},
                                                     "fbr_range": {"min": 0.1, "max": 0.2}})
    data = root / "data"
    data.mkdir()
    write_synthetic(SynthConfig(dims=2, n=4, size=32, blend=0.1, level="low", seed=2), data)
    return root


def audit(workspace, *extra):
    return invoke("audit", workspace / "unet.onnx", "--data", workspace / "data", "--suite", "texture",
                  *extra)


def test_audit_writes_a_valid_reproducible_report(workspace, tmp_path):
    first = audit(workspace, "--out", tmp_path / "a.json")
    assert first.exit_code == 0, first.output
    assert "texture_speckle" in first.stdout and "rR" in first.stdout
    second = audit(workspace, "--out", tmp_path / "b.json")
    assert second.exit_code == 0
    a = json.loads((tmp_path / "a.json").read_text())
    b = json.loads((tmp_path / "b.json").read_text())
    validate_report(a)
    assert a["summary"] == b["summary"] and a["records"] == b["records"]
    assert a["settings"]["providers"] == ["CPUExecutionProvider"]
    assert len(a["records"]) == 4 * (1 + 2 + 2)
    assert a["model"]["arch"] == "unet" and len(a["model"]["sha256"]) == 64
    assert set(a["timings"]) >= {"inference", "perturbation", "metrics", "total"}
    assert a["summary"]["fbr"]["range"] == {"min": 0.1, "max": 0.2}
    assert not (tmp_path / "a.json.partial.jsonl").exists()
    other_seed = audit(workspace, "--out", tmp_path / "c.json", "--seed", "1")
    c = json.loads((tmp_path / "c.json").read_text())
    assert other_seed.exit_code == 0 and c["records"] != a["records"]


def test_json_to_stdout_is_only_json(workspace):
    result = audit(workspace, "--json")
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert report["kind"] == "segrob-audit" and report["suite"]["name"] == "texture"


def test_out_takes_the_report_and_json_can_come_before_the_model(workspace, tmp_path):
    saved = audit(workspace, "-o", tmp_path / "o.json", "--json")
    assert saved.exit_code == 0, saved.output
    assert json.loads(saved.stdout) == json.loads((tmp_path / "o.json").read_text())
    first = invoke("audit", "--json", workspace / "unet.onnx", "--data", workspace / "data",
                   "--suite", "texture")
    assert first.exit_code == 0 and json.loads(first.stdout)["kind"] == "segrob-audit"
    assert "deprecated" not in first.stderr


def test_deprecated_json_file_still_works_and_warns(workspace, tmp_path):
    to_file = audit(workspace, "--json", tmp_path / "old.json")
    assert to_file.exit_code == 0, to_file.output
    assert json.loads((tmp_path / "old.json").read_text())["kind"] == "segrob-audit"
    assert "texture_speckle" in to_file.stdout
    assert "--json" in to_file.stderr and "deprecated" in to_file.stderr and "--out" in to_file.stderr
    for spelling in (("--json", "-"), ("--json=-",)):
        to_stdout = audit(workspace, *spelling)
        assert to_stdout.exit_code == 0, to_stdout.output
        assert json.loads(to_stdout.stdout)["suite"]["name"] == "texture"
        assert "deprecated" in to_stdout.stderr
    resumed = audit(workspace, "--json", tmp_path / "old.json", "--resume", "--overwrite")
    assert resumed.exit_code == 0 and "deprecated" in resumed.stderr


def test_resume_needs_a_report_file(workspace):
    result = audit(workspace, "--json", "--resume")
    assert result.exit_code == 2 and "--resume needs --out FILE" in result.stderr


def test_fail_under_gates_the_exit_code(workspace):
    passed = audit(workspace, "--fail-under", "dice=0.0,rr=0.0")
    assert passed.exit_code == 0 and "gate passed" in passed.stdout
    failed = audit(workspace, "--fail-under", "dice=1")
    assert failed.exit_code == 1
    assert "gate failed" in failed.stderr and "texture_speckle s2: dice" in failed.stderr
    malformed = audit(workspace, "--fail-under", "dice>0.8")
    assert malformed.exit_code == 2 and "KEY=VALUE" in malformed.stderr
    assert audit(workspace, "--fail-under", "dice=1.01").exit_code == 2  # no Dice reaches it


def test_resume_skips_finished_cells(workspace, tmp_path):
    target = tmp_path / "r.json"
    assert audit(workspace, "--out", target).exit_code == 0
    reference = json.loads(target.read_text())
    # Fake an interruption: a partial file with the first case's cells, a doctored value to see reuse.
    partial = tmp_path / "r.json.partial.jsonl"
    result = audit(workspace, "--out", target, "--resume", "--overwrite")
    assert result.exit_code == 0  # no partial file: resume starts fresh
    records = reference["records"]
    kept = [r for r in records if r["case"] == records[0]["case"]]
    for record in kept:
        record["metrics"]["dice"] = 0.123456
    store_header = _header_from_a_run(workspace, tmp_path)
    lines = [record_line(store_header, CellRecord.from_dict(r)) for r in kept]
    partial.write_text("\n".join([json.dumps(store_header), *lines]) + "\n")
    resumed = audit(workspace, "--out", target, "--resume", "--overwrite")
    assert resumed.exit_code == 0, resumed.output
    again = json.loads(target.read_text())
    dice = [r["metrics"]["dice"] for r in again["records"] if r["case"] == records[0]["case"]]
    assert dice == [0.123456] * len(kept)  # reused, not recomputed
    others = [r for r in again["records"] if r["case"] != records[0]["case"]]
    assert others == [r for r in reference["records"] if r["case"] != records[0]["case"]]
    assert not partial.exists()


def _header_from_a_run(workspace, tmp_path):
    """The partial file's header as the audit writes it (captured from an interrupted run)."""
    import segrob.audit.runner as runner_module

    captured = {}
    original = runner_module.PartialStore

    class Capture(original):
        def __init__(self, path, header):
            captured.update(header)
            super().__init__(path, header)

    runner_module.PartialStore = Capture
    try:
        audit(workspace, "--out", tmp_path / "capture.json")
    finally:
        runner_module.PartialStore = original
    return captured


def test_report_rerenders_and_compares(workspace, tmp_path):
    assert audit(workspace, "--out", tmp_path / "a.json").exit_code == 0
    assert audit(workspace, "--out", tmp_path / "b.json").exit_code == 0
    single = invoke("report", tmp_path / "a.json")
    assert single.exit_code == 0 and "texture_blur_background" in single.stdout
    both = invoke("report", tmp_path / "a.json", tmp_path / "b.json", "--json")
    assert both.exit_code == 0
    comparison = json.loads(both.stdout)
    assert comparison["suite"] == "texture" and len(comparison["models"]) == 2
    assert comparison["dice"][0]["row"] == "clean"
    noise = invoke("audit", workspace / "unet.onnx", "--data", workspace / "data", "--suite", "blur",
                   "--out", tmp_path / "n.json")
    assert noise.exit_code == 0
    refused = invoke("report", tmp_path / "a.json", tmp_path / "n.json")
    assert refused.exit_code == 1 and "suite" in refused.stderr
    load_report(tmp_path / "a.json")


def test_bad_inputs(workspace, tmp_path):
    not_onnx = tmp_path / "model.onnx"
    not_onnx.write_text("hello")
    result = invoke("audit", not_onnx, "--data", workspace / "data")
    assert result.exit_code == 1 and "model.onnx" in result.stderr and "Traceback" not in result.output
    result = audit(workspace, "--suite", "nope")
    assert result.exit_code == 2 and "'--suite'" in result.stderr and "got 'nope'" in result.stderr
    rgb = tmp_path / "rgb"
    write_synthetic(SynthConfig(dims=2, n=2, size=32, seed=1), rgb)
    for name in ("case_0000", "case_0001"):
        image = np.stack([np.ones((32, 32), np.float32)] * 3, axis=-1)
        write_array(rgb / "images" / f"{name}.tif", image, (1.0, 1.0))
    result = invoke("audit", workspace / "unet.onnx", "--data", rgb, "--suite", "texture")
    assert result.exit_code == 1 and "takes 1 channel(s), this case has 3" in result.stderr
    assert not list(tmp_path.glob("*.json"))


def test_unreadable_case_fails_or_is_skipped(workspace, tmp_path):
    broken = tmp_path / "broken"
    write_synthetic(SynthConfig(dims=2, n=3, size=32, seed=3), broken)
    bad = broken / "images" / "case_0001.tif"
    bad.write_bytes(bad.read_bytes()[:64])
    failed = invoke("audit", workspace / "unet.onnx", "--data", broken, "--suite", "texture",
                    "--out", tmp_path / "x.json")
    assert failed.exit_code == 1 and "case_0001.tif" in failed.stderr and "--skip-bad" in failed.stderr
    assert not (tmp_path / "x.json").exists()
    skipped = invoke("audit", workspace / "unet.onnx", "--data", broken, "--suite", "texture",
                     "--skip-bad", "--out", tmp_path / "y.json")
    assert skipped.exit_code == 0, skipped.output
    report = json.loads((tmp_path / "y.json").read_text())
    assert [s["name"] for s in report["skipped_cases"]] == ["case_0001"]
    assert report["summary"]["n_cases"] == 2


def test_fixed_size_model_is_audited_through_a_sliding_window(tmp_path):
    import torch

    from segrob.audit import AuditOptions
    from segrob.audit import audit as run_audit
    from segrob.audit.data_source import resolve_audit_data
    from segrob.models import create_model
    from segrob.onnx.export import export_model

    torch.manual_seed(0)
    model = create_model("unetr", spatial_dims=2, in_channels=1, out_channels=2, img_size=32)
    export_model(model, tmp_path / "unetr.onnx")
    data = resolve_audit_data("synth:low", n=2, size=48, spatial_dims=2)
    report = run_audit(tmp_path / "unetr.onnx", data, AuditOptions(suite="blur"))
    plan = report.settings["inference"]
    assert plan["window"] == [32, 32] and plan["fixed_size"] is True
    assert report.summary.n_cases == 2 and report.summary.clean.mean("dice") is not None
