"""Surface distances in physical units: HD95, ASSD and NSD (MONAI's conventions).

* surface ``S(m)`` = ``m`` minus its binary erosion by the face-connected structuring element,
  the image border counting as background (a mask touching the border has surface there);
* ``d(a -> B)``: Euclidean distance in mm from each voxel of ``S(a)`` to the nearest voxel of
  ``S(B)``, from an exact Euclidean distance transform with the voxel spacing;
* ``HD95 = max(P95 d(pred -> gt), P95 d(gt -> pred))`` (directed, then the max);
* ``ASSD`` = mean of both directions' distances pooled;
* ``NSD(t) = (#{d(pred -> gt) <= t} + #{d(gt -> pred) <= t}) / (|S(pred)| + |S(gt)|)``.

Both masks are cropped to their joint bounding box plus a one-voxel margin before the distance
transforms: inside the image the margin is background, at the image border the crop border is
the image border, so the surfaces and distances are exactly those of the full image.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage


def surface(mask: np.ndarray) -> np.ndarray:
    """Surface voxels of a boolean mask (border counts as background)."""
    mask = np.asarray(mask, dtype=bool)
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure=structure, border_value=0)


def _crop(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    union = pred | gt
    slices = []
    for axis in range(union.ndim):
        other = tuple(a for a in range(union.ndim) if a != axis)
        present = np.flatnonzero(union.any(axis=other))
        low, high = max(int(present[0]) - 1, 0), min(int(present[-1]) + 2, union.shape[axis])
        slices.append(slice(low, high))
    region = tuple(slices)
    return pred[region], gt[region]


def surface_distances(
    pred: np.ndarray, gt: np.ndarray, *, spacing: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """``d(pred -> gt)`` and ``d(gt -> pred)`` in mm; both masks must be non-empty."""
    pred = np.asarray(pred, dtype=bool)
    gt = np.asarray(gt, dtype=bool)
    if not pred.any() or not gt.any():
        raise ValueError("surface distances need two non-empty masks (see the empty-mask policy)")
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != pred.ndim:
        raise ValueError(f"spacing has {len(spacing)} values for a {pred.ndim}D mask")
    pred, gt = _crop(pred, gt)
    pred_surface, gt_surface = surface(pred), surface(gt)
    to_gt = ndimage.distance_transform_edt(~gt_surface, sampling=spacing)
    to_pred = ndimage.distance_transform_edt(~pred_surface, sampling=spacing)
    return to_gt[pred_surface], to_pred[gt_surface]


def hd95_from(pred_to_gt: np.ndarray, gt_to_pred: np.ndarray) -> float:
    return float(max(np.percentile(pred_to_gt, 95), np.percentile(gt_to_pred, 95)))


def assd_from(pred_to_gt: np.ndarray, gt_to_pred: np.ndarray) -> float:
    return float(np.concatenate([pred_to_gt, gt_to_pred]).mean())


def nsd_from(pred_to_gt: np.ndarray, gt_to_pred: np.ndarray, tolerance_mm: float) -> float:
    within = np.count_nonzero(pred_to_gt <= tolerance_mm) + np.count_nonzero(gt_to_pred <= tolerance_mm)
    return float(within / (pred_to_gt.size + gt_to_pred.size))


def image_diagonal(shape: Sequence[int], spacing: Sequence[float]) -> float:
    """Length of the image diagonal in mm: the distance charged when one mask is empty."""
    return float(np.sqrt(sum((n * s) ** 2 for n, s in zip(shape, spacing, strict=True))))


def _empty_value(pred: np.ndarray, gt: np.ndarray, *, spacing, both: float) -> float | None:
    has_pred, has_gt = bool(np.any(pred)), bool(np.any(gt))
    if has_pred and has_gt:
        return None
    return both if not (has_pred or has_gt) else image_diagonal(np.shape(gt), spacing)


def hd95(pred: np.ndarray, gt: np.ndarray, *, spacing: Sequence[float]) -> float:
    """95th percentile Hausdorff distance in mm (both empty: 0; one empty: the diagonal)."""
    fallback = _empty_value(pred, gt, spacing=spacing, both=0.0)
    return fallback if fallback is not None else hd95_from(*surface_distances(pred, gt, spacing=spacing))


def assd(pred: np.ndarray, gt: np.ndarray, *, spacing: Sequence[float]) -> float:
    """Average symmetric surface distance in mm (both empty: 0; one empty: the diagonal)."""
    fallback = _empty_value(pred, gt, spacing=spacing, both=0.0)
    return fallback if fallback is not None else assd_from(*surface_distances(pred, gt, spacing=spacing))


def nsd(pred: np.ndarray, gt: np.ndarray, *, spacing: Sequence[float], tolerance_mm: float) -> float:
    """Normalised surface Dice at ``tolerance_mm`` (both empty: 1; one empty: 0)."""
    has_pred, has_gt = bool(np.any(pred)), bool(np.any(gt))
    if not (has_pred and has_gt):
        return 1.0 if not (has_pred or has_gt) else 0.0
    return nsd_from(*surface_distances(pred, gt, spacing=spacing), tolerance_mm)
