"""Overlap metrics of binary masks: Dice, IoU, sensitivity, precision.

All take two boolean (or 0/1) arrays of one shape, ``P`` the prediction and ``G`` the label.
Empty masks follow segrob's policy: never NaN, never silently dropped.

* both masks empty: every overlap metric is 1 (nothing to find, nothing wrongly found);
* exactly one empty: every overlap metric is 0. Dice, IoU and the ratio with the non-empty
  denominator are 0 by their formula; the ratio left as ``0 / 0`` (precision when only the
  prediction is empty, sensitivity when only the label is) is also set to 0, because the
  prediction is wrong for this class and a 1 would lift the class mean over a miss.
"""

from __future__ import annotations

import numpy as np

from segrob.errors import SegrobError


def binary_pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both masks as boolean arrays, after checking they have one shape."""
    pred = np.asarray(pred, dtype=bool)
    gt = np.asarray(gt, dtype=bool)
    if pred.shape != gt.shape:
        # numpy would broadcast (H, 1) against (1, W) into a meaningless score
        raise SegrobError(f"prediction shape {pred.shape} differs from label shape {gt.shape}")
    return pred, gt


def confusion(pred: np.ndarray, gt: np.ndarray) -> tuple[int, int, int]:
    """True positives, false positives and false negatives of two masks."""
    pred, gt = binary_pair(pred, gt)
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
    """``TP / (TP + FN)``; 1 when both masks are empty, 0 when exactly one is."""
    tp, fp, fn = confusion(pred, gt)
    return _ratio(tp, tp + fn, both_empty=tp + fp + fn == 0)


def precision(pred: np.ndarray, gt: np.ndarray) -> float:
    """``TP / (TP + FP)``; 1 when both masks are empty, 0 when exactly one is."""
    tp, fp, fn = confusion(pred, gt)
    return _ratio(tp, tp + fp, both_empty=tp + fp + fn == 0)
