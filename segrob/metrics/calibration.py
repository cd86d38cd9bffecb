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
    return batch_reliability_counts(p[None], label[None], n_bins=n_bins)[0]


def batch_reliability_counts(
    probabilities: np.ndarray, labels: np.ndarray, *, n_bins: int = RELIABILITY_BINS,
    most_probable: np.ndarray | None = None,
) -> np.ndarray:
    """:func:`reliability_counts` of each image of a batch ``(B, K, *spatial)`` with labels
    ``(B, *spatial)``, as ``(B, 3, n_bins)``, in one pass: each image's bins are its own, summed
    in the same order as alone, so the numbers are the same to the last bit.

    ``most_probable``: :func:`class_argmax` of ``probabilities`` over the class axis, where the
    caller has it already (the audit's predicted labels), saving the search; it must be exactly
    that, the first of tied maxima.
    """
    p = np.asarray(probabilities)
    labels = np.asarray(labels)
    if p.ndim < 3 or labels.shape != (p.shape[0], *p.shape[2:]):
        raise SegrobError(f"labels of shape {labels.shape} do not fit probabilities {p.shape} "
                          "(B, K, *spatial)")
    if most_probable is not None and np.shape(most_probable) != labels.shape:
        raise SegrobError(f"most probable classes of shape {np.shape(most_probable)} do not fit "
                          f"labels {labels.shape}")
    if n_bins < 1:
        raise SegrobError(f"ECE needs n_bins >= 1, got {n_bins}")
    batch = p.shape[0]
    # float32 kept: its maximum and argmax are those of its exact float64 copy, at a fraction of the cost.
    p = _check_probabilities(p, keep_float32=True)
    confidence = _class_max(p).astype(np.float64).reshape(batch, -1)
    if most_probable is None:
        most_probable = class_argmax(p, axis=1)
    correct = (most_probable == labels).reshape(batch, -1)
    bins = (confidence * n_bins).astype(np.intp)
    np.clip(bins, 0, n_bins - 1, out=bins)
    bins += (np.arange(batch) * n_bins)[:, None]
    size = batch * n_bins
    confidence_sums = np.bincount(bins.ravel(), weights=confidence.ravel(), minlength=size)
    # Right and wrong voxels counted per bin in one pass: (bin, correct) pairs as 2 * bin + correct.
    bins *= 2
    bins += correct
    counts = np.bincount(bins.ravel(), minlength=2 * size).reshape(size, 2)
    return np.stack([
        confidence_sums, counts[:, 1].astype(np.float64), counts.sum(axis=1).astype(np.float64),
    ]).reshape(3, batch, n_bins).transpose(1, 0, 2)


def _class_max(p: np.ndarray) -> np.ndarray:
    """``p.max(axis=1)`` by one ``maximum`` per class: a reduction over a short axis is slower."""
    top = p[:, 0]
    for k in range(1, p.shape[1]):
        top = np.maximum(top, p[:, k])
    return top


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
    return float(batch_mean_entropy(_check_probabilities(probabilities)[None])[0])


def batch_mean_entropy(probabilities: np.ndarray) -> np.ndarray:
    """:func:`mean_entropy` of each image of a batch ``(B, K, *spatial)``, as ``(B,)``: each
    image's mean over its own voxels, the same numbers as alone."""
    p = _check_probabilities(probabilities, keep_float32=True)
    # p ln p in float64 from float32 without a float64 copy; 0 ln 0 (and NaN) stays 0. A softmax
    # rarely underflows to 0: then the masked routines, a third slower, are not needed.
    positive = p > 0
    if positive.all():
        terms = np.log(p, dtype=np.float64)
        terms *= p
    else:
        terms = np.zeros(p.shape, dtype=np.float64)
        np.log(p, out=terms, where=positive, dtype=np.float64)
        np.multiply(terms, p, out=terms, where=positive)
    # Summed class by class, in order (as numpy sums a leading axis) and negated once at the end:
    # -(a + b) is (-a) + (-b) to the bit, and so is the mean; + 0.0 makes a zero entropy +0.
    per_voxel = terms[:, 0].copy()
    for k in range(1, p.shape[1]):
        per_voxel += terms[:, k]
    return -per_voxel.reshape(p.shape[0], -1).mean(axis=1) + 0.0
