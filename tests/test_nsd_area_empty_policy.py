"""The area-weighted (DeepMind) NSD and the nnU-Net empty-mask policy, by hand and against MONAI."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import ndimage

from segrob.audit.aggregate import summarise
from segrob.audit.records import CLEAN, CellRecord
from segrob.errors import SegrobError
from segrob.metrics import case_metrics, class_metrics, nsd
from segrob.metrics.surfels import nsd_area, surfel_distances

DIAGONAL = math.sqrt(2) / 2  # a unit pixel's corner-cutting segment


def _mask(shape, *pixels):
    mask = np.zeros(shape, dtype=bool)
    for pixel in pixels:
        mask[pixel] = True
    return mask


def test_area_weighting_by_hand_in_2d():
    # pred is a 1x2 bar, gt its left pixel. Pred's contour: four corner cuts (diagonals) and two
    # unit edges; gt's: four corner cuts, all on pred's contour. Only pred's two right corners
    # (one diagonal each) lie 1 mm away: at t = 0.5 they are out.
    pred, gt = _mask((4, 5), (1, 1), (1, 2)), _mask((4, 5), (1, 1))
    to_gt, pred_areas, to_pred, gt_areas = surfel_distances(pred, gt, spacing=(1.0, 1.0))
    assert sorted(pred_areas) == pytest.approx(sorted([DIAGONAL] * 4 + [1.0, 1.0]))
    assert gt_areas == pytest.approx([DIAGONAL] * 4) and np.all(to_pred == 0)
    assert sorted(to_gt) == pytest.approx([0, 0, 0, 0, 1, 1])
    expected = (2 * DIAGONAL + 2 + 4 * DIAGONAL) / (8 * DIAGONAL + 2)
    assert nsd_area(pred, gt, spacing=(1, 1), tolerance_mm=0.5) == pytest.approx(expected)
    # Counting surface voxels instead: pred's two pixels and gt's one, the right pixel 1 mm off.
    assert nsd(pred, gt, spacing=(1, 1), tolerance_mm=0.5) == pytest.approx(2 / 3)


def test_corners_not_voxel_centres_carry_the_distance():
    # Two single pixels two apart: no voxel is within 1 mm, but their facing corners are.
    pred, gt = _mask((3, 6), (1, 1)), _mask((3, 6), (1, 3))
    assert nsd(pred, gt, spacing=(1, 1), tolerance_mm=1.0) == 0.0
    assert nsd_area(pred, gt, spacing=(1, 1), tolerance_mm=1.0) == pytest.approx(0.5)
    # Along the second axis the corners are 2 mm apart at spacing (1, 2).
    assert nsd_area(pred, gt, spacing=(1, 2), tolerance_mm=1.9) == 0.0
    assert nsd_area(pred, gt, spacing=(1, 2), tolerance_mm=2.1) == pytest.approx(0.5)


def test_a_box_surface_area_by_hand():
    # A 4-voxel cube at spacing (1, 2, 3) mm: flat faces between the outer voxel centres, a
    # chamfer along each edge (half the face diagonal of the two other axes wide), and a
    # triangle at each corner with vertices half a voxel along each axis.
    box = np.zeros((6, 6, 6), dtype=bool)
    box[1:5, 1:5, 1:5] = True
    spacing = np.array([1.0, 2.0, 3.0])
    length = 3 * spacing  # between the outer voxel centres
    faces = 2 * (length[1] * length[2] + length[0] * length[2] + length[0] * length[1])
    edges = 4 * sum(length[a] * 0.5 * math.hypot(*np.delete(spacing, a)) for a in range(3))
    corner = 0.5 * np.linalg.norm(np.cross([-0.5, 1.0, 0.0], [-0.5, 0.0, 1.5]))
    _, areas, _, _ = surfel_distances(box, box, spacing=tuple(spacing))
    assert areas.sum() == pytest.approx(faces + edges + 8 * corner)


def test_empty_masks_follow_the_policy_for_the_area_nsd():
    empty, dot = np.zeros((4, 4), bool), _mask((4, 4), (1, 1))
    assert nsd_area(empty, empty, spacing=(1, 1), tolerance_mm=1) == 1.0
    assert nsd_area(dot, empty, spacing=(1, 1), tolerance_mm=1) == 0.0
    with pytest.raises(SegrobError, match="2D or 3D"):
        surfel_distances(np.ones((2, 2, 2, 2), bool), np.ones((2, 2, 2, 2), bool), spacing=(1,) * 4)


def test_case_metrics_use_the_chosen_definition():
    pred, gt = _mask((4, 5), (1, 1), (1, 2)), _mask((4, 5), (1, 1))
    labels = dict(spacing=(1, 1), classes=[1], nsd_tolerance_mm=0.5)
    voxel = case_metrics(pred.astype(int), gt.astype(int), **labels)
    area = case_metrics(pred.astype(int), gt.astype(int), nsd_definition="area", **labels)
    assert voxel.mean["nsd"] == pytest.approx(2 / 3)
    assert area.mean["nsd"] == pytest.approx(nsd_area(pred, gt, spacing=(1, 1), tolerance_mm=0.5))
    assert area.mean["dice"] == voxel.mean["dice"] and area.mean["hd95"] == voxel.mean["hd95"]
    with pytest.raises(SegrobError, match="NSD definition"):
        case_metrics(pred.astype(int), gt.astype(int), nsd_definition="surfel", **labels)


def _blobs(seed: int, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return tuple(ndimage.gaussian_filter(rng.random(shape), 2) > 0.5 for _ in range(2))


# Tolerances that no corner-to-corner distance on these grids equals: MONAI works in float32.
@pytest.mark.parametrize(("shape", "spacing"), [((40, 37), (0.6, 1.9)), ((24, 22, 20), (0.7, 1.3, 2.5)),
                                                 ((20, 21, 19), (1.0, 1.0, 1.0))])
@pytest.mark.parametrize("seed", [0, 1])
def test_area_nsd_matches_monai_subvoxels(shape, spacing, seed):
    metrics = pytest.importorskip("monai.metrics")
    torch = pytest.importorskip("torch")
    pred, gt = _blobs(seed, shape)
    onehot = [torch.from_numpy(np.stack([~m, m])[None].astype(np.float32)) for m in (pred, gt)]
    for tolerance in (0.55, 1.45, 2.95):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # MONAI's own deprecation notices
            theirs = metrics.compute_surface_dice(*onehot, [tolerance], include_background=False,
                                                  spacing=list(spacing), use_subvoxels=True)
        ours = nsd_area(pred, gt, spacing=spacing, tolerance_mm=tolerance)
        assert ours == pytest.approx(float(theirs[0, 0]), abs=1e-5)


# --- the empty-mask policy ----------------------------------------------------------------------


def test_nnunet_policy_makes_both_empty_nan_and_leaves_the_rest():
    empty, dot = np.zeros((4, 4), bool), _mask((4, 4), (1, 1))
    segrob = class_metrics(empty, empty, spacing=(1, 1))
    nnunet = class_metrics(empty, empty, spacing=(1, 1), empty_policy="nnunet")
    assert segrob.dice == 1.0 and segrob.hd95 == 0.0
    assert nnunet.empty == "both" and all(math.isnan(getattr(nnunet, m)) for m in ("dice", "hd95", "nsd"))
    one_empty = class_metrics(dot, empty, spacing=(1, 1), empty_policy="nnunet")
    assert one_empty.dice == 0.0 and one_empty == class_metrics(dot, empty, spacing=(1, 1))
    with pytest.raises(SegrobError, match="empty-mask policy"):
        class_metrics(dot, dot, spacing=(1, 1), empty_policy="monai")


def test_nnunet_policy_nan_means_over_classes_and_cases():
    # Class 1 is absent from label and prediction; class 2 is half found (Dice 2/3).
    gt = np.zeros((4, 4), int)
    gt[0, :2] = 2
    pred = np.zeros((4, 4), int)
    pred[0, 0] = 2
    segrob = case_metrics(pred, gt, spacing=(1, 1), classes=[0, 1, 2])
    nnunet = case_metrics(pred, gt, spacing=(1, 1), classes=[0, 1, 2], empty_policy="nnunet")
    assert segrob.mean["dice"] == pytest.approx((1 + 2 / 3) / 2)
    assert nnunet.mean["dice"] == pytest.approx(2 / 3) and nnunet.empty_counts["both"] == 1
    nothing = case_metrics(np.zeros((4, 4), int), np.zeros((4, 4), int), spacing=(1, 1), classes=[1],
                           empty_policy="nnunet")
    assert math.isnan(nothing.mean["dice"])
    # Over cases: nnU-Net's nan-mean leaves the empty case out, segrob counts it as a 1.
    cases = [(nothing, "empty"), (nnunet, "half"), (nnunet, "again")]
    records = [CellRecord(case=name, perturbation=CLEAN, severity=0, seed=0, params={},
                          metrics=dict(result.mean)) for result, name in cases]
    assert summarise(records).clean.mean("dice") == pytest.approx(2 / 3)
    records[0].metrics = dict(case_metrics(np.zeros((4, 4), int), np.zeros((4, 4), int),
                                           spacing=(1, 1), classes=[1]).mean)
    assert summarise(records).clean.mean("dice") == pytest.approx((1 + 4 / 3) / 3)


def test_audit_records_both_choices_and_scores_by_them(tmp_path):
    import torch
    from segrob_cli.main import app
    from typer.testing import CliRunner

    from segrob.data.synth import SynthConfig, write_synthetic
    from segrob.models import create_model
    from segrob.onnx.export import export_model
    from segrob.report import load_report

    torch.manual_seed(0)
    model = create_model("unet", spatial_dims=2, in_channels=1, out_channels=2, channels=(4, 8))
    export_model(model, tmp_path / "m.onnx", config={"normalization": {"method": "zscore"}})
    write_synthetic(SynthConfig(dims=2, n=2, size=32, blend=0.1, level="low", seed=2), tmp_path / "data")
    base = ["audit", str(tmp_path / "m.onnx"), "--data", str(tmp_path / "data"), "--suite", "texture"]
    runner = CliRunner()
    chosen_options = ["--nsd-definition", "area", "--empty-policy", "nnunet"]
    for name, extra in (("default", []), ("chosen", chosen_options)):
        result = runner.invoke(app, [*base, "--out", str(tmp_path / f"{name}.json"), *extra])
        assert result.exit_code == 0, result.output
        assert ("scored with NSD weighted by surface area" in result.stdout) == bool(extra)
    default, chosen = (load_report(tmp_path / f"{n}.json") for n in ("default", "chosen"))
    assert (default.settings["nsd_definition"], default.settings["empty_policy"]) == ("voxel", "segrob")
    assert (chosen.settings["nsd_definition"], chosen.settings["empty_policy"]) == ("area", "nnunet")
    # Same predictions, so Dice agrees wherever a mask is present; NSD follows its definition.
    pairs = [(a["metrics"], b["metrics"]) for a, b in zip(default.records, chosen.records, strict=True)
             if a["empty"] == {"1": "none"}]
    assert pairs and all(a["dice"] == b["dice"] for a, b in pairs)
    assert any(a["nsd"] != b["nsd"] for a, b in pairs)
    bad = runner.invoke(app, [*base, "--empty-policy", "zero"])
    assert bad.exit_code == 2 and "segrob, nnunet" in bad.output
