"""Surface distances in physical units: HD95, ASSD and NSD (MONAI's conventions).

* surface ``S(m)`` = ``m`` minus its binary erosion by the face-connected structuring element,
  the image border counting as background (a mask touching the border has surface there);
* ``d(a -> B)``: Euclidean distance in mm from each voxel of ``S(a)`` to the nearest voxel of
  ``S(B)``, voxel centres placed at ``index * spacing``;
* ``HD95 = max(P95 d(pred -> gt), P95 d(gt -> pred))`` (directed, then the max; linear
  interpolation between order statistics, numpy's and MONAI's default);
* ``ASSD`` = mean of both directions' distances pooled;
* ``NSD(t) = (#{d(pred -> gt) <= t} + #{d(gt -> pred) <= t}) / (|S(pred)| + |S(gt)|)``.

Empty masks: both empty -> HD95 = ASSD = 0, NSD = 1; exactly one empty -> HD95 = ASSD = the
image diagonal ``sqrt(sum_i (n_i s_i)^2)`` in mm, NSD = 0.

Both masks are first cut to their joint bounding box plus a one-voxel margin (clipped at the image
border). This cannot change a result: a mask voxel on a face of the box has its neighbour across
that face outside both masks (background inside the image, the border counting as background at
its edge), so it is a surface voxel with or without the cut, and every surface voxel lies in the box.
The nearest surface voxel is then found by a k-d tree over the other surface's voxels rather than by
a distance transform of the box: the work grows with the surfaces' area, not with the structure's
volume, and the distances are the same exact Euclidean ones. Voxels on both surfaces are at
distance 0 and are not queried.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.spatial import cKDTree

from segrob.errors import SegrobError
from segrob.metrics.overlap import binary_pair


def surface(mask: np.ndarray) -> np.ndarray:
    """Surface voxels ``m & ~erode(m)``, face connectivity, the image border as background."""
    mask = np.asarray(mask, dtype=bool)
    padded = np.pad(mask, 1)
    interior = mask.copy()
    for axis, n in enumerate(mask.shape):
        for start in (0, 2):  # the face neighbour before and after along this axis
            window = [slice(1, -1)] * mask.ndim
            window[axis] = slice(start, start + n)
            interior &= padded[tuple(window)]
    return mask & ~interior


def check_spacing(spacing: Sequence[float], ndim: int) -> tuple[float, ...]:
    """Spacing as floats, one positive finite value (mm) per spatial axis."""
    values = tuple(float(s) for s in spacing)
    if len(values) != ndim:
        raise SegrobError(f"spacing {values} has {len(values)} values for a {ndim}D mask")
    if not all(np.isfinite(s) and s > 0 for s in values):
        raise SegrobError(f"spacing {values} must be positive finite millimetres per axis")
    return values


def _crop(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both masks cut to the bounding box of ``pred | gt`` plus one voxel, kept inside the image."""
    union = pred | gt
    region = []
    for axis in range(union.ndim):
        other = tuple(a for a in range(union.ndim) if a != axis)
        present = np.flatnonzero(union.any(axis=other))
        low = max(int(present[0]) - 1, 0)
        high = min(int(present[-1]) + 2, union.shape[axis])
        region.append(slice(low, high))
    return pred[tuple(region)], gt[tuple(region)]


