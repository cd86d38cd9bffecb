"""``segrob export`` on a run folder: metadata from the run, FP16/INT8, the parity gate, and
bad inputs (wrong or corrupt checkpoints, existing outputs) that leave nothing behind."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from segrob_cli.main import app
from typer.testing import CliRunner

from segrob.errors import SegrobError
from segrob.onnx.export import ExportOptions, export_run
from segrob.onnx.quantize import float_types
from segrob.onnx.session import read_metadata

runner = CliRunner()
OPTIONS = {"channels": [4, 8]}


def _train_briefly(model: torch.nn.Module, cases: list, steps: int = 60) -> None:
    """A few Adam steps of cross-entropy, so that masks and INT8 calibration mean something."""
    from segrob.data.normalize import normalize

    images = normalize(torch.stack([torch.from_numpy(c.image) for c in cases]))
    labels = torch.stack([torch.from_numpy(c.label.astype(np.int64)) for c in cases])
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-2)
    model.train()
    for _ in range(steps):
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        loss.backward()
        optimiser.step()
    model.eval()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder in the training format, over 6 synthetic 32x32 cases (2 held out)."""
    from segrob.data import load_dataset
    from segrob.data.synth import SynthConfig, write_synthetic
    from segrob.models import create_model

    root = tmp_path_factory.mktemp("export-run")
    data = root / "data"
    data.mkdir()
    write_synthetic(SynthConfig(dims=2, n=6, size=32, level="low", seed=3), data)
    dataset = load_dataset(data)
    val = dataset.names[:2]
    torch.manual_seed(0)
    model = create_model("unet", spatial_dims=2, in_channels=1, out_channels=2, **OPTIONS)
    _train_briefly(model, [dataset.case(n) for n in dataset.names[2:]])
    run = root / "run"
    run.mkdir()
    config = {
        "format": "segrob-run/1", "arch": "unet", "spatial_dims": 2, "in_channels": 1,
        "out_channels": 2, "options": OPTIONS, "normalization": {"method": "zscore"},
        "patch_size": None, "train": {"epochs": 1},
        "data": {"path": str(data), "n_cases": 6, "kind": dataset.kind,
                 "metadata": dataset.metadata, "val_cases": val},
        "fbr_range": {"min": 0.1, "max": 0.3, "p5": 0.12, "p95": 0.28},
        "best": {"epoch": 1, "val_dice": 0.5}, "history": [], "versions": {"torch": "test"},
        "status": "complete",
    }
    (run / "config.json").write_text(json.dumps(config))
    torch.save(model.state_dict(), run / "model.pt")
    return run


def _one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.output
    assert lines and lines[-1].startswith("error:")
    return lines[-1]


