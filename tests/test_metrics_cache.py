"""The scoring shortcuts give exactly the values of the plain computation."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from segrob.errors import SegrobError
from segrob.metrics import case_metrics
from segrob.metrics.calibration import class_argmax
from segrob.metrics.case import label_surfaces
from segrob.metrics.surface import LabelSurface, surface_distances


def _blobs(shape, seed):
    rng = np.random.default_rng(seed)
    grid = np.indices(shape)
    centre = np.array(shape)[(slice(None),) + (None,) * len(shape)] / 2
    radius = np.sqrt(((grid - centre) ** 2).sum(axis=0))
    gt = radius < min(shape) / 3
    pred = radius + rng.normal(0, 1.5, shape) < min(shape) / 3.2
    pred[(0,) * len(shape)] = True  # a stray voxel in the corner, far from the label
    return pred, gt


@pytest.mark.parametrize("k", [2, 3, 5])
def test_class_argmax_is_numpys_argmax_ties_and_nans_included(k):
    rng = np.random.default_rng(k)
    p = rng.integers(0, 3, size=(4, k, 9, 7)).astype(np.float32)  # many ties
    assert np.array_equal(class_argmax(p, axis=1), p.argmax(axis=1))
    p[0, -1, 0, 0] = np.nan
    assert np.array_equal(class_argmax(p, axis=1), p.argmax(axis=1))


F32 = (float(np.float32(0.7)), float(np.float32(0.3)), float(np.float32(2.2)))


@pytest.mark.parametrize("spacing, exact", [
    ((1.0, 1.0), True), ((0.5, 1.25), True), (F32[:2], True), (F32, True),
    ((0.7, 0.3), False), ((1.0, 0.8, 2.5), False), ((0.1, 0.2, 0.3), False),
])
def test_label_surface_gives_the_same_distances_to_the_last_bit(spacing, exact):
    shape = (40, 36) if len(spacing) == 2 else (20, 18, 16)
    pred, gt = _blobs(shape, seed=len(spacing))
    label = LabelSurface(gt, spacing=spacing)
    assert label.exact == exact  # float32 spacings (as NIfTI stores them) take the shared tree
    for moved in (pred, np.roll(pred, 3, axis=0), gt):
        plain = surface_distances(moved, gt, spacing=spacing)
        cached = surface_distances(moved, gt, spacing=spacing, label=label)
        for a, b in zip(plain, cached, strict=True):
            assert a.dtype == b.dtype and np.array_equal(a, b)


def test_case_metrics_with_label_surfaces_equal_the_plain_ones_and_ignore_a_stale_cache():
    pred, gt = _blobs((48, 40), seed=3)
    labels_map, pred_map = gt.astype(np.uint8), pred.astype(np.uint8)
    labels_map[:4, :4] = 2
    pred_map[2:6, 1:5] = 2
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(3), size=(48, 40)).transpose(2, 0, 1).astype(np.float32)
    kwargs = dict(spacing=(0.7, 1.1), classes=[1, 2], probabilities=probabilities)
    plain = case_metrics(pred_map, labels_map, **kwargs).to_dict()
    cache = label_surfaces(labels_map, spacing=(0.7, 1.1), classes=[1, 2])
    assert case_metrics(pred_map, labels_map, labels=cache, **kwargs).to_dict() == plain
    moved = np.roll(labels_map, 5, axis=1)  # a geometric perturbation moved the label
    assert (case_metrics(pred_map, moved, labels=cache, **kwargs).to_dict()
            == case_metrics(pred_map, moved, **kwargs).to_dict())
    assert case_metrics(pred_map, moved, **kwargs).to_dict() != plain


def _tree_distances(source, target, spacing):
    """The plain search: a k-d tree over the target's voxels, every source voxel queried."""
    from scipy.spatial import cKDTree

    scale = np.asarray(spacing)
    return cKDTree(np.argwhere(target) * scale).query(np.argwhere(source) * scale)[0]


@pytest.mark.parametrize("shape, spacing", [
    ((90, 80), (1.0, 1.0)), ((90, 80), F32[:2]),
    ((40, 36, 30), (1.0, 1.0, 1.0)), ((40, 36, 30), F32), ((40, 36, 30), (0.5, 0.5, 3.0)),
])
@pytest.mark.parametrize("shells_from", [0, None])  # shells for every lookup, or the default rule
def test_distance_shells_give_the_k_d_trees_distances_to_the_last_bit(shape, spacing, shells_from,
                                                                      monkeypatch):
    module = importlib.import_module("segrob.metrics.surface")  # the package exports a function of that name
    if shells_from is not None:
        monkeypatch.setattr(module, "SHELL_MIN_POINTS", shells_from)
    pred, gt = _blobs(shape, seed=7)
    far = tuple(slice(n - 4, n) for n in shape)
    pred[far] = True  # a block far beyond the shells' reach: the tree must answer for it
    for source, target in ((module.surface(pred), module.surface(gt)),
                           (module.surface(gt), module.surface(pred))):
        expected = _tree_distances(source & ~target, target, spacing)
        distances = module._nearest(source, target, spacing)
        assert np.array_equal(distances[(source & ~target)[source]], expected)
        assert not distances[(source & target)[source]].any()


