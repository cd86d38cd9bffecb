"""Metrics against brute-force definitions, the empty-mask policy, calibration and CIs."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from scipy import ndimage

from segrob.metrics import (
    assd,
    bootstrap_ci,
    case_metrics,
    dice,
    expected_calibration_error,
    hd95,
    image_diagonal,
    iou,
    mean_entropy,
    nsd,
    paired_bootstrap_ci,
    surface,
    surface_distances,
)


def brute_surface(mask):
    """Surface by definition: a mask voxel with a face neighbour outside the mask or the image."""
    padded = np.pad(mask, 1)
    out = np.zeros_like(mask)
    for index in zip(*np.nonzero(mask), strict=True):
        for axis in range(mask.ndim):
            for step in (-1, 1):
                neighbour = list(np.array(index) + 1)
                neighbour[axis] += step
                if not padded[tuple(neighbour)]:
                    out[index] = True
    return out


def brute_distances(pred, gt, spacing):
    sp = np.array(spacing)
    a = np.argwhere(brute_surface(pred)) * sp
    b = np.argwhere(brute_surface(gt)) * sp
    pairwise = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
    return pairwise.min(axis=1), pairwise.min(axis=0)


def random_mask(rng, shape, p=0.35):
    mask = ndimage.binary_opening(rng.random(shape) < p) | (rng.random(shape) < 0.03)
    mask[tuple(s // 2 for s in shape)] = True
    return mask


CASES = [((24, 20), (0.7, 1.3)), ((10, 12, 9), (0.5, 1.0, 2.0))]


@pytest.mark.parametrize(("shape", "spacing"), CASES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_distances_match_brute_force(shape, spacing, seed):
    rng = np.random.default_rng(seed)
    pred, gt = random_mask(rng, shape), random_mask(rng, shape)
    np.testing.assert_array_equal(surface(pred), brute_surface(pred))
    d_pg, d_gp = brute_distances(pred, gt, spacing)
    expected_hd95 = max(np.percentile(d_pg, 95), np.percentile(d_gp, 95))
    assert hd95(pred, gt, spacing=spacing) == pytest.approx(expected_hd95)
    assert assd(pred, gt, spacing=spacing) == pytest.approx(np.concatenate([d_pg, d_gp]).mean())
    tolerance = 1.5
    within = (d_pg <= tolerance).sum() + (d_gp <= tolerance).sum()
    expected_nsd = within / (d_pg.size + d_gp.size)
    assert nsd(pred, gt, spacing=spacing, tolerance_mm=tolerance) == pytest.approx(expected_nsd)
    both, union = (pred & gt).sum(), (pred | gt).sum()
    assert dice(pred, gt) == pytest.approx(2 * both / (pred.sum() + gt.sum()))
    assert iou(pred, gt) == pytest.approx(both / union)


@pytest.mark.parametrize("seed", [0, 1])
def test_distances_equal_distance_transforms_voxel_by_voxel(seed):
    """The k-d tree gives, per surface voxel and in the same order, the exact Euclidean distance
    transform of the whole image (the textbook method), including voxels on both surfaces."""
    rng = np.random.default_rng(seed)
    shape, spacing = (31, 27, 22), (0.8, 1.1, 2.5)
    pred, gt = random_mask(rng, shape, p=0.5), random_mask(rng, shape, p=0.5)
    pred[:8] = gt[:8] = False  # the bounding box does not cover the whole image
    structure = ndimage.generate_binary_structure(3, 1)
    s_pred = pred & ~ndimage.binary_erosion(pred, structure=structure, border_value=0)
    s_gt = gt & ~ndimage.binary_erosion(gt, structure=structure, border_value=0)
    assert (s_pred & s_gt).any() and (s_pred & ~s_gt).any()
    to_gt, to_pred = surface_distances(pred, gt, spacing=spacing)
    np.testing.assert_allclose(
        to_gt, ndimage.distance_transform_edt(~s_gt, sampling=spacing)[s_pred], rtol=1e-12)
    np.testing.assert_allclose(
        to_pred, ndimage.distance_transform_edt(~s_pred, sampling=spacing)[s_gt], rtol=1e-12)


def test_cropping_keeps_the_border_rule():
    """A small mask in a corner (touching the border) and one far from it."""
    pred = np.zeros((40, 40), bool)
    gt = np.zeros((40, 40), bool)
    pred[0:5, 0:6] = True
    gt[20:30, 22:31] = True
    d_pg, d_gp = brute_distances(pred, gt, (1.0, 1.0))
    assert hd95(pred, gt, spacing=(1, 1)) == pytest.approx(max(np.percentile(d_pg, 95),
                                                               np.percentile(d_gp, 95)))
    full = np.ones((6, 6), bool)
    assert surface(full).sum() == 20  # the ring at the image border


@pytest.mark.parametrize("shape", [(7,), (1, 1), (9, 11), (1, 30), (30, 1), (6, 7, 8), (3, 1, 9),
                                   (2, 3, 4, 5)])
def test_the_crop_is_the_bounding_box_plus_one_voxel(shape):
    """The box, found axis by axis from reduced profiles, is the one the voxels' indices span."""
    box = importlib.import_module("segrob.metrics.surface")._box
    rng = np.random.default_rng(len(shape) * 100 + shape[-1])
    for _ in range(30):
        union = rng.random(shape) < rng.random() * 0.2
        union.flat[rng.integers(union.size)] = True
        indices = np.argwhere(union)
        expected = tuple(slice(max(int(low) - 1, 0), min(int(high) + 2, n)) for low, high, n
                         in zip(indices.min(axis=0), indices.max(axis=0), shape, strict=True))
        assert box(union) == expected


