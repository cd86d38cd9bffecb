"""Reading a model's contract from its graph, and labels the way datasets state them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from segrob_cli.main import app
from typer.testing import CliRunner

from segrob.audit.labels import LabelPlan, absent_classes, label_plan, parse_label_map, without_classes
from segrob.audit.records import CellRecord
from segrob.data import write_array
from segrob.data.layouts import DatasetLabels, dataset_labels
from segrob.errors import SegrobError, UsageError

runner = CliRunner()


class _Threshold(torch.nn.Module):
    """Class 1 wherever the image is positive: logits (0, 10 x) or, with ``sigmoid``, p(10 x).
    ``classes`` > 2 adds never-predicted classes; a pool, upsample and concat (as in a U-Net) makes
    it need even sizes."""

    def __init__(self, classes: int = 2, sigmoid: bool = False):
        super().__init__()
        self.classes, self.sigmoid = classes, sigmoid

    def forward(self, x):
        skip = torch.nn.functional.interpolate(torch.nn.functional.max_pool2d(x, 2), scale_factor=2.0)
        x = torch.cat([x, skip], dim=1)[:, :1]
        if self.sigmoid:
            return torch.sigmoid(10 * x)
        rest = [torch.zeros_like(x) - 5 for _ in range(self.classes - 2)]
        return torch.cat([torch.zeros_like(x), 10 * x, *rest], dim=1)


def _export(module, path):
    axes = {"image": {0: "b", 2: "h", 3: "w"}, "out": {0: "b", 2: "h", 3: "w"}}
    torch.onnx.export(module, (torch.zeros(1, 1, 32, 32),), str(path), dynamo=False, input_names=["image"],
                      output_names=["out"], dynamic_axes=axes, opset_version=17)
    return path


def _write(root, images, labels, description=None):
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        write_array(root / "images" / f"c{index}.npy", image[None].astype(np.float32), (1.0, 1.0))
        write_array(root / "labels" / f"c{index}.npy", label.astype(np.int32), (1.0, 1.0))
    if description:
        (root / "dataset.json").write_text(json.dumps(description))
    return root


def _cases(size: int = 33):
    rng = np.random.default_rng(0)
    images = [rng.standard_normal((size, size)) for _ in range(2)]
    labels = [(image > 0.2).astype(int) for image in images]  # class 1, not exactly the model's
    return images, labels


def _audit(model, data, tmp_path, *extra):
    out = tmp_path / f"r{len(list(tmp_path.iterdir()))}.json"
    result = runner.invoke(app, ["audit", str(model), "--data", str(data), "--suite", "clean",
                                 "--normalization", "none", "--out", str(out), *map(str, extra)],
                           env={"COLUMNS": "200"})
    report = json.loads(out.read_text()) if out.exists() else None
    return result, report


def _dice(pred, truth):
    return 2.0 * float((pred & truth).sum()) / float(pred.sum() + truth.sum())


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {"two": _export(_Threshold(2), root / "two.onnx"),
            "three": _export(_Threshold(3), root / "three.onnx"),
            "sigmoid": _export(_Threshold(sigmoid=True), root / "sigmoid.onnx")}


def test_dataset_json_labels_in_msd_and_nnunet_forms():
    msd = dataset_labels({"labels": {"0": "background", "1": "edema", "2": "tumour"}})
    assert msd == DatasetLabels({0: "background", 1: "edema", 2: "tumour"}, None)
    nnunet = dataset_labels({"labels": {"background": 0, "liver": 1, "whole": [1, 2], "ignore": 3}})
    assert nnunet == DatasetLabels({0: "background", 1: "liver"}, 3)
    assert dataset_labels({}) == DatasetLabels({})
    with pytest.raises(SegrobError, match="label 'liver'"):
        dataset_labels({"labels": {"liver": 1.5}})


def test_label_map_parsing_and_checks():
    assert parse_label_map("3=1,4=0") == {3: 1, 4: 0} and parse_label_map(None) is None
    with pytest.raises(UsageError, match="--label-map"):
        parse_label_map("3:1")
    with pytest.raises(UsageError, match="classes 0-1"):
        label_plan(2, DatasetLabels({}), {3: 2}, "data")
    with pytest.raises(SegrobError, match=r"label value 2 \(tumour\) .* --label-map 2=K"):
        label_plan(2, DatasetLabels({0: "bg", 1: "edema", 2: "tumour"}), None, "data")
    plan = label_plan(2, DatasetLabels({0: "bg", 1: "a", 2: "b", 5: "skip"}, ignore=5), {2: 1}, "data")
    pred, truth = plan.mask(np.array([1, 1, 0]), np.array([5, 1, 5]))
    assert pred.tolist() == [0, 1, 0] and truth.tolist() == [0, 1, 0]


def test_absent_classes_leave_the_mean():
    record = CellRecord("c", "clean", 0, 0, {}, {"dice": 0.5},
                        per_class={"1": {"dice": 1.0}, "2": {"dice": 0.0}},
                        empty={"1": "none", "2": "pred"})
    assert absent_classes([record], [1, 2]) == [2]
    without_classes([record], [2])
    assert record.metrics["dice"] == 1.0
    assert LabelPlan(3).to_dict() == {"names": {}, "ignore": None, "map": {}}


def test_odd_sizes_are_padded_to_the_probed_multiple_and_a_wrong_one_is_explained(models, tmp_path):
    data = _write(tmp_path / "data", *_cases(33))
    result, report = _audit(models["two"], data, tmp_path)
    assert result.exit_code == 0, result.output
    assert report["model"]["graph"]["size_multiple"] == 2
    images, labels = _cases(33)
    expected = np.mean([_dice(i > 0, lab == 1) for i, lab in zip(images, labels, strict=True)])
    assert report["summary"]["clean"]["dice"]["mean"] == pytest.approx(expected, abs=1e-6)
    result, _ = _audit(models["two"], data, tmp_path, "--size-multiple", 1)
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if not line.startswith("audit ")]  # progress
    assert len(lines) == 1 and "two.onnx" in lines[0] and "--size-multiple" in lines[0], lines
    assert "ONNXRuntimeError" not in result.output and "Traceback" not in result.output


def test_label_value_the_model_cannot_predict_is_refused_or_mapped(models, tmp_path):
    images, labels = _cases(32)
    labels = [label + (image > 1.5) for image, label in zip(images, labels, strict=True)]  # a class 2
    data = _write(tmp_path / "data", images, labels)
    result, _ = _audit(models["sigmoid"], data, tmp_path)
    assert result.exit_code == 1 and "label value 2" in result.output and "--label-map 2=K" in result.output
    assert "labels/c" in result.output  # found in the label files, before any image was read
    result, report = _audit(models["sigmoid"], data, tmp_path, "--label-map", "2=1")
    assert result.exit_code == 0, result.output
    assert report["settings"]["labels"]["map"] == {"2": 1} and report["settings"]["classes"] == [1]
    expected = np.mean([_dice(i > 0, lab >= 1) for i, lab in zip(images, labels, strict=True)])
    assert report["summary"]["clean"]["dice"]["mean"] == pytest.approx(expected, abs=1e-6)


def test_model_class_absent_from_every_label_is_reported_and_left_out(models, tmp_path):
    images, labels = _cases(32)
    data = _write(tmp_path / "data", images, labels)
    result, report = _audit(models["three"], data, tmp_path)
    assert result.exit_code == 0, result.output
    assert "model class 2 is absent from every label" in result.output
    assert report["settings"]["labels"]["absent_classes"] == [2]
    expected = np.mean([_dice(i > 0, lab == 1) for i, lab in zip(images, labels, strict=True)])
    assert report["summary"]["clean"]["dice"]["mean"] == pytest.approx(expected, abs=1e-6)


def test_ignore_label_is_masked_and_names_are_shown(models, tmp_path):
    images, labels = _cases(32)
    # Where the image is positive but the label is background, the model is wrong; mark half of
    # those voxels "ignore" and they stop counting.
    ignored = [(image > 0) & (label == 0) & (np.arange(32)[:, None] < 16) for image, label in
               zip(images, labels, strict=True)]
    marked = [np.where(mask, 7, label) for mask, label in zip(ignored, labels, strict=True)]
    description = {"labels": {"background": 0, "lesion": 1, "ignore": 7}}
    data = _write(tmp_path / "data", images, marked, description)
    result, report = _audit(models["two"], data, tmp_path)
    assert result.exit_code == 0, result.output
    expected = np.mean([_dice((i > 0) & ~m, lab == 1) for i, m, lab in
                        zip(images, ignored, labels, strict=True)])
    assert report["summary"]["clean"]["dice"]["mean"] == pytest.approx(expected, abs=1e-6)
    assert report["settings"]["labels"]["names"] == {"0": "background", "1": "lesion"}
    assert "1 (lesion):" in result.output


def test_threshold_and_activation_overrides(models, tmp_path):
    images, labels = _cases(32)
    data = _write(tmp_path / "data", images, labels)
    result, report = _audit(models["sigmoid"], data, tmp_path, "--threshold", 0.9)
    assert result.exit_code == 0, result.output
    # sigmoid(10 x) >= 0.9 where x >= ln(9) / 10
    expected = np.mean([_dice(i >= np.log(9) / 10, lab == 1) for i, lab in zip(images, labels, strict=True)])
    assert report["summary"]["clean"]["dice"]["mean"] == pytest.approx(expected, abs=1e-6)
    assert report["model"]["graph"]["threshold"] == 0.9
    assert report["model"]["graph"]["sources"]["threshold"] == "override"
    result, _ = _audit(models["two"], data, tmp_path, "--threshold", 0.9)
    assert result.exit_code == 2 and "one-channel output" in result.output
    result, _ = _audit(models["sigmoid"], data, tmp_path, "--activation", "softmax")
    assert result.exit_code == 2 and "use sigmoid" in result.output
    result, _ = _audit(models["two"], data, tmp_path, "--output", "logits")
    assert result.exit_code == 2 and "outputs: 0=out" in result.output


def test_label_map_survives_the_json_round_trip_of_a_resumable_header():
    from segrob.audit import AuditOptions

    settings = AuditOptions(overrides={"label_map": {"2": 1}}).to_dict()
    assert json.loads(json.dumps(settings)) == settings
    assert label_plan(2, DatasetLabels({}), {"2": 1}, "data").mapping == {2: 1}