@pytest.mark.parametrize("shape, spacing", [
    ((60, 56), (1.0, 1.0)), ((60, 56), (0.9765625, 0.9765625)), ((60, 56), (0.5, 2.5)),
    ((30, 28, 24), (1.0, 1.0, 1.0)), ((30, 28, 24), (0.5, 0.75, 2.5)),
])
def test_a_labels_distance_transform_gives_the_k_d_trees_distances_to_the_last_bit(shape, spacing,
                                                                                  monkeypatch):
    """Once a label's tree has answered enough voxels, a whole-image distance transform answers the
    predictions scored after: the same distances, for ragged predictions far from the label."""
    module = importlib.import_module("segrob.metrics.surface")
    monkeypatch.setattr(module, "PAIRWISE_MAX", 0)  # every prediction searched, none pair by pair
    gt = _blobs(shape, seed=1)[1]
    label = LabelSurface(gt, spacing=spacing)
    rng = np.random.default_rng(2)
    predictions = [rng.random(shape) < share for share in (0.002, 0.02, 0.05, 0.05, 0.01)]
    answered_by_transform = []
    for pred in predictions:
        answered_by_transform.append(label.index._transform is not None)
        pred_surface = module.surface(pred)
        expected = _tree_distances(pred_surface & ~label.surface, label.surface, spacing)
        to_gt = label.distances(pred)[0]
        assert np.array_equal(to_gt[(pred_surface & ~label.surface)[pred_surface]], expected)
    # A few voxels first, which the tree answered; thousands far from the label made the transform
    # take over for the last.
    assert not answered_by_transform[0] and answered_by_transform[-1]


@pytest.mark.parametrize("spacing, voxels, reused", [
    (F32[:2], 1 << 22, True),  # float32's 0.7 mm: squares not exact, the tree answers throughout
    ((1.0, 1.0), 100, True),  # an image larger than the transform may be
    ((1.0, 1.0), 1 << 22, False),  # a prediction's index is searched once
])
def test_no_distance_transform_where_it_would_not_give_the_same_bits_or_pay(spacing, voxels, reused,
                                                                            monkeypatch):
    module = importlib.import_module("segrob.metrics.surface")
    monkeypatch.setattr(module, "TRANSFORM_MAX_VOXELS", voxels)
    label_surface = module.surface(_blobs((60, 56), seed=1)[1])
    index = module.SurfaceIndex(label_surface, tuple(spacing), reused=reused)
    far = (np.random.default_rng(3).random((60, 56)) < 0.3) & ~label_surface  # some 1,000 voxels
    found = index.nearest(np.argwhere(far))
    assert index._transform is None
    assert np.array_equal(found, _tree_distances(far, label_surface, spacing))