def test_anisotropic_spacing_scales_distances():
    pred = np.zeros((30, 30), bool)
    gt = np.zeros((30, 30), bool)
    pred[10:20, 10:20] = True
    gt[10:20, 13:23] = True  # shifted by 3 voxels along axis 1
    assert hd95(pred, gt, spacing=(1.0, 1.0)) == pytest.approx(3.0)
    assert hd95(pred, gt, spacing=(1.0, 2.0)) == pytest.approx(6.0)
    assert hd95(pred, gt, spacing=(5.0, 1.0)) == pytest.approx(3.0)


def test_empty_mask_policy():
    empty = np.zeros((8, 10), bool)
    some = empty.copy()
    some[2:4, 2:4] = True
    spacing = (2.0, 1.0)
    diagonal = image_diagonal((8, 10), spacing)
    assert diagonal == pytest.approx(np.hypot(16, 10))
    nothing = np.zeros((8, 10), int)
    both = case_metrics(nothing, nothing, spacing=spacing, classes=[1])
    assert both.per_class[1].to_dict() == {
        "dice": 1.0, "iou": 1.0, "hd95": 0.0, "assd": 0.0, "nsd": 1.0,
        "sensitivity": 1.0, "precision": 1.0, "empty": "both",
    }
    missed = case_metrics(empty.astype(int), some.astype(int), spacing=spacing, classes=[1])
    assert missed.per_class[1].dice == 0.0 and missed.per_class[1].empty == "pred"
    assert missed.per_class[1].hd95 == pytest.approx(diagonal)
    assert missed.per_class[1].assd == pytest.approx(diagonal)
    assert missed.empty_counts == {"both": 0, "pred": 1, "gt": 0}
    hallucinated = case_metrics(some.astype(int), empty.astype(int), spacing=spacing, classes=[1])
    assert hallucinated.per_class[1].empty == "gt" and hallucinated.per_class[1].nsd == 0.0
    assert hd95(empty, some, spacing=spacing) == pytest.approx(diagonal)
    assert nsd(empty, empty, spacing=spacing, tolerance_mm=1) == 1.0
    assert dice(empty, empty) == 1.0 and iou(empty, some) == 0.0


def test_single_voxel_and_full_image():
    one = np.zeros((5, 5, 5), bool)
    one[2, 2, 2] = True
    assert hd95(one, one, spacing=(1, 1, 1)) == 0.0
    assert dice(one, one) == 1.0
    full = np.ones((5, 5, 5), bool)
    result = case_metrics(full.astype(int), full.astype(int), spacing=(1, 1, 1), classes=[1])
    assert result.mean["dice"] == 1.0 and result.mean["hd95"] == 0.0


def test_multiclass_mean_over_foreground_and_missing_class():
    gt = np.zeros((12, 12), int)
    gt[1:5, 1:5] = 1
    pred = gt.copy()
    pred[8:10, 8:10] = 2  # class 2 predicted but absent from the label
    result = case_metrics(pred, gt, spacing=(1, 1), classes=[1, 2, 3])
    assert result.per_class[1].dice == 1.0
    assert result.per_class[2].dice == 0.0 and result.per_class[2].empty == "gt"
    assert result.per_class[3].empty == "both" and result.per_class[3].dice == 1.0
    assert result.mean["dice"] == pytest.approx(2 / 3)


def test_calibration_and_entropy():
    label = np.array([[0, 1], [1, 0]])
    perfect = np.stack([label == 0, label == 1]).astype(float)
    assert expected_calibration_error(perfect, label) == pytest.approx(0.0)
    wrong = np.stack([label == 1, label == 0]).astype(float) * 0.98 + 0.01
    assert expected_calibration_error(wrong, label) == pytest.approx(0.99)
    uniform = np.full((4, 3, 3), 0.25)
    assert mean_entropy(uniform) == pytest.approx(np.log(4))
    assert mean_entropy(perfect) == pytest.approx(0.0)


def test_bootstrap_intervals():
    rng = np.random.default_rng(0)
    small = rng.normal(0.8, 0.1, 10)
    large = rng.normal(0.8, 0.1, 400)
    low, high = bootstrap_ci(small)
    assert low < small.mean() < high
    low_l, high_l = bootstrap_ci(large)
    assert (high_l - low_l) < (high - low)
    assert bootstrap_ci(small, seed=3) == bootstrap_ci(small, seed=3)
    clean = rng.normal(0.9, 0.05, 30)
    perturbed = clean - 0.1 + rng.normal(0, 0.01, 30)
    low_d, high_d = paired_bootstrap_ci(clean, perturbed)
    assert low_d < (perturbed - clean).mean() < high_d < 0
    assert high_d - low_d < 0.01  # pairing removes the between-case spread of 0.05
