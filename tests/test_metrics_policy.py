"""Cropping against the uncropped computation, the 0/0 ratios, input checks and reductions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

import segrob.metrics.stats as stats_module
from segrob.errors import SegrobError
from segrob.metrics import (
    aggregate,
    assd,
    bootstrap_ci,
    case_metrics,
    class_metrics,
    expected_calibration_error,
    hd95,
    image_diagonal,
    mean_entropy,
    nsd,
    precision,
    sensitivity,
    surface_distances,
)


def uncropped_distances(pred, gt, spacing):
    """The definition on the whole image: erosion with border_value=0, EDT of ~S over the image."""
    structure = ndimage.generate_binary_structure(pred.ndim, 1)
    s_pred = pred & ~ndimage.binary_erosion(pred, structure=structure, border_value=0)
    s_gt = gt & ~ndimage.binary_erosion(gt, structure=structure, border_value=0)
    to_gt = ndimage.distance_transform_edt(~s_gt, sampling=spacing)
    to_pred = ndimage.distance_transform_edt(~s_pred, sampling=spacing)
    return to_gt[s_pred], to_pred[s_gt]


def _box(shape, corner, size):
    mask = np.zeros(shape, bool)
    mask[tuple(slice(c, c + s) for c, s in zip(corner, size, strict=True))] = True
    return mask


@pytest.mark.parametrize(
    ("pred_corner", "gt_corner"),
    [
        ((0, 0, 0), (5, 6, 4)),  # prediction in the low corner, touching three faces
        ((11, 10, 9), (3, 3, 3)),  # prediction in the high corner, touching the other three
        ((6, 6, 5), (6, 7, 5)),  # both inside: the margin is background on every side
        ((0, 4, 9), (11, 0, 0)),  # each touches different faces
    ],
)
def test_cropping_matches_the_uncropped_computation(pred_corner, gt_corner):
    shape, spacing = (16, 15, 14), (0.5, 1.0, 2.0)
    pred = _box(shape, pred_corner, (5, 5, 5))
    gt = _box(shape, gt_corner, (4, 5, 5))
    gt[gt_corner] = False  # a notch, so the surfaces are not plain boxes
    ours = surface_distances(pred, gt, spacing=spacing)
    reference = uncropped_distances(pred, gt, spacing)
    # surface voxels come out in C order either way, so the arrays must match element-wise
    for got, expected in zip(ours, reference, strict=True):
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_full_image_against_an_inner_box():
    """A mask filling the image has surface only on the image border; the crop keeps that."""
    full = np.ones((9, 9), bool)
    inner = _box((9, 9), (3, 3), (3, 3))
    to_gt, to_pred = surface_distances(full, inner, spacing=(1.0, 1.0))
    assert to_gt.size == 32 and to_pred.size == 8  # 9x9 ring, 3x3 ring
    assert to_pred.min() == pytest.approx(3.0)  # inner ring to the image border
    assert hd95(full, inner, spacing=(1, 1)) == pytest.approx(
        max(np.percentile(to_gt, 95), np.percentile(to_pred, 95))
    )


def test_anisotropic_spacing_in_3d():
    shape = (12, 12, 12)
    gt = _box(shape, (3, 3, 3), (5, 5, 5))
    for axis, step in enumerate((0.5, 1.0, 2.0)):
        corner = [3, 3, 3]
        corner[axis] += 2
        pred = _box(shape, tuple(corner), (5, 5, 5))
        assert hd95(pred, gt, spacing=(0.5, 1.0, 2.0)) == pytest.approx(2 * step)
        assert hd95(pred, gt, spacing=(1.0, 1.0, 1.0)) == pytest.approx(2.0)


def test_class_metrics_agree_with_the_single_functions():
    rng = np.random.default_rng(5)
    pred = ndimage.binary_dilation(rng.random((14, 13, 12)) < 0.05)
    gt = ndimage.binary_dilation(rng.random((14, 13, 12)) < 0.05)
    spacing = (0.5, 1.0, 2.0)
    m = class_metrics(pred, gt, spacing=spacing, nsd_tolerance_mm=1.0)
    assert m.empty == "none"
    assert m.hd95 == pytest.approx(hd95(pred, gt, spacing=spacing))
    assert m.assd == pytest.approx(assd(pred, gt, spacing=spacing))
    assert m.nsd == pytest.approx(nsd(pred, gt, spacing=spacing, tolerance_mm=1.0))
    assert m.sensitivity == pytest.approx((pred & gt).sum() / gt.sum())
    assert m.precision == pytest.approx((pred & gt).sum() / pred.sum())


def test_zero_over_zero_ratios():
    empty = np.zeros((6, 6), bool)
    some = _box((6, 6), (1, 1), (2, 2))
    # only the prediction empty: sensitivity 0/|G| = 0, precision 0/0 -> 0 (a miss)
    assert sensitivity(empty, some) == 0.0 and precision(empty, some) == 0.0
    # only the label empty: precision 0/|P| = 0, sensitivity 0/0 -> 0 (a false alarm)
    assert sensitivity(some, empty) == 0.0 and precision(some, empty) == 0.0
    assert sensitivity(empty, empty) == 1.0 and precision(empty, empty) == 1.0
    half = _box((6, 6), (1, 1), (2, 1))
    assert sensitivity(half, some) == 0.5 and precision(half, some) == 1.0


def test_mean_leaves_out_background_and_counts_empties():
    gt = np.zeros((10, 10), int)
    gt[2:6, 2:6] = 1
    pred = np.zeros_like(gt)  # class 1 missed entirely
    result = case_metrics(pred, gt, spacing=(1, 1), classes=[0, 1, 2])
    assert set(result.per_class) == {0, 1, 2}
    assert result.per_class[0].dice < 1.0  # scored ...
    assert result.mean["dice"] == pytest.approx(0.5)  # ... but only classes 1 and 2 averaged
    assert result.mean["hd95"] == pytest.approx(image_diagonal((10, 10), (1, 1)) / 2)
    assert result.empty_counts == {"both": 1, "pred": 1, "gt": 0}
    as_dict = result.to_dict()
    assert as_dict["per_class"][1]["empty"] == "pred" and as_dict["ece"] is None


def test_case_metrics_with_probabilities():
    gt = np.zeros((8, 8), int)
    gt[2:5, 2:5] = 1
    probabilities = np.stack([gt == 0, gt == 1]).astype(float)
    result = case_metrics(gt, gt, spacing=(1, 1), classes=[1], probabilities=probabilities)
    assert result.ece == pytest.approx(0.0) and result.entropy == pytest.approx(0.0)
    assert result.mean["dice"] == 1.0


def test_ece_by_hand_and_binning():
    label = np.array([1, 0, 1, 1])
    p1 = np.array([0.9, 0.9, 0.6, 0.6])
    probabilities = np.stack([1 - p1, p1])
    # bin 0.9: accuracy 1/2, confidence 0.9; bin 0.6: accuracy 1, confidence 0.6
    assert expected_calibration_error(probabilities, label, n_bins=10) == pytest.approx(0.4)
    # one bin pools them: accuracy 0.75 = mean confidence 0.75
    assert expected_calibration_error(probabilities, label, n_bins=1) == pytest.approx(0.0)
    assert mean_entropy(np.full((3, 5), 1 / 3)) == pytest.approx(np.log(3))


@pytest.mark.parametrize(
    "call",
    [
        lambda: hd95(np.ones((4, 4)), np.ones((4, 5)), spacing=(1, 1)),
        lambda: hd95(np.ones((4, 4)), np.ones((4, 4)), spacing=(1, 1, 1)),
        lambda: assd(np.ones((4, 4)), np.ones((4, 4)), spacing=(1, 0)),
        lambda: nsd(np.ones((4, 4)), np.ones((4, 4)), spacing=(1, 1), tolerance_mm=-1),
        lambda: case_metrics(np.zeros((4, 4)), np.zeros((4, 4)), spacing=(1, 1), classes=[0]),
        lambda: case_metrics(np.zeros((4, 4)), np.zeros((4, 4)), spacing=(1, 1), classes=[1, 1]),
        lambda: case_metrics(np.zeros((4, 4)), np.zeros((5, 4)), spacing=(1, 1), classes=[1]),
        lambda: expected_calibration_error(np.ones((2, 3, 3)) / 2, np.zeros((3, 4))),
        lambda: expected_calibration_error(np.ones((2, 3)) / 2, np.zeros(3), n_bins=0),
        lambda: bootstrap_ci([]),
        lambda: bootstrap_ci([1.0, float("nan")]),
        lambda: bootstrap_ci([1.0, 2.0], confidence=1.0),
        lambda: aggregate([1.0], reduction="sum"),
    ],
)
def test_bad_input_raises_a_clear_error(call):
    with pytest.raises(SegrobError):
        call()


def test_aggregate_reductions():
    values = [0.2, 0.9, 0.4]
    assert aggregate(values, reduction="mean") == pytest.approx(0.5)
    assert aggregate(values, reduction="median") == pytest.approx(0.4)
    np.testing.assert_array_equal(aggregate(values, reduction="none"), values)


def test_bootstrap_in_blocks(monkeypatch):
    """Many cases are resampled in blocks; the interval still brackets the mean."""
    values = np.random.default_rng(1).normal(0.7, 0.2, 300)
    whole = bootstrap_ci(values, n_resamples=500)
    monkeypatch.setattr(stats_module, "_BOOTSTRAP_BLOCK", 300 * 7)  # 7 resamples per block
    low, high = bootstrap_ci(values, n_resamples=500)
    assert low < values.mean() < high
    assert (high - low) == pytest.approx(whole[1] - whole[0], rel=0.25)
    assert bootstrap_ci([0.3], n_resamples=10) == (0.3, 0.3)


def test_shared_resamples_give_the_intervals_of_a_fresh_draw():
    """Intervals of one size and seed share one draw of resampled cases: the same numbers as a
    fresh draw each time, and the shared draw cannot be written to."""
    rng = np.random.default_rng(4)
    for n in (3, 16, 40):
        values = rng.random(n)
        drawn = np.random.default_rng(7).integers(0, n, size=(2000, n))
        assert np.array_equal(stats_module._resampled_means(values, 2000, 7), values[drawn].mean(1))
        assert bootstrap_ci(values, seed=7) == bootstrap_ci(values.copy(), seed=7)
    with pytest.raises(ValueError):
        stats_module._resample_indices(16, 2000, 7)[0, 0] = 1