def surface_distances(
    pred: np.ndarray, gt: np.ndarray, *, spacing: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """``d(pred -> gt)`` and ``d(gt -> pred)`` in mm, from one pair of distance transforms.

    Args:
        pred: Predicted binary mask, non-empty.
        gt: Label binary mask of the same shape, non-empty.
        spacing: Voxel size in mm per axis.

    Returns:
        One distance per surface voxel of ``pred`` and one per surface voxel of ``gt``.
    """
    pred, gt = binary_pair(pred, gt)
    spacing = check_spacing(spacing, pred.ndim)
    if not pred.any() or not gt.any():
        raise SegrobError("surface distances need two non-empty masks (see the empty-mask policy)")
    pred, gt = _crop(pred, gt)
    pred_surface, gt_surface = surface(pred), surface(gt)
    return (_nearest(pred_surface, gt_surface, spacing),
            _nearest(gt_surface, pred_surface, spacing))


def _nearest(source: np.ndarray, target: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    """For each voxel of ``source`` (in ``argwhere`` order), the distance in mm to ``target``."""
    distances = np.zeros(np.count_nonzero(source))
    apart = (source & ~target)[source]
    if apart.any():
        scale = np.asarray(spacing)
        # Median splits (balanced_tree) cost twice the build time and buy no faster queries here.
        tree = cKDTree(np.argwhere(target) * scale, balanced_tree=False, compact_nodes=False)
        distances[apart] = tree.query(np.argwhere(source & ~target) * scale)[0]
    return distances


def hd95_from(pred_to_gt: np.ndarray, gt_to_pred: np.ndarray) -> float:
    """``max(P95 d(pred -> gt), P95 d(gt -> pred))`` from :func:`surface_distances`."""
    return float(max(np.percentile(pred_to_gt, 95), np.percentile(gt_to_pred, 95)))


def assd_from(pred_to_gt: np.ndarray, gt_to_pred: np.ndarray) -> float:
    """Mean of both directions' distances pooled, from :func:`surface_distances`."""
    return float(np.concatenate([pred_to_gt, gt_to_pred]).mean())


def nsd_from(pred_to_gt: np.ndarray, gt_to_pred: np.ndarray, tolerance_mm: float) -> float:
    """Share of both surfaces within ``tolerance_mm`` of the other surface."""
    within = np.count_nonzero(pred_to_gt <= tolerance_mm)
    within += np.count_nonzero(gt_to_pred <= tolerance_mm)
    return float(within / (pred_to_gt.size + gt_to_pred.size))


def image_diagonal(shape: Sequence[int], spacing: Sequence[float]) -> float:
    """``sqrt(sum_i (n_i s_i)^2)`` in mm: the distance charged when exactly one mask is empty."""
    spacing = check_spacing(spacing, len(shape))
    return float(np.sqrt(sum((n * s) ** 2 for n, s in zip(shape, spacing, strict=True))))


def _empty_case(pred: np.ndarray, gt: np.ndarray) -> str:
    """``none``, ``both``, ``pred`` or ``gt``: which of the masks is empty."""
    has_pred, has_gt = bool(pred.any()), bool(gt.any())
    if has_pred and has_gt:
        return "none"
    if not (has_pred or has_gt):
        return "both"
    return "pred" if not has_pred else "gt"


def _distance_metric(pred, gt, spacing, reduce) -> float:
    pred, gt = binary_pair(pred, gt)
    empty = _empty_case(pred, gt)
    if empty == "both":
        check_spacing(spacing, pred.ndim)
        return 0.0
    if empty != "none":
        return image_diagonal(gt.shape, spacing)
    return reduce(*surface_distances(pred, gt, spacing=spacing))


def hd95(pred: np.ndarray, gt: np.ndarray, *, spacing: Sequence[float]) -> float:
    """95th percentile Hausdorff distance in mm (both empty: 0; one empty: the diagonal)."""
    return _distance_metric(pred, gt, spacing, hd95_from)


def assd(pred: np.ndarray, gt: np.ndarray, *, spacing: Sequence[float]) -> float:
    """Average symmetric surface distance in mm (both empty: 0; one empty: the diagonal)."""
    return _distance_metric(pred, gt, spacing, assd_from)


def nsd(
    pred: np.ndarray, gt: np.ndarray, *, spacing: Sequence[float], tolerance_mm: float
) -> float:
    """Normalised surface Dice at ``tolerance_mm`` (both empty: 1; one empty: 0)."""
    pred, gt = binary_pair(pred, gt)
    check_spacing(spacing, pred.ndim)
    if tolerance_mm < 0:
        raise SegrobError(f"NSD tolerance {tolerance_mm} mm must be >= 0")
    empty = _empty_case(pred, gt)
    if empty != "none":
        return 1.0 if empty == "both" else 0.0
    return nsd_from(*surface_distances(pred, gt, spacing=spacing), tolerance_mm)
