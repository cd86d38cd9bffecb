"""Calibration and uncertainty from softmax probabilities ``(K, *spatial)``, every voxel counted."""

from __future__ import annotations

import numpy as np

from segrob.errors import SegrobError


def _check_probabilities(probabilities: np.ndarray) -> np.ndarray:
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim < 2 or p.shape[0] < 1 or p.size == 0:
        raise SegrobError(f"probabilities of shape {p.shape} must be (K, *spatial) with K >= 1")
    return p


def expected_calibration_error(
    probabilities: np.ndarray, label: np.ndarray, *, n_bins: int = 15
) -> float:
    """``ECE = sum_b (n_b / N) |accuracy_b - confidence_b|`` over equal-width confidence bins.

    The confidence of a voxel is its top-class probability, its accuracy 1 when that class is
    the label. Bin ``b`` holds confidences in ``[b / n_bins, (b + 1) / n_bins)``, the last bin
    also 1.0; empty bins add nothing.

    Args:
        probabilities: Softmax output ``(K, *spatial)``.
        label: Integer label map ``(*spatial)``.
        n_bins: Number of bins over ``[0, 1]``.

    Returns:
        The ECE in ``[0, 1]``: 0 for a one-hot prediction that is always right.
    """
    p = _check_probabilities(probabilities)
    label = np.asarray(label)
    if label.shape != p.shape[1:]:
        raise SegrobError(f"label shape {label.shape} differs from probabilities {p.shape[1:]}")
    if n_bins < 1:
        raise SegrobError(f"ECE needs n_bins >= 1, got {n_bins}")
    confidence = p.max(axis=0).ravel()
    correct = (p.argmax(axis=0) == label).ravel()
    bins = np.clip((confidence * n_bins).astype(np.int64), 0, n_bins - 1)
    # sums per bin: |sum correct - sum confidence| / N equals (n_b / N) |acc_b - conf_b|
    confidence_sum = np.bincount(bins, weights=confidence, minlength=n_bins)
    correct_sum = np.bincount(bins, weights=correct.astype(np.float64), minlength=n_bins)
    return float(np.abs(correct_sum - confidence_sum).sum() / confidence.size)


def mean_entropy(probabilities: np.ndarray) -> float:
    """Mean predictive entropy ``H = -sum_k p_k ln p_k`` over voxels, in nats (max ``ln K``).

    ``0 ln 0`` is taken as 0, so a one-hot prediction has entropy 0.
    """
    p = _check_probabilities(probabilities)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log(p), 0.0)
    return float(terms.sum(axis=0).mean())