def test_cli_export_writes_parity_checked_model_with_run_metadata(run_dir: Path, tmp_path: Path):
    out = tmp_path / "unet.onnx"
    result = runner.invoke(app, ["export", str(run_dir), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["path"] == str(out) and out.is_file()
    parity = report["parity"]
    assert parity["passed"] and parity["argmax_agreement"] >= 0.999
    assert "2 validation case(s)" in parity["inputs"]
    assert parity["dice_vs_label"]["change"] == pytest.approx(0.0, abs=1e-3)
    meta = read_metadata(out)
    assert meta["training_data"]["path"].endswith("data")
    assert meta["complexity"]["level"] == "low"
    assert meta["fbr_range"]["p95"] == 0.28
    assert meta["options"] == OPTIONS and meta["normalization"] == {"method": "zscore"}
    assert meta["versions"]["training"] == {"torch": "test"}
    assert meta["parity"]["mask_dice"] == pytest.approx(parity["mask_dice"])

    # The same again refuses to overwrite; --overwrite replaces it.
    again = runner.invoke(app, ["export", str(run_dir), "--out", str(out)])
    assert again.exit_code == 1 and "--overwrite" in _one_error_line(again)
    table = runner.invoke(app, ["export", str(run_dir), "--out", str(out), "--overwrite"])
    assert table.exit_code == 0, table.output
    assert "argmax agreement" in table.stdout and "parity passed" in table.stdout


def test_fp16_keeps_float32_io_with_half_weights(run_dir: Path, tmp_path: Path):
    out = tmp_path / "unet-fp16.onnx"
    result = export_run(run_dir, out, options=ExportOptions(precision="fp16"))
    proto = onnx.load(out)
    assert float_types(proto).keys() == {"FLOAT16"}
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert proto.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert result.parity.passed and result.parity.max_abs_diff > 0  # half arithmetic differs
    assert result.parity.dice_vs_label is not None
    assert read_metadata(out)["precision"] == "fp16"


def test_int8_is_quantised_and_calibrated_on_training_cases(run_dir: Path, tmp_path: Path):
    out = tmp_path / "unet-int8.onnx"
    options = ExportOptions(precision="int8", min_agreement=0.5, min_dice=0.5)
    result = export_run(run_dir, out, options=options)
    ops = {node.op_type for node in onnx.load(out).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    meta = read_metadata(out)
    assert meta["precision"] == "int8"
    assert "4 training case(s)" in meta["calibration"]
    assert result.parity.dice_vs_label is not None
    assert meta["parity"]["thresholds"]["min_dice"] == 0.5


def _output_shapes(path: Path, nodes: list, shape: tuple) -> dict[str, tuple]:
    """Each node's output shape from onnxruntime itself (the outputs exposed as graph outputs)."""
    import onnxruntime as ort

    proto = onnx.load(path)
    for node in nodes:
        exposed = onnx.helper.make_tensor_value_info(node.output[0], onnx.TensorProto.FLOAT, None)
        proto.graph.output.append(exposed)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    outputs = session.run([n.output[0] for n in nodes], {"image": np.zeros(shape, np.float32)})
    return {node.name: out.shape for node, out in zip(nodes, outputs, strict=True)}


def test_full_resolution_nodes_are_the_convolutions_at_the_inputs_size(run_dir: Path, tmp_path: Path):
    from segrob.onnx.quantize import INT8_OPS, full_resolution_nodes

    fp32 = tmp_path / "unet.onnx"
    export_run(run_dir, fp32)
    proto = onnx.load(fp32)
    convs = [n for n in proto.graph.node if n.op_type in INT8_OPS]
    shapes = _output_shapes(fp32, convs, (1, 1, 32, 32))
    expected = [name for name, shape in shapes.items() if shape[2:] == (32, 32)]
    assert 0 < len(expected) < len(convs)
    assert full_resolution_nodes(proto, (1, 1, 32, 32)) == expected


@pytest.mark.parametrize(("timings", "chosen"), [
    ({"every_conv_int8": 5.0, "full_resolution_float": 9.0}, "int8"),  # all-INT8 clearly faster
    ({"every_conv_int8": 9.6, "full_resolution_float": 10.0}, "float"),  # within 5%: float kept
    ({"every_conv_int8": 9.0, "full_resolution_float": 5.0}, "float"),
])
def test_int8_auto_keeps_full_resolution_in_float_unless_all_int8_is_clearly_faster(
        run_dir: Path, tmp_path: Path, monkeypatch, timings, chosen):
    """The export times both versions (here: told the times) and keeps the one the rule picks,
    its full-resolution convolutions then with float weights, and says so in the metadata."""
    from segrob.onnx import quantize

    monkeypatch.setattr(quantize, "_median_ms", lambda paths, batch, rounds: list(timings.values()))
    out = tmp_path / "unet-int8.onnx"
    export_run(run_dir, out, options=ExportOptions(precision="int8", min_agreement=0.5, min_dice=0.5))
    choice = read_metadata(out)["int8"]
    assert choice["ms"] == timings and choice["full_resolution"] == "auto"
    full = quantize.full_resolution_nodes(onnx.load(_fp32(run_dir, tmp_path)), (1, 1, 32, 32))
    assert choice["float_nodes"] == (full if chosen == "float" else [])
    assert _float_weight_nodes(out) == set(choice["float_nodes"])


@pytest.mark.parametrize("where", ["int8", "float"])
def test_int8_full_resolution_can_be_set(run_dir: Path, tmp_path: Path, monkeypatch, where):
    from segrob.onnx import quantize

    monkeypatch.setattr(quantize, "_median_ms", lambda *args: pytest.fail("a set choice is not timed"))
    out = tmp_path / "unet-int8.onnx"
    result = runner.invoke(app, ["export", str(run_dir), "--out", str(out), "--precision", "int8",
                                 "--int8-full-resolution", where, "--min-agreement", "0.5",
                                 "--min-dice", "0.5"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    choice = read_metadata(out)["int8"]
    full = quantize.full_resolution_nodes(onnx.load(_fp32(run_dir, tmp_path)), (1, 1, 32, 32))
    assert choice == {"full_resolution": where, "float_nodes": full if where == "float" else [], "ms": None}
    assert _float_weight_nodes(out) == set(choice["float_nodes"])
    assert quantize.describe_int8_choice(choice) in result.output
    bad = runner.invoke(app, ["export", str(run_dir), "--out", str(tmp_path / "x.onnx"),
                              "--precision", "int8", "--int8-full-resolution", "half"])
    assert bad.exit_code == 2 and "--int8-full-resolution" in _one_error_line(bad)
    assert not (tmp_path / "x.onnx").exists()


def _float_weight_nodes(path: Path) -> set[str]:
    """Quantisable nodes whose weights are float32 initialisers (not dequantised INT8)."""
    from segrob.onnx.quantize import INT8_OPS

    proto = onnx.load(path)
    assert any(n.op_type == "DequantizeLinear" for n in proto.graph.node)
    floats = {t.name for t in proto.graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
    return {n.name for n in proto.graph.node if n.op_type in INT8_OPS and n.input[1] in floats}


def _fp32(run_dir: Path, tmp_path: Path) -> Path:
    path = tmp_path / "unet-fp32.onnx"
    export_run(run_dir, path)
    return path


def test_failed_parity_gate_writes_nothing(run_dir: Path, tmp_path: Path):
    out = tmp_path / "strict.onnx"
    with pytest.raises(SegrobError, match="parity check failed"):
        export_run(run_dir, out, options=ExportOptions(precision="fp16", max_abs_diff=0.0))
    assert list(tmp_path.iterdir()) == []
    result = runner.invoke(app, ["export", str(run_dir), "--out", str(out),
                                 "--precision", "fp16", "--max-abs-diff", "0"])
    assert result.exit_code == 1
    assert "parity check failed" in _one_error_line(result)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("damage", ["other-arch", "corrupt", "missing-data"])
def test_bad_runs(run_dir: Path, tmp_path: Path, damage: str):
    from segrob.models import create_model

    broken = tmp_path / "run"
    shutil.copytree(run_dir, broken)
    out = tmp_path / "out.onnx"
    if damage == "missing-data":
        config = json.loads((broken / "config.json").read_text())
        config["data"]["path"] = str(tmp_path / "gone")
        (broken / "config.json").write_text(json.dumps(config))
        result = export_run(broken, out)
        assert "synthetic" in result.parity.inputs and result.parity.dice_vs_label is None
        assert any("synthetic" in note for note in result.notes)
        return
    if damage == "other-arch":
        other = create_model("noskip", spatial_dims=2, in_channels=1, out_channels=2, **OPTIONS)
        torch.save(other.state_dict(), broken / "model.pt")
    else:
        (broken / "model.pt").write_bytes(b"\x00not a checkpoint" * 10)
    result = runner.invoke(app, ["export", str(broken), "--out", str(out)])
    assert result.exit_code == 1
    line = _one_error_line(result)
    assert "model.pt" in line
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_option_errors(run_dir: Path, tmp_path: Path):
    result = runner.invoke(app, ["export", str(run_dir), "--out", str(tmp_path / "m.onnx"),
                                 "--precision", "bf16"])
    assert result.exit_code == 2 and "fp32, fp16, int8" in _one_error_line(result)
    result = runner.invoke(app, ["export", str(run_dir), "--out", str(tmp_path / "m.onnx"),
                                 "--opset", "13"])
    assert result.exit_code == 2 and "at least 18" in _one_error_line(result)
    result = runner.invoke(app, ["export", str(tmp_path / "nope"), "--out", "m.onnx"])
    assert result.exit_code == 1 and "run folder not found" in _one_error_line(result)


def test_check_times_each_precision_beside_torch_eager_with_the_run(run_dir: Path, tmp_path: Path):
    fp32 = tmp_path / "unet-opt.onnx"
    exported = runner.invoke(app, ["export", str(run_dir), "--out", str(fp32), "--optimize", "--json"])
    assert exported.exit_code == 0, exported.output
    assert json.loads(exported.stdout)["metadata"]["graph_optimization"]["level"] == "ORT_ENABLE_EXTENDED"
    int8 = tmp_path / "unet-int8.onnx"
    export_run(run_dir, int8, options=ExportOptions(precision="int8", min_agreement=0.5, min_dice=0.5))
    for path, precision, least in ((fp32, "fp32", 0.999), (int8, "int8", 0.5)):
        result = runner.invoke(app, ["check", str(path), "--run", str(run_dir), "--runs", "3", "--json"])
        assert result.exit_code == 0, result.output
        speed = json.loads(result.stdout)["speed"]
        assert speed["precision"] == precision and speed["agreement"] >= least and speed["device"] == "cpu"
        assert speed["torch_ms"] > 0 and speed["onnx_ms"] > 0
        assert speed["ratio"] == pytest.approx(speed["torch_ms"] / speed["onnx_ms"], rel=1e-2)
    without = json.loads(runner.invoke(app, ["check", str(fp32), "--runs", "3", "--json"]).stdout)
    assert without["speed"] is None
    item = next(i for i in without["items"] if i["name"] == "speed vs torch")
    assert item["status"] == "skip" and "--run" in item["detail"]


@pytest.mark.parametrize("provider, torch_has_cuda, expected", [
    ("CPUExecutionProvider", False, "cpu"), ("CPUExecutionProvider", True, "cpu"),
    ("CUDAExecutionProvider", True, "cuda"), ("CUDAExecutionProvider", False, None),
    ("TensorrtExecutionProvider", True, None),
])
def test_torch_is_timed_on_the_kind_of_device_onnxruntime_ran_on(provider, torch_has_cuda, expected,
                                                                  run_dir: Path, monkeypatch):
    from types import SimpleNamespace

    from segrob.audit.model_spec import _torch_device
    from segrob.onnx import checks
    from segrob.onnx.session import torch_device_for

    monkeypatch.setattr(torch.cuda, "is_available", lambda: torch_has_cuda)
    assert torch_device_for(provider) == expected
    assert _torch_device(SimpleNamespace(provider=provider)) == (expected or "cpu")  # where audits perturb
    timed = []
    monkeypatch.setattr(checks, "measure_against_torch", lambda *a, device, **k: timed.append(device) or {
        "precision": "fp32", "onnx_ms": 1.0, "torch_ms": 2.0, "ratio": 2.0, "agreement": 1.0})
    report = SimpleNamespace(speed=None)
    info = SimpleNamespace(provider=provider)
    item = checks._speed_item(report, info, np.zeros((1, 1, 8, 8), np.float32), run=run_dir, rounds=3)
    if expected is None:
        assert item.status == "skip" and provider in item.detail and report.speed is None and not timed
    else:
        assert item.status == "pass" and f"on {expected}" in item.detail and timed == [expected]


def test_check_on_cuda_times_torch_eager_on_cuda(run_dir: Path, tmp_path: Path, cuda_provider):
    path = tmp_path / "unet.onnx"
    export_run(run_dir, path)
    result = runner.invoke(app, ["check", str(path), "--run", str(run_dir), "--device", "cuda",
                                 "--runs", "5", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["providers"]["provider"] == "CUDAExecutionProvider"
    speed = report["speed"]
    assert speed["device"] == "cuda" and speed["agreement"] >= 0.999
    assert speed["torch_ms"] > 0 and speed["onnx_ms"] > 0


def test_export_states_the_preprocessing_a_deployment_does_before_the_model(run_dir: Path, tmp_path: Path):
    out = tmp_path / "resampled.onnx"
    result = runner.invoke(app, ["export", str(run_dir), "--out", str(out), "--target-spacing", "0.8,0.8",
                                 "--json"])
    assert result.exit_code == 0, result.output
    meta = read_metadata(out)
    assert meta["preprocessing"] == {"intensity": {"method": "zscore"}, "target_spacing": [0.8, 0.8],
                                     "orientation": "as-stored", "channel_order": None}
    assert json.loads(result.stdout)["parity"]["passed"]
    check = runner.invoke(app, ["check", str(out), "--json"])
    stated = json.loads(check.stdout)["preprocessing"]
    assert stated["source"] == "model" and stated["spec"]["target_spacing"] == [0.8, 0.8]


def test_export_keeps_the_runs_intensity_unless_the_run_trained_on_normalised_images(
        run_dir: Path, tmp_path: Path):
    spec = tmp_path / "ct.toml"
    spec.write_text('[intensity]\nmethod = "ct-window"\nlevel = 40\nwidth = 400\n')
    refused = runner.invoke(app, ["export", str(run_dir), "--out", str(tmp_path / "m.onnx"),
                                  "--preprocessing", str(spec)])
    line = _one_error_line(refused)
    assert refused.exit_code == 2 and "trained with" in line and 'method = "zscore"' in line
    assert not (tmp_path / "m.onnx").exists()

    windowed_run = tmp_path / "run-none"
    shutil.copytree(run_dir, windowed_run)
    config = json.loads((windowed_run / "config.json").read_text())
    (windowed_run / "config.json").write_text(json.dumps({**config, "normalization": {"method": "none"}}))
    out = tmp_path / "ct.onnx"
    result = runner.invoke(app, ["export", str(windowed_run), "--out", str(out),
                                 "--preprocessing", str(spec)])
    assert result.exit_code == 0, result.output
    meta = read_metadata(out)
    assert meta["preprocessing"]["intensity"]["method"] == "ct-window"
    assert meta["normalization"]["method"] == "ct-window"  # what older readers apply


@pytest.mark.parametrize(("flags", "message"), [
    (("--target-spacing", "1,x"), "--target-spacing takes mm per axis"),
    (("--target-spacing", "1,1,3"), "the model is 2D"),
    (("--orientation", "sideways"), "orientation 'sideways'"),
])
def test_export_preprocessing_flag_errors(run_dir: Path, tmp_path: Path, flags, message):
    result = runner.invoke(app, ["export", str(run_dir), "--out", str(tmp_path / "m.onnx"), *flags])
    assert result.exit_code == 2 and message in _one_error_line(result)
    assert not (tmp_path / "m.onnx").exists()
