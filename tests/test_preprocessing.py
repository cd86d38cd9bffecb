"""The preprocessing spec: intensity schemes, validation, files and flags, export metadata, and the
audit's resampling to a target spacing and back (issue 11, item 2)."""

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

from segrob.audit.inference import InferencePlan, predict
from segrob.data import write_array
from segrob.data.case import Case
from segrob.data.normalize import check_normalization, normalize
from segrob.errors import SegrobError, UsageError
from segrob.metrics import case_metrics
from segrob.onnx.metadata import build_metadata, check_metadata, parse_metadata_props, set_metadata
from segrob.preprocessing import (
    PreprocessingSpec,
    canonical_case,
    load_preprocessing,
    model_preprocessing,
    spec_from_options,
)
from segrob.report import load_report

CT = {"method": "ct-window", "level": 40.0, "width": 400.0, "range": [-1.0, 1.0]}
SPEC = PreprocessingSpec(intensity=CT, target_spacing=(1.0, 1.0, 3.0), orientation="ras")
runner = CliRunner()


def test_intensity_schemes_follow_their_formulas():
    x = torch.tensor([-1000.0, -160.0, 40.0, 240.0, 3000.0]).view(1, 1, 5)
    window = normalize(x, {"method": "ct-window", "level": 40, "width": 400})
    assert window.flatten().tolist() == pytest.approx([0.0, 0.0, 0.5, 1.0, 1.0])
    assert normalize(x, CT).flatten().tolist() == pytest.approx([-1.0, -1.0, 0.0, 1.0, 1.0])
    fixed = normalize(x, {"method": "fixed", "mean": 40, "std": 200, "clip": [-160, 240]})
    assert fixed.flatten().tolist() == pytest.approx([-1.0, -1.0, 0.0, 1.0, 1.0])
    ramp = torch.arange(101.0).view(1, 1, 101)
    clipped = normalize(ramp, {"method": "percentile", "lower": 10, "upper": 90}).flatten()
    assert clipped[10].item() == pytest.approx(0.0) and clipped[90].item() == pytest.approx(1.0)
    assert clipped[50].item() == pytest.approx(0.5) and clipped[0] == 0 and clipped[100] == 1


@pytest.mark.parametrize(("spec", "words"), [
    ({"method": "ct-window", "level": 40}, "width is required"),
    ({"method": "ct-window", "level": 40, "width": 0}, "width must be > 0, got 0"),
    ({"method": "ct-window", "level": 40, "width": 9, "range": [0, 2]}, "[0, 1] or [-1, 1]"),
    ({"method": "fixed", "mean": 0, "std": -1}, "std must be > 0"),
    ({"method": "percentile", "lower": 50, "upper": 20}, "0 <= lower < upper <= 100"),
    ({"method": "zscore", "level": 3}, "unknown parameter(s) level"),
    ({"method": "minmax"}, "valid: zscore, fixed, ct-window"),
])
def test_bad_intensity_specs_say_what_is_valid(spec, words):
    with pytest.raises(SegrobError) as caught:
        check_normalization(spec)
    assert words in str(caught.value)


def test_spec_validation_names_the_range():
    with pytest.raises(SegrobError, match=r"target_spacing must be 2 or 3 numbers in mm, each in \[1e-05"):
        PreprocessingSpec(target_spacing=(1.0, 0.0, 3.0))
    with pytest.raises(SegrobError, match="orientation 'lps' is not one of as-stored, ras"):
        PreprocessingSpec(orientation="lps")
    with pytest.raises(SegrobError, match=r"permutation of 0\.\.C-1"):
        PreprocessingSpec(channel_order=(0, 2))
    with pytest.raises(SegrobError, match="unknown key 'spacing'"):
        PreprocessingSpec.from_dict({"spacing": [1, 1]})
    assert PreprocessingSpec.from_dict(SPEC.to_dict()) == SPEC
    assert "ct-window (level 40, width 400, range [-1, 1]); 1 x 1 x 3 mm" in SPEC.describe()


def test_spec_files_and_flags(tmp_path: Path):
    toml = tmp_path / "spec.toml"
    toml.write_text('target_spacing = [1.0, 1.0, 3.0]\norientation = "ras"\n'
                    '[intensity]\nmethod = "ct-window"\nlevel = 40\nwidth = 400\nrange = [-1, 1]\n')
    assert load_preprocessing(toml) == SPEC
    as_json = tmp_path / "spec.json"
    as_json.write_text(json.dumps(SPEC.to_dict()))
    assert load_preprocessing(as_json) == SPEC
    bad = tmp_path / "bad.toml"
    bad.write_text('orientation = "up"\n')
    with pytest.raises(SegrobError, match=r"bad.toml: preprocessing: orientation 'up'"):
        load_preprocessing(bad)
    assert spec_from_options(None) is None
    flags = spec_from_options(toml, window_width=80, target_spacing="0.5,0.5,2")
    assert flags.intensity["width"] == 80 and flags.intensity["level"] == 40
    assert flags.target_spacing == (0.5, 0.5, 2.0) and flags.orientation == "ras"
    assert spec_from_options(window_level=40, window_width=400).intensity["method"] == "ct-window"
    with pytest.raises(UsageError, match="width is required"):
        spec_from_options(intensity="ct-window", window_level=40)
    with pytest.raises(UsageError, match="go with --intensity ct-window"):
        spec_from_options(intensity="zscore", window_level=40)
    with pytest.raises(UsageError, match="--target-spacing takes mm per axis"):
        spec_from_options(target_spacing="1x1")


