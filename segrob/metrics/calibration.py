"""Calibration and uncertainty from softmax probabilities ``(K, *spatial)``."""

from __future__ import annotations

import numpy as np


def expected_calibration_error(
    probabilities: np.ndarray, label: np.ndarray, *, n_bins: int = 15
) -> float:
    """``ECE = sum_b (n_b / N) |accuracy_b - confidence_b|`` over equal-width confidence bins.

    Confidence is the top-class probability of each voxel, accuracy whether that class is the
    label.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    confidence = probabilities.max(axis=0).ravel()
    correct = (probabilities.argmax(axis=0) == np.asarray(label)).ravel()
    bins = np.minimum((confidence * n_bins).astype(np.int64), n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    confidence_sum = np.bincount(bins, weights=confidence, minlength=n_bins)
    correct_sum = np.bincount(bins, weights=correct.astype(np.float64), minlength=n_bins)
    used = counts > 0
    gaps = np.abs(correct_sum[used] - confidence_sum[used])
    return float(gaps.sum() / confidence.size)


def mean_entropy(probabilities: np.ndarray) -> float:
    """Mean predictive entropy ``-sum_k p_k ln p_k`` over voxels, in nats (max ``ln K``)."""
    p = np.asarray(probabilities, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log(p), 0.0)
    return float(terms.sum(axis=0).mean())
