"""Overlap metrics of binary masks: Dice, IoU, sensitivity, precision.

All take boolean (or 0/1) arrays of one shape. Empty masks follow segrob's policy
(:mod:`segrob.metrics.policy`): never NaN, never silently dropped.
"""

from __future__ import annotations

import numpy as np


def confusion(pred: np.ndarray, gt: np.ndarray) -> tuple[int, int, int]:
    """True positives, false positives and false negatives of two masks."""
    pred = np.asarray(pred, dtype=bool)
    gt = np.asarray(gt, dtype=bool)
    tp = int(np.count_nonzero(pred & gt))
    return tp, int(np.count_nonzero(pred)) - tp, int(np.count_nonzero(gt)) - tp


def _ratio(numerator: int, denominator: int, *, both_empty: bool) -> float:
    if denominator == 0:
        return 1.0 if both_empty else 0.0
    return numerator / denominator


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """``2 |P & G| / (|P| + |G|)``; 1 when both masks are empty."""
    tp, fp, fn = confusion(pred, gt)
    return _ratio(2 * tp, 2 * tp + fp + fn, both_empty=tp + fp + fn == 0)


def iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """``|P & G| / |P | G|``; 1 when both masks are empty."""
    tp, fp, fn = confusion(pred, gt)
    return _ratio(tp, tp + fp + fn, both_empty=tp + fp + fn == 0)


def sensitivity(pred: np.ndarray, gt: np.ndarray) -> float:
    """``TP / (TP + FN)``; 1 when both masks are empty, 0 when only one is."""
    tp, fp, fn = confusion(pred, gt)
    return _ratio(tp, tp + fn, both_empty=tp + fp + fn == 0)


def precision(pred: np.ndarray, gt: np.ndarray) -> float:
    """``TP / (TP + FP)``; 1 when both masks are empty, 0 when only one is."""
    tp, fp, fn = confusion(pred, gt)
    return _ratio(tp, tp + fp, both_empty=tp + fp + fn == 0)