class _Net:
    spatial_dims, in_channels, out_channels = 3, 1, 2


def test_spec_round_trips_through_export_metadata_a_file_and_the_report(tmp_path: Path):
    metadata = build_metadata(_Net(), {"preprocessing": SPEC.to_dict()}, precision="fp32",
                              dynamic_axes={}, versions={})
    proto = set_metadata(identity_model(), metadata)
    values, bad = parse_metadata_props({p.key: p.value for p in proto.metadata_props})
    assert not bad and check_metadata(values, "m.onnx") == values
    assert model_preprocessing(values) == SPEC
    assert values["normalization"] == SPEC.intensity  # readers that predate the spec
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(values["preprocessing"]))
    assert load_preprocessing(spec_file) == SPEC
    # An export before the spec states only its normalisation: it still means the same.
    assert model_preprocessing({"normalization": {"method": "robust-minmax"}}) == \
        PreprocessingSpec(intensity={"method": "robust-minmax"})
    with pytest.raises(SegrobError, match=r"segrob\.preprocessing is"):
        check_metadata({"preprocessing": {"orientation": "up"}}, "m.onnx")
    model = tmp_path / "m.onnx"
    onnx.save(proto, model)
    data = box_data(tmp_path / "data", spacing=(1.0, 1.0, 3.0))
    # the window [0, 1] scaled to [-1, 1]: the mask becomes -1 and 1, which the model splits
    report = audit(model, data, tmp_path / "r.json", "--window-level", "0.5", "--window-width", "1")
    recorded = PreprocessingSpec.from_dict(report.settings["preprocessing"])
    # The flags replaced the window of the model's own spec and kept the rest of it.
    assert recorded == PreprocessingSpec(intensity={**CT, "level": 0.5, "width": 1.0},
                                         target_spacing=SPEC.target_spacing, orientation="ras")
    assert report.records[0]["metrics"]["dice"] == pytest.approx(1.0, abs=0.01)