@pytest.mark.parametrize("shape, spacing", [
    ((40, 36), (1.0, 1.0)), ((200, 190), (1.0, 1.0)), ((40, 36), (0.9765625, 0.9765625)),
    ((40, 36), F32[:2]), ((40, 36), (0.7, 0.3)),
    ((20, 18, 16), (1.0, 1.0, 1.0)), ((20, 18, 16), (0.5, 0.75, 2.5)), ((20, 18, 16), F32),
    ((20, 18, 16), (0.1, 0.2, 0.3)),
])
@pytest.mark.parametrize("block", [7, 1 << 30])  # one row at a time, or all rows at once
def test_all_pairs_give_the_k_d_trees_distances_to_the_last_bit(shape, spacing, block, monkeypatch):
    """Small surfaces are measured pair by pair: the same distances as the tree's, in integers
    (16 and 32 bits) and in floats (non-exact grids), in blocks of any size; both surfaces' own
    voxels at distance 0."""
    module = importlib.import_module("segrob.metrics.surface")
    monkeypatch.setattr(module, "PAIRWISE_PER_VOXEL_AXIS", 1 << 30)
    monkeypatch.setattr(module, "PAIRWISE_PER_VOXEL_AXIS_INTEGER", 1 << 30)
    monkeypatch.setattr(module, "PAIRWISE_MAX", 1 << 30)
    monkeypatch.setattr(module, "PAIRWISE_BLOCK_BYTES", block)
    pred, gt = _blobs(shape, seed=11)
    pred_surface, gt_surface = module.surface(pred), module.surface(gt)
    to_gt, to_pred = module._pairwise(pred_surface, gt_surface, spacing)
    for source, target, found in ((pred_surface, gt_surface, to_gt), (gt_surface, pred_surface, to_pred)):
        assert np.array_equal(found, _tree_distances(source, target, spacing))
    assert not to_gt[(pred_surface & gt_surface)[pred_surface]].any()
    label = LabelSurface(gt, spacing=spacing)
    for a, b in zip(label.distances(pred), (to_gt, to_pred), strict=True):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("shape, spacing, expected", [
    ((40, 36), (1.0, 1.0), ((1, 1), 1.0, np.uint16)),
    ((183, 182), (1.0, 1.0), ((1, 1), 1.0, np.uint32)),  # 182^2 + 181^2 > 2^16 - 1
    ((40, 36), (0.9765625, 0.9765625), ((125**2, 125**2), 2.0**-14, np.uint32)),  # 125 / 128 mm
    ((20, 18, 16), (0.5, 0.75, 2.5), ((4, 9, 100), 1 / 16, np.uint16)),  # (19^2 4 + 17^2 9 + 15^2 100) / 16
    ((20, 18, 30), (0.5, 0.75, 2.5), ((4, 9, 100), 1 / 16, np.uint32)),
    ((5, 1), (1.0, 1e6), ((1, 10**12), 1.0, np.uint16)),  # an axis one voxel long adds nothing
    ((40, 36), F32[:2], None),  # float32's 0.7: 24-bit numerators, squares beyond 32 bits
    ((40, 36), (0.7, 0.3), None),
    ((2, 2), (2.0**-600, 1.0), None),  # a scale below float64's normal range
])
def test_squared_distances_are_counted_in_the_narrowest_exact_integer_type(shape, spacing, expected):
    module = importlib.import_module("segrob.metrics.surface")
    assert module._integer_squares(spacing, shape) == expected


@pytest.mark.parametrize("spacing, limit", [((1.0, 1.0), "PAIRWISE_PER_VOXEL_AXIS_INTEGER"),
                                            ((0.7, 0.3), "PAIRWISE_PER_VOXEL_AXIS")])
def test_all_pairs_are_measured_only_while_they_are_few(spacing, limit, monkeypatch):
    """Integer squares (an exact grid) and float ones each have their own limit per voxel."""
    module = importlib.import_module("segrob.metrics.surface")
    pred, gt = _blobs((40, 36), seed=11)
    small = module._pairwise(module.surface(pred), module.surface(gt), spacing)
    assert small is not None  # some 100 voxels a side: far fewer than 180 pairs per voxel
    other = ({"PAIRWISE_PER_VOXEL_AXIS", "PAIRWISE_PER_VOXEL_AXIS_INTEGER"} - {limit}).pop()
    monkeypatch.setattr(module, other, 2)
    assert module._pairwise(module.surface(pred), module.surface(gt), spacing) is not None
    monkeypatch.setattr(module, limit, 2)
    assert module._pairwise(module.surface(pred), module.surface(gt), spacing) is None
    monkeypatch.setattr(module, limit, 1 << 30)
    monkeypatch.setattr(module, "PAIRWISE_MAX", 100)
    assert module._pairwise(module.surface(pred), module.surface(gt), spacing) is None


