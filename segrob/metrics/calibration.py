"""Calibration and uncertainty from softmax probabilities ``(K, *spatial)``, every voxel counted."""

from __future__ import annotations

import numpy as np

from segrob.errors import SegrobError


def _check_probabilities(probabilities: np.ndarray, *, keep_float32: bool = False) -> np.ndarray:
    p = np.asarray(probabilities)
    if not (keep_float32 and p.dtype == np.float32):
        p = p.astype(np.float64, copy=False)
    if p.ndim < 2 or p.shape[0] < 1 or p.size == 0:
        raise SegrobError(f"probabilities of shape {p.shape} must be (K, *spatial) with K >= 1")
    return p


def class_argmax(probabilities: np.ndarray, axis: int = 0) -> np.ndarray:
    """``probabilities.argmax(axis)``, the first of tied maxima, by one comparison per class: numpy's
    argmax over a short class axis is some 30 times slower. NaNs take numpy's own path."""
    p = np.moveaxis(np.asarray(probabilities), axis, 0)
    if p.shape[0] == 0 or np.isnan(p).any():
        return p.argmax(axis=0)
    if p.shape[0] == 2:
        return (p[1] > p[0]).view(np.uint8).astype(np.intp)
    best = p[0]
    index = np.zeros(best.shape, dtype=np.intp)
    for k in range(1, p.shape[0]):
        higher = p[k] > best
        np.copyto(index, k, where=higher)
        best = np.maximum(best, p[k])  # no NaN here, so this is the running maximum
    return index


RELIABILITY_BINS = 15


def reliability_counts(
    probabilities: np.ndarray, label: np.ndarray, *, n_bins: int = RELIABILITY_BINS
) -> np.ndarray:
    """Per equal-width confidence bin: the sum of confidences, the number right, the number of
    voxels, as a ``(3, n_bins)`` array; sums of these over images draw a reliability diagram.

    The confidence of a voxel is its top-class probability, its accuracy 1 when that class is
    the label. Bin ``b`` holds confidences in ``[b / n_bins, (b + 1) / n_bins)``, the last bin
    also 1.0.
    """
    p = _check_probabilities(probabilities, keep_float32=True)
    label = np.asarray(label)
    if label.shape != p.shape[1:]:
        raise SegrobError(f"label shape {label.shape} differs from probabilities {p.shape[1:]}")
    if n_bins < 1:
        raise SegrobError(f"ECE needs n_bins >= 1, got {n_bins}")
    # float32 kept: its maximum and argmax are those of its exact float64 copy, at a fraction of the cost.
    confidence = p.max(axis=0).astype(np.float64).ravel()
    correct = (class_argmax(p) == label).ravel()
    bins = np.clip((confidence * n_bins).astype(np.int64), 0, n_bins - 1)
    return np.stack([
        np.bincount(bins, weights=confidence, minlength=n_bins),
        np.bincount(bins, weights=correct.astype(np.float64), minlength=n_bins),
        np.bincount(bins, minlength=n_bins).astype(np.float64),
    ])


def ece_from(counts: np.ndarray) -> float:
    """``ECE = sum_b (n_b / N) |accuracy_b - confidence_b|`` from :func:`reliability_counts`:
    ``|sum correct - sum confidence| / N`` per bin is the same number."""
    return float(np.abs(counts[1] - counts[0]).sum() / counts[2].sum())


def expected_calibration_error(
    probabilities: np.ndarray, label: np.ndarray, *, n_bins: int = RELIABILITY_BINS
) -> float:
    """``ECE = sum_b (n_b / N) |accuracy_b - confidence_b|`` over equal-width confidence bins
    (see :func:`reliability_counts`); empty bins add nothing.

    Args:
        probabilities: Softmax output ``(K, *spatial)``.
        label: Integer label map ``(*spatial)``.
        n_bins: Number of bins over ``[0, 1]``.

    Returns:
        The ECE in ``[0, 1]``: 0 for a one-hot prediction that is always right.
    """
    return ece_from(reliability_counts(probabilities, label, n_bins=n_bins))


def mean_entropy(probabilities: np.ndarray) -> float:
    """Mean predictive entropy ``H = -sum_k p_k ln p_k`` over voxels, in nats (max ``ln K``).

    ``0 ln 0`` is taken as 0, so a one-hot prediction has entropy 0.
    """
    p = _check_probabilities(probabilities)
    with np.errstate(divide="ignore", invalid="ignore"):
        # -(p ln p) in place: the same values as -p * ln p at half the temporaries
        terms = np.log(p)
        terms *= p
        np.negative(terms, out=terms)
        terms[~(p > 0)] = 0.0
    return float(terms.sum(axis=0).mean())
