"""The Python API: ``segrob.audit(model, data, ...)`` on an ONNX file, a torch module or a callable."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import segrob
from segrob.errors import UsageError

CLEAN_METRICS = ("dice", "iou", "hd95", "nsd", "ece", "entropy")


@pytest.fixture(scope="module")
def net_and_export(tmp_path_factory):
    from segrob.models import create_model
    from segrob.onnx.export import export_model

    torch.manual_seed(1)
    net = create_model("unet", spatial_dims=2, in_channels=1, out_channels=3, channels=(4, 8)).eval()
    path = tmp_path_factory.mktemp("api") / "net.onnx"
    export_model(net, path, config={"normalization": {"method": "zscore"}})
    return net, path


def cases(count=3, size=32):
    rng = np.random.default_rng(5)
    out = []
    for _ in range(count):
        label = np.zeros((size, size), dtype=np.uint8)
        corner = rng.integers(0, size // 2, size=2)
        label[corner[0]:corner[0] + 12, corner[1]:corner[1] + 10] = 1
        label[:4, :4] = 2
        out.append((50.0 + 30.0 * label + 5.0 * rng.standard_normal(label.shape), label, (0.8, 0.8)))
    return out


def clean_rows(report) -> list[dict]:
    return [r for r in report.records if r["perturbation"] == "clean"]


def test_a_torch_module_and_a_callable_score_their_onnx_export_the_same(net_and_export):
    net, path = net_and_export
    data = cases()

    def predict(batch):
        with torch.no_grad():
            return net(torch.from_numpy(batch)).numpy()

    by_onnx = segrob.audit(path, data, "texture", device="cpu")
    by_module = segrob.audit(net, data, "texture", device="cpu")
    by_callable = segrob.audit(predict, data, "texture", device="cpu")
    assert by_module.records == by_callable.records  # the same computation, wrapped two ways
    assert by_module.model["path"] == "<torch module UNet>" and by_module.settings["classes"] == [1, 2]
    onnx_rows, module_rows = clean_rows(by_onnx), clean_rows(by_module)
    assert [r["case"] for r in onnx_rows] == [r["case"] for r in module_rows] == ["case_0000", "case_0001",
                                                                                 "case_0002"]
    for onnx_row, module_row in zip(onnx_rows, module_rows, strict=True):
        for metric in CLEAN_METRICS:
            assert module_row["metrics"][metric] == pytest.approx(onnx_row["metrics"][metric], abs=1e-4)
    assert by_module.summary.clean.mean("dice") == pytest.approx(by_onnx.summary.clean.mean("dice"), abs=1e-5)
    # perturbed cells too: every cell draws its own seed, whatever ran the model
    assert [r["params"] for r in by_module.records] == [r["params"] for r in by_onnx.records]


def test_the_report_is_the_one_the_cli_renders_and_saves(net_and_export, tmp_path):
    from segrob.report import load_report, save_report, validate_report

    net, _ = net_and_export
    report = segrob.audit(net, "synth:low", "texture", n=2, size=32, device="cpu", fail_under="dice=0.99")
    validate_report(report.to_dict())
    assert report.gates is not None and report.gates["passed"] is False
    save_report(report, tmp_path / "r.json")
    assert load_report(tmp_path / "r.json").records == report.records


def test_bad_models_and_data_are_one_line_errors(net_and_export):
    net, _ = net_and_export
    with pytest.raises(UsageError, match="ONNX path or a callable"):
        segrob.audit(42, cases(1))
    with pytest.raises(UsageError, match="do not match"):
        segrob.audit(net, [(np.zeros((8, 8)), np.zeros((6, 6)))])
    with pytest.raises(segrob.SegrobError, match="one channel"):
        segrob.audit(lambda batch: batch, cases(1), "texture")


def test_the_audit_package_stays_importable_beside_the_function():
    import importlib

    runner = importlib.import_module("segrob.audit.runner")
    from segrob.audit import AuditOptions

    assert callable(segrob.audit) and runner.AuditOptions is AuditOptions
    assert segrob.audit.runner is runner  # attribute access still reaches the subpackage
