"""Parity math: logit tolerances, argmax agreement, mask Dice, and the export gate."""

from __future__ import annotations

import numpy as np
import pytest

from segrob.errors import SegrobError
from segrob.onnx.parity import (
    ParityThresholds,
    compare_logits,
    masks_from_logits,
    mean_dice,
    require_parity,
)

FP32 = ParityThresholds.for_precision("fp32")


def two_class_logits(mask: np.ndarray) -> np.ndarray:
    """Logits whose argmax is ``mask`` (class 1 where True), margin 1."""
    return np.stack([np.where(mask, -1.0, 1.0), np.where(mask, 1.0, -1.0)]).astype(np.float32)


def test_identical_logits_agree_fully():
    mask = np.zeros((8, 8), bool)
    mask[2:6, 2:6] = True
    logits = two_class_logits(mask)
    result = compare_logits([logits], [logits.copy()], FP32)
    assert result.max_abs_diff == 0.0
    assert result.argmax_agreement == 1.0
    assert result.mask_dice == 1.0
    assert result.within_tolerance == 1.0
    assert result.passed and result.dice_vs_label is None


def test_flipped_voxels_give_exact_agreement_and_dice():
    ref_mask = np.zeros((10, 10), bool)
    ref_mask[0:4, 0:4] = True  # 16 voxels
    out_mask = ref_mask.copy()
    out_mask[0, 0:4] = False  # 4 voxels flipped to background
    result = compare_logits([two_class_logits(ref_mask)], [two_class_logits(out_mask)], FP32)
    assert result.argmax_agreement == pytest.approx(96 / 100)
    # Dice of class 1: 2 * 12 / (16 + 12)
    assert result.mask_dice == pytest.approx(24 / 28)
    assert result.max_abs_diff == pytest.approx(2.0)
    assert not result.passed
    assert any("argmax agreement" in f for f in result.failures)
    assert any("mask Dice" in f for f in result.failures)
    with pytest.raises(SegrobError, match="parity check failed"):
        require_parity(result, what="model.onnx")


def test_small_logit_noise_passes_mask_gate_but_not_abs_gate():
    rng = np.random.default_rng(0)
    mask = rng.random((3, 6, 6, 6)) > 0.5
    ref = [two_class_logits(m) for m in mask]
    out = [r + 2e-3 for r in ref]
    assert compare_logits(ref, out, FP32).passed
    strict = ParityThresholds.for_precision("fp32", max_abs_diff=1e-3)
    result = compare_logits(ref, out, strict)
    assert not result.passed and "max |logit diff|" in result.failures[0]
    assert result.within_tolerance == 0.0  # 2e-3 > atol 1e-4 + rtol 1e-3 * |1|


def test_dice_against_labels_reports_the_change():
    label = np.zeros((6, 6), np.int32)
    label[:3] = 1
    good = two_class_logits(label == 1)
    worse_mask = label == 1
    worse_mask[0] = False
    result = compare_logits([good], [two_class_logits(worse_mask)], FP32, labels=[label])
    assert result.dice_vs_label["torch"] == pytest.approx(1.0)
    assert result.dice_vs_label["onnx"] == pytest.approx(2 * 12 / (18 + 12))
    assert result.dice_vs_label["change"] == pytest.approx(result.dice_vs_label["onnx"] - 1.0)


def test_nan_output_fails():
    logits = two_class_logits(np.ones((4, 4), bool))
    broken = logits.copy()
    broken[0, 0, 0] = np.nan
    result = compare_logits([logits], [broken], FP32)
    assert not result.passed and "NaN" in result.failures[0]


def test_masks_and_dice_conventions():
    single = np.array([[[-1.0, 2.0], [0.5, -3.0]]])
    assert masks_from_logits(single).tolist() == [[0, 1], [1, 0]]
    empty = np.zeros((3, 3), int)
    assert mean_dice(empty, empty, [1]) == 1.0  # both empty counts as agreement
    full = np.ones((3, 3), int)
    assert mean_dice(full, empty, [1]) == 0.0


def test_thresholds_per_precision_and_overrides():
    assert ParityThresholds.for_precision("int8").min_dice < FP32.min_dice
    assert ParityThresholds.for_precision("fp16").min_agreement < FP32.min_agreement
    assert ParityThresholds.for_precision("fp32", min_dice=0.5).min_dice == 0.5
    with pytest.raises(SegrobError, match="precision"):
        ParityThresholds.for_precision("bf16")
    with pytest.raises(SegrobError, match=r"\[0, 1\]"):
        ParityThresholds.for_precision("fp32", min_agreement=1.5)


def test_shape_mismatch_is_an_error():
    with pytest.raises(SegrobError, match="shape"):
        compare_logits([np.zeros((2, 4, 4))], [np.zeros((2, 4, 5))], FP32)