@pytest.mark.parametrize("shape", [(2, 16, 16), (3, 8, 9, 10), (1, 4, 4)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_calibration_gives_each_images_own_numbers_to_the_last_bit(shape, dtype):
    from segrob.metrics.calibration import (
        batch_mean_entropy,
        batch_reliability_counts,
        mean_entropy,
        reliability_counts,
    )

    rng = np.random.default_rng(len(shape))
    batch = np.moveaxis(rng.dirichlet(np.ones(shape[0]), size=(3, *shape[1:])), -1, 1).astype(dtype)
    batch[0, :, 0] = 0.0  # 0 ln 0 counts as 0
    labels = rng.integers(0, shape[0], size=(3, *shape[1:]))
    counts, entropy = batch_reliability_counts(batch, labels), batch_mean_entropy(batch)
    assert counts.shape == (3, 3, 15) and entropy.shape == (3,)
    for index in range(3):
        assert np.array_equal(counts[index], reliability_counts(batch[index], labels[index]))
        assert entropy[index] == mean_entropy(batch[index])
    assert not np.array_equal(counts[0], counts[1])  # the images differ, so must their counts


@pytest.mark.parametrize("classes", [1, 2, 3, 5])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("zeros", [True, False])  # the masked logarithm, or the plain one
def test_calibration_is_the_textbook_formula_to_the_last_bit(classes, dtype, zeros):
    """The fast paths (class by class maxima and sums, one count of right and wrong voxels, the
    logarithm without a float64 copy) give the plain numpy formulas' numbers."""
    from segrob.metrics.calibration import batch_mean_entropy, batch_reliability_counts

    rng = np.random.default_rng(classes)
    batch = np.moveaxis(rng.dirichlet(np.ones(classes) * 0.3, size=(2, 9, 11)), -1, 1).astype(dtype)
    batch = np.maximum(batch, np.finfo(dtype).tiny)  # none is 0 (a float32 Dirichlet draw can be)
    if zeros:
        batch[0, :, :2] = np.eye(classes, dtype=dtype)[0][:, None, None]  # one-hot: 0 ln 0 and ln 1
    labels = rng.integers(0, classes, size=(2, 9, 11))
    entropy, counts = batch_mean_entropy(batch), batch_reliability_counts(batch, labels)
    for image, label, h, c in zip(batch, labels, entropy, counts, strict=True):
        p = image.astype(np.float64)
        terms = np.where(p > 0, -p * np.log(np.where(p > 0, p, 1.0)), 0.0)
        assert h == terms.sum(axis=0).ravel().mean() and not np.signbit(h)
        confidence = image.max(axis=0).astype(np.float64).ravel()
        bins = np.clip((confidence * 15).astype(np.int64), 0, 14)
        right = (image.argmax(axis=0) == label).ravel().astype(np.float64)
        expected = [np.bincount(bins, weights=w, minlength=15) for w in (confidence, right, None)]
        assert np.array_equal(c, np.stack(expected))


def test_reliability_takes_the_most_probable_classes_given():
    """The audit hands over its predicted labels (the argmax it computed already): the counts
    are those of the search they save, and the labels given are the ones counted."""
    from segrob.metrics.calibration import batch_reliability_counts, class_argmax

    rng = np.random.default_rng(3)
    batch = np.moveaxis(rng.dirichlet(np.ones(3), size=(2, 9, 11)), -1, 1).astype(np.float32)
    batch[0, :, 0, :4] = 1 / 3  # tied classes: the first is the most probable
    labels = rng.integers(0, 3, size=(2, 9, 11))
    counts = batch_reliability_counts(batch, labels)
    given = batch_reliability_counts(batch, labels, most_probable=class_argmax(batch, axis=1))
    assert np.array_equal(given, counts)
    all_right = batch_reliability_counts(batch, labels, most_probable=labels)
    assert np.array_equal(all_right[:, 1], all_right[:, 2]) and not np.array_equal(all_right, counts)
    with pytest.raises(SegrobError, match="most probable classes of shape"):
        batch_reliability_counts(batch, labels, most_probable=labels[0])


def test_the_percentile_is_numpys_to_the_last_bit():
    stats = importlib.import_module("segrob.metrics.stats")
    rng = np.random.default_rng(5)
    for n in [1, 2, 3, 19, 20, 21, 100, 333, 1000]:
        for values in (rng.random(n) * 40, np.sqrt(rng.integers(0, 30, n).astype(np.float64))):  # ties
            for q in (95.0, 50.0, 5.0, 100.0, 0.0, 99.9):
                assert stats.percentile(values, q) == float(np.percentile(values, q)), (n, q)
    # The bootstrap's levels: 2000 resampled means at BCa-moved quantiles, as numpy floats.
    means = rng.random(2000)
    for q in rng.random(200) * 100.0:
        assert stats.percentile(means, q) == float(np.percentile(means, q)), q
    # Several levels from one partition (the bootstrap's two ends), each as numpy's alone: levels
    # that share an order statistic, the ends, and a tie-heavy sample.
    for values in (means, np.sqrt(rng.integers(0, 30, 333).astype(np.float64)), rng.random(2)):
        for qs in [tuple(rng.random(2) * 100.0) for _ in range(100)] + [(2.5, 97.5), (50.0, 50.0),
                                                                          (100.0, 0.0), (99.99, 100.0)]:
            assert stats.percentiles(values, qs) == tuple(float(np.percentile(values, q)) for q in qs), qs


def test_the_foreground_mean_is_numpys_mean_to_the_last_bit():
    from segrob.metrics.case import METRIC_NAMES, ClassMetrics, _foreground_mean

    rng = np.random.default_rng(3)
    for n in range(1, 12):
        values = rng.random((n, len(METRIC_NAMES))) * rng.choice([1e-3, 1.0, 97.0], size=(n, 1))
        values[rng.random(values.shape) < 0.2] = np.nan  # the nnunet policy's skipped classes
        scored = [ClassMetrics(*row) for row in values]
        for column, name in enumerate(METRIC_NAMES):
            finite = values[:, column][~np.isnan(values[:, column])]
            expected = float(finite.mean()) if finite.size else float("nan")
            assert _foreground_mean(scored, name) == expected or (np.isnan(expected) and
                                                                   np.isnan(_foreground_mean(scored, name)))
