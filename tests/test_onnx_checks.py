"""``segrob check``: deployment checks on a segrob export, a foreign model and broken files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from segrob_cli.main import app
from typer.testing import CliRunner

from segrob.errors import SegrobError
from segrob.onnx.checks import check_model_file

runner = CliRunner()


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny segrob U-Net (2 levels: sizes must be even) exported with metadata."""
    from segrob.models import create_model
    from segrob.onnx.export import export_model

    torch.manual_seed(0)
    model = create_model("unet", spatial_dims=2, in_channels=1, out_channels=2, channels=(4, 8))
    path = tmp_path_factory.mktemp("check") / "unet.onnx"
    export_model(model.eval(), path)
    return path


def foreign_model(path: Path) -> Path:
    """A valid ONNX model that segrob did not write: a static 1x1 convolution, no metadata."""
    weight = numpy_helper.from_array(np.ones((2, 1, 1, 1), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"])], "foreign",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 16, 16])], [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, path)
    return path


def test_check_json_on_a_segrob_export(exported: Path):
    result = runner.invoke(app, ["check", str(exported), "--json", "--device", "cpu",
                                 "--runs", "5"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["passed"] is True
    assert report["checker"]["ok"] and report["opsets"]["ai.onnx"] >= 18
    assert report["metadata"]["segrob"] and report["metadata"]["missing"] == []
    assert report["metadata"]["values"]["arch"] == "unet"
    assert report["providers"]["used"] == ["CPUExecutionProvider"]
    assert report["inputs"][0]["dynamic"] == [True, False, True, True]
    shapes = report["shapes"]
    assert shapes[0]["ok"] and shapes[0]["shape"] == [1, 1, 64, 64]
    assert shapes[0]["output_shape"] == [1, 2, 64, 64]
    assert any(p["shape"][0] == 2 and p["ok"] for p in shapes)  # a bigger batch runs
    odd = [p for p in shapes if p["expected"] is False]
    assert odd and not odd[0]["ok"] and odd[0]["error"]  # 65 is not a multiple of 2
    latency = report["latency"]
    assert latency["runs"] == 5 and 0 < latency["p50_ms"] <= latency["p95_ms"]
    assert latency["throughput"] > 0
    assert report["determinism"]["bitwise_equal"] is True
    statuses = {item["name"]: item["status"] for item in report["items"]}
    assert statuses["export parity"] == "pass" and statuses["metadata vs graph"] == "pass"


def test_check_table(exported: Path):
    result = runner.invoke(app, ["check", str(exported), "--runs", "3"])
    assert result.exit_code == 0, result.output
    for text in ("onnx checker", "provider", "latency", "determinism", "Input shapes tried",
                 "deployment checks passed"):
        assert text in result.stdout


def test_foreign_model_works_and_reports_missing_metadata(tmp_path: Path):
    path = foreign_model(tmp_path / "foreign.onnx")
    report = check_model_file(path, device="cpu", runs=2)
    assert report.passed
    assert not report.metadata["segrob"]
    assert "arch" in report.metadata["missing"] and "normalization" in report.metadata["missing"]
    assert [p.shape for p in report.shapes] == [[1, 1, 16, 16]]  # static: nothing else to try
    statuses = {item.name: item.status for item in report.items}
    assert statuses["metadata"] == "warn" and statuses["export parity"] == "skip"


def test_metadata_that_contradicts_the_graph_fails(exported: Path, tmp_path: Path):
    model = onnx.load(exported)
    for prop in model.metadata_props:
        if prop.key == "segrob.in_channels":
            prop.value = "3"
    path = tmp_path / "lying.onnx"
    onnx.save(model, path)
    result = runner.invoke(app, ["check", str(path), "--json", "--device", "cpu", "--runs", "2"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    failed = [item for item in report["items"] if item["status"] == "fail"]
    assert failed[0]["name"] == "metadata vs graph" and "in_channels 3" in failed[0]["detail"]


@pytest.mark.parametrize("content", [b"", b"\x08\x07garbage" * 50, "truncated"])
def test_broken_files_fail_with_one_line(exported: Path, tmp_path: Path, content):
    path = tmp_path / "broken.onnx"
    path.write_bytes(exported.read_bytes()[:2000] if content == "truncated" else content)
    result = runner.invoke(app, ["check", str(path)])
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "broken.onnx" in lines[0]
    assert "Traceback" not in result.output
    missing = runner.invoke(app, ["check", str(tmp_path / "nope.onnx")])
    assert missing.exit_code == 1 and "no such model file" in missing.stderr


def test_cuda_is_refused_loudly_without_a_usable_gpu(exported: Path):
    try:
        report = check_model_file(exported, device="cuda", runs=2)
    except SegrobError as error:
        assert "cuda" in str(error).lower()
        result = runner.invoke(app, ["check", str(exported), "--device", "cuda", "--json"])
        assert result.exit_code == 1 and result.stdout == ""
        assert "CUDA" in result.stderr
    else:
        assert report.providers["provider"] == "CUDAExecutionProvider"


def test_usage_errors(exported: Path):
    result = runner.invoke(app, ["check", str(exported), "--runs", "0"])
    assert result.exit_code == 2
    result = runner.invoke(app, ["check", str(exported), "--device", "tpu"])
    assert result.exit_code == 2 and "auto, cpu, cuda" in result.stderr


def test_alternating_median_ms_takes_turns_and_the_median(monkeypatch):
    """Each round runs every call once in turn; each call's figure is the median of its rounds."""
    from segrob.onnx import probes

    clock = iter(range(100))
    monkeypatch.setattr(probes.time, "perf_counter", lambda: next(clock) / 1e3)
    order = []
    slow = iter([0, 5, 0])  # extra clock ticks spent by the second call, round by round

    def second():
        order.append("b")
        for _ in range(next(slow)):
            next(clock)

    medians = probes.alternating_median_ms([lambda: order.append("a"), second], rounds=3)
    assert order == ["a", "b"] * 3
    assert medians == pytest.approx([1.0, 1.0])  # the second call's one slow round (6 ms) is not its median