def identity_model() -> onnx.ModelProto:
    """(N, 1, D, H, W) -> logits (0.5 - x, x - 0.5): the input thresholded at 0.5."""
    weight = numpy_helper.from_array(np.array([-1.0, 1.0], np.float32).reshape(2, 1, 1, 1, 1), "w")
    bias = numpy_helper.from_array(np.array([0.5, -0.5], np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "w", "b"], ["logits"])], "identity",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, "D", "H", "W"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2, "D", "H", "W"])],
        [weight, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    return model


def box_mask(shape=(24, 20, 8)) -> np.ndarray:
    """A box on even voxel boundaries: resampling by 2 and back loses nothing but the rounding
    at its edges, so Dice 1 within resampling error is a tight bound."""
    mask = np.zeros(shape, np.int32)
    mask[4:18, 4:14, 2:6] = 1
    return mask


def box_data(root: Path, spacing) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    mask = box_mask()
    write_array(root / "images" / "c0.npz", mask.astype(np.float32), spacing)
    write_array(root / "labels" / "c0.npz", mask.astype(np.uint8), spacing)
    return root


def audit(model: Path, data: Path, out: Path, *extra: str):
    suite = out.parent / "suite.json"
    suite.write_text(json.dumps({"name": "one", "perturbation": [{"name": "contrast", "severities": [1]}]}))
    result = runner.invoke(app, ["audit", str(model), "--data", str(data), "--suite", str(suite),
                                 "--out", str(out), "--in-channels", "1", *extra],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return load_report(out)


def _identity_run(batch) -> np.ndarray:
    x = batch.cpu().numpy() if isinstance(batch, torch.Tensor) else batch
    return np.concatenate([0.5 - x, x - 0.5], axis=1)


@pytest.mark.parametrize(("spacing", "target"), [((1.0, 1.0, 3.0), (1.0, 1.0, 1.0)),
                                                 ((0.5, 0.5, 1.0), (1.0, 1.0, 1.0))])
def test_resampling_in_and_back_scores_an_identity_model_at_dice_one(spacing, target):
    mask = box_mask()
    seen = []

    def run(batch):
        seen.append(tuple(batch.shape[2:]))
        return _identity_run(batch)

    plan = InferencePlan(spatial_dims=3, in_channels=1, normalization={"method": "none"},
                         size_multiple=1, preprocessing=PreprocessingSpec(target_spacing=target))
    logits = predict(torch.from_numpy(mask[None, None].astype(np.float32)), plan, run, spacing=spacing)
    assert seen[0] == tuple(round(n * s / t) for n, s, t in zip(mask.shape, spacing, target, strict=True))
    assert logits.shape == (1, 2, *mask.shape)
    dice = case_metrics(logits[0].argmax(0), mask, spacing=spacing, classes=[1]).to_dict()["mean"]["dice"]
    assert dice == pytest.approx(1.0, abs=0.01)


def test_the_audit_resamples_to_the_target_spacing_and_scores_on_the_label_grid(tmp_path: Path):
    model = tmp_path / "id.onnx"
    onnx.save(set_metadata(identity_model(), {"spatial_dims": 3, "in_channels": 1, "out_channels": 2}),
              model)
    data = box_data(tmp_path / "data", spacing=(0.5, 0.5, 2.0))
    report = audit(model, data, tmp_path / "r.json", "--intensity", "none", "--target-spacing", "1,1,1")
    assert report.settings["preprocessing"]["target_spacing"] == [1.0, 1.0, 1.0]
    clean = [r for r in report.records if r["perturbation"] == "clean"]
    assert clean[0]["metrics"]["dice"] == pytest.approx(1.0, abs=0.01)
    # Without a spec the model's own (none stated: z-score) applies, at the images' own spacing.
    plain = audit(model, data, tmp_path / "p.json")
    assert plain.settings["preprocessing"]["target_spacing"] is None
    assert plain.settings["preprocessing"]["intensity"] == {"method": "zscore"}


def test_ras_orientation_turns_nifti_cases_and_leaves_others(tmp_path: Path):
    import nibabel as nib

    mask = box_mask()
    affine = np.diag([-2.0, 1.0, 3.0, 1.0])  # x flipped (L to R stored as R to L)
    affine = affine[:, [1, 0, 2, 3]]  # and the first two array axes swapped
    path = tmp_path / "c.nii.gz"
    nib.save(nib.Nifti1Image(mask.astype(np.float32), affine), str(path))
    case = Case("c", mask[None].astype(np.float32), mask, (1.0, 2.0, 3.0), {"image": str(path)})
    turned = canonical_case(case, PreprocessingSpec(orientation="ras"))
    expected = np.asarray(nib.as_closest_canonical(nib.load(str(path))).dataobj)
    assert np.array_equal(turned.image[0], expected) and np.array_equal(turned.label, expected)
    assert turned.spacing == (2.0, 1.0, 3.0)
    assert canonical_case(case, PreprocessingSpec()) is case
    npz = Case("n", case.image, mask, case.spacing, {"image": str(tmp_path / "c.npz")})
    assert canonical_case(npz, PreprocessingSpec(orientation="ras")) is npz


def test_check_shows_the_preprocessing(tmp_path: Path):
    model = tmp_path / "m.onnx"
    onnx.save(set_metadata(identity_model(), {"format": "segrob-onnx/1", "spatial_dims": 3,
                                              "preprocessing": SPEC.to_dict()}), model)
    shown = runner.invoke(app, ["check", str(model), "--runs", "1", "--json"])
    assert json.loads(shown.stdout)["preprocessing"]["spec"] == SPEC.to_dict()
    spec = tmp_path / "s.json"
    spec.write_text(json.dumps({"intensity": "none"}))
    table = runner.invoke(app, ["check", str(model), "--runs", "1", "--preprocessing", str(spec)],
                          env={"COLUMNS": "200"})
    assert "preprocessing: none; own spacing; orientation as-stored (from --preprocessing)" in table.stdout


def test_a_spec_that_does_not_fit_the_model_is_one_line(tmp_path: Path):
    model = tmp_path / "id.onnx"
    onnx.save(set_metadata(identity_model(), {"spatial_dims": 3, "in_channels": 1, "out_channels": 2}),
              model)
    data = box_data(tmp_path / "data", spacing=(1.0, 1.0, 1.0))
    for extra, code, words in (
            (["--target-spacing", "1,1"], 1, "target_spacing has 2 values; the model is 3D"),
            (["--target-spacing", "1,0,1"], 2, "target_spacing must be 2 or 3 numbers"),
            (["--orientation", "lps"], 2, "orientation 'lps' is not one of")):
        result = runner.invoke(app, ["audit", str(model), "--data", str(data), "--in-channels", "1",
                                     *extra], env={"COLUMNS": "200"})
        assert result.exit_code == code and words in result.output, result.output
        assert "Traceback" not in result.output


def test_a_segrob_export_carries_the_spec_of_its_run(tmp_path: Path):
    from segrob.models import create_model
    from segrob.onnx.export import export_model
    from segrob.onnx.session import read_metadata

    torch.manual_seed(0)
    spec = PreprocessingSpec(intensity=CT, target_spacing=(0.8, 2.0))
    model = create_model("unet", spatial_dims=2, in_channels=1, out_channels=2, channels=(4, 8))
    export_model(model, tmp_path / "m.onnx", config={"preprocessing": spec.to_dict()})
    metadata = read_metadata(tmp_path / "m.onnx")
    assert model_preprocessing(metadata) == spec and metadata["normalization"] == CT
