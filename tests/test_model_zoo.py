"""Third-party models, as other teams export them, audited end to end without segrob metadata.

Each MONAI network (random weights, toy size) is exported by ``torch.onnx`` and audited through
the CLI; its clean Dice must equal the Dice of the same torch module run directly on the same
cases, so the audit fed the graph what it expects (batch, size, output, activation).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from segrob_cli.main import app
from typer.testing import CliRunner

from segrob.data import write_array
from segrob.report import validate_report

monai = pytest.importorskip("monai")
torch = pytest.importorskip("torch")

runner = CliRunner()
CASES = 3


def _unet(dims: int, out_channels: int, depth: int = 2):
    from monai.networks.nets import UNet

    torch.manual_seed(dims * 10 + out_channels + depth)
    channels = tuple(4 * 2 ** i for i in range(depth + 1))
    return UNet(spatial_dims=dims, in_channels=1, out_channels=out_channels, channels=channels,
                strides=(2,) * depth, num_res_units=0).eval()


class _Head(torch.nn.Module):
    """A network with its own output head: Softmax, Sigmoid, or deep supervision (two outputs)."""

    def __init__(self, net, kind: str):
        super().__init__()
        self.net, self.kind = net, kind

    def forward(self, x):
        y = self.net(x)
        if self.kind == "softmax":
            return torch.softmax(y, dim=1)
        if self.kind == "sigmoid":
            return torch.sigmoid(y)
        low = torch.nn.functional.avg_pool2d(y, 2)
        return low, y  # the low-resolution output first, as a careless export would order them


def _export(module, path, shape, *, dynamic: bool, dynamo: bool = False, outputs: int = 1):
    example = torch.zeros(shape)
    names = [f"out{i}" for i in range(outputs)]
    if dynamo:
        # Sizes of 0 or 1 would be specialised: the example has a batch of 2 and 64 px.
        example = torch.zeros((2, *shape[1:2], *(64 for _ in shape[2:])))
        dynamic_shapes = {"x": {a: torch.export.Dim.AUTO for a in range(len(shape)) if a != 1}}
        torch.onnx.export(module, (example,), str(path), dynamo=True, input_names=["image"],
                          output_names=names, dynamic_shapes=dynamic_shapes)
        return
    axes = {name: {0: "batch", **{a: f"s{a}" for a in range(2, len(shape))}} for name in ["image", *names]}
    torch.onnx.export(module, (example,), str(path), dynamo=False, input_names=["image"],
                      output_names=names, dynamic_axes=axes if dynamic else None, opset_version=17)


def _dataset(root, size: int, dims: int, classes: int):
    """Smooth random images; labels are bands of their intensity, so a random network scores
    somewhere between 0 and 1 (never a trivial 0 or 1)."""
    rng = np.random.default_rng(size + dims)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for index in range(CASES):
        noise = torch.from_numpy(rng.standard_normal((1, 1) + (size,) * dims).astype(np.float32))
        pool = torch.nn.functional.avg_pool2d if dims == 2 else torch.nn.functional.avg_pool3d
        image = pool(noise, 5, stride=1, padding=2, count_include_pad=False)[0].numpy()
        image = (image - image.mean()) / image.std()
        label = np.digitize(image[0], np.linspace(-0.3, 0.3, classes - 1)).astype(np.int32)
        write_array(root / "images" / f"case{index}.npy", image, (1.0,) * dims)
        write_array(root / "labels" / f"case{index}.npy", label, (1.0,) * dims)
    return root


def _torch_dice(module, data, *, pick=lambda y: y, probs=False, binary=False, pad_to=None) -> float:
    """Mean foreground Dice of ``module`` run directly on each case (padded at the far end)."""
    scores = []
    for index in range(CASES):
        image = np.load(data / "images" / f"case{index}.npy")
        truth = np.load(data / "labels" / f"case{index}.npy")
        x = torch.from_numpy(image)[None]
        if pad_to:
            extra = [0 for _ in range(2 * (x.dim() - 2))]
            for axis in range(x.dim() - 2):
                extra[2 * axis + 1] = pad_to - x.shape[-1 - axis]
            x = torch.nn.functional.pad(x, extra)
        with torch.no_grad():
            y = pick(module(x))[0]
        y = y[(slice(None), *(slice(0, s) for s in truth.shape))].numpy()
        prediction = (y[0] >= (0.5 if probs else 0.0)).astype(int) if binary else y.argmax(0)
        classes = [1] if binary else range(1, y.shape[0])
        scores.append(np.mean([_dice(prediction == k, truth == k) for k in classes]))
    return float(np.mean(scores))


def _dice(pred: np.ndarray, truth: np.ndarray) -> float:
    total = pred.sum() + truth.sum()
    return 1.0 if total == 0 else 2.0 * float((pred & truth).sum()) / float(total)


def _audit(model, data, tmp_path, *extra):
    suite = tmp_path / "suite.json"
    blur = {"name": "gaussian_blur", "severities": [1]}
    suite.write_text(json.dumps({"name": "zoo", "perturbation": [blur]}))
    out = tmp_path / f"{model.stem}-{len(list(tmp_path.iterdir()))}.json"
    result = runner.invoke(app, ["audit", str(model), "--data", str(data), "--suite", str(suite),
                                 "--normalization", "none", "--out", str(out), *map(str, extra)],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    report = json.loads(out.read_text())
    validate_report(report)
    clean = [r["metrics"]["dice"] for r in report["records"] if r["perturbation"] == "clean"]
    assert len(clean) == CASES
    return float(np.mean(clean)), report


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo")
    return {
        "data2": _dataset(root / "data2", 32, 2, 3),
        "binary2": _dataset(root / "binary2", 32, 2, 2),
        "odd2": _dataset(root / "odd2", 40, 2, 3),
        "data3": _dataset(root / "data3", 24, 3, 2),
        "root": root,
    }


def _check(clean: float, expected: float) -> None:
    assert 0.02 < expected < 0.98, expected  # a score that could differ, not a trivial one
    assert clean == pytest.approx(expected, abs=0.005)


@pytest.mark.parametrize("dynamo", [False, True], ids=["legacy", "dynamo"])
def test_dynamic_unet_from_either_exporter(zoo, tmp_path, dynamo):
    net = _unet(2, 3)
    path = zoo["root"] / f"unet_{'dynamo' if dynamo else 'legacy'}.onnx"
    _export(net, path, (2, 1, 32, 32), dynamic=True, dynamo=dynamo)
    clean, report = _audit(path, zoo["data2"], tmp_path)
    _check(clean, _torch_dice(net, zoo["data2"]))
    graph = report["model"]["graph"]
    assert graph["static_batch"] is None and graph["static_spatial"] is None
    assert graph["size_multiple"] == 4 and graph["sources"]["size_multiple"] == "probe"
    assert graph["activation"] == "softmax" and report["model"]["out_channels"] == 3


def test_static_batch_one_fixed_size_unet(zoo, tmp_path):
    net = _unet(2, 3)
    path = zoo["root"] / "static.onnx"
    _export(net, path, (1, 1, 32, 32), dynamic=False)
    clean, report = _audit(path, zoo["data2"], tmp_path, "--batch-size", 8)
    _check(clean, _torch_dice(net, zoo["data2"]))
    graph = report["model"]["graph"]
    assert graph["static_batch"] == 1 and graph["static_spatial"] == [32, 32]
    # On larger images the fixed size becomes a sliding window, still one image at a time.
    _, windowed = _audit(path, zoo["odd2"], tmp_path, "--batch-size", 8)
    assert windowed["settings"]["inference"]["window"] == [32, 32]
    assert windowed["settings"]["inference"]["fixed_size"] is True


def test_network_needing_multiples_of_32_on_other_sizes(zoo, tmp_path):
    net = _unet(2, 3, depth=5)
    path = zoo["root"] / "deep.onnx"
    _export(net, path, (1, 1, 64, 64), dynamic=True)
    clean, report = _audit(path, zoo["odd2"], tmp_path)
    _check(clean, _torch_dice(net, zoo["odd2"], pad_to=64))
    assert report["model"]["graph"]["size_multiple"] == 32
    assert report["settings"]["inference"]["size_multiple"] == 32


def test_one_channel_sigmoid_model_is_binary(zoo, tmp_path):
    net = _Head(_unet(2, 1), "sigmoid").eval()
    path = zoo["root"] / "sigmoid.onnx"
    _export(net, path, (1, 1, 32, 32), dynamic=True)
    clean, report = _audit(path, zoo["binary2"], tmp_path)
    _check(clean, _torch_dice(net, zoo["binary2"], probs=True, binary=True))
    graph = report["model"]["graph"]
    assert graph["binary"] and graph["activation"] == "none" and graph["outputs"][0]["ends_in"] == "sigmoid"
    assert report["settings"]["classes"] == [1]


def test_model_ending_in_softmax_gets_no_second_softmax(zoo, tmp_path):
    net = _Head(_unet(2, 3), "softmax").eval()
    path = zoo["root"] / "softmax.onnx"
    _export(net, path, (1, 1, 32, 32), dynamic=True)
    clean, report = _audit(path, zoo["data2"], tmp_path)
    _check(clean, _torch_dice(net, zoo["data2"]))
    assert report["model"]["graph"]["activation"] == "none"
    # The probabilities are taken as given: a second softmax would flatten them towards log 3.
    entropy = [r["metrics"]["entropy"] for r in report["records"] if r["perturbation"] == "clean"]
    expected = []
    for index in range(CASES):
        with torch.no_grad():
            p = net(torch.from_numpy(np.load(zoo["data2"] / "images" / f"case{index}.npy"))[None])[0]
        expected.append(float((-(p * torch.log(p.clamp_min(1e-12)))).sum(0).mean()))
    assert entropy == pytest.approx(expected, abs=1e-3)


def test_deep_supervision_scores_the_full_resolution_output(zoo, tmp_path):
    net = _Head(_unet(2, 3), "deep").eval()
    path = zoo["root"] / "deep_supervision.onnx"
    _export(net, path, (1, 1, 32, 32), dynamic=True, outputs=2)
    clean, report = _audit(path, zoo["data2"], tmp_path)
    _check(clean, _torch_dice(net, zoo["data2"], pick=lambda y: y[1]))
    graph = report["model"]["graph"]
    assert graph["output"] == "out1" and graph["sources"]["output"] == "probe"
    again, chosen = _audit(path, zoo["data2"], tmp_path, "--output", "out1", "--activation", "softmax")
    assert again == clean and chosen["model"]["graph"]["sources"]["output"] == "override"


def test_3d_network(zoo, tmp_path):
    net = _unet(3, 2)
    path = zoo["root"] / "unet3d.onnx"
    _export(net, path, (1, 1, 24, 24, 24), dynamic=True)
    clean, report = _audit(path, zoo["data3"], tmp_path, "--spatial-dims", 3)
    _check(clean, _torch_dice(net, zoo["data3"]))
    assert report["model"]["spatial_dims"] == 3


class _NeedsLargeInput(torch.nn.Module):
    """Runs only on inputs larger than 20 px: a reflection pad of 20 around a 1x1 convolution."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 3, 1)

    def forward(self, x):
        padded = torch.nn.functional.pad(x, (20, 20, 20, 20), mode="reflect")
        return self.conv(padded)[..., 20:-20, 20:-20]


def test_outputs_probed_small_first_then_at_64(zoo, tmp_path):
    from segrob.onnx.graph import read_contract
    from segrob.onnx.session import create_session

    small = zoo["root"] / "probe_small.onnx"
    _export(_unet(2, 3), small, (1, 1, 32, 32), dynamic=True)
    contract = read_contract(create_session(small, device="cpu"), {"size_multiple": 4}, in_channels=1)
    assert contract.output.probed_shape == [1, 3, 16, 16] and contract.n_classes == 3
    large = zoo["root"] / "probe_large.onnx"
    _export(_NeedsLargeInput().eval(), large, (1, 1, 64, 64), dynamic=True)
    contract = read_contract(create_session(large, device="cpu"), {"size_multiple": 4}, in_channels=1)
    assert contract.output.probed_shape == [1, 3, 64, 64] and contract.n_classes == 3
