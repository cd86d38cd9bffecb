"""Every metric of one case, per class and averaged over the foreground classes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from segrob.metrics.calibration import expected_calibration_error, mean_entropy
from segrob.metrics.overlap import confusion
from segrob.metrics.surface import assd_from, hd95_from, image_diagonal, nsd_from, surface_distances

METRIC_NAMES = ("dice", "iou", "hd95", "assd", "nsd", "sensitivity", "precision")


@dataclass(frozen=True)
class ClassMetrics:
    """One class of one case. ``empty`` says which masks were empty: none, both, pred or gt."""

    dice: float
    iou: float
    hd95: float
    assd: float
    nsd: float
    sensitivity: float
    precision: float
    empty: str = "none"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class CaseMetrics:
    """Per-class metrics, their mean over the foreground classes, and calibration."""

    per_class: dict[int, ClassMetrics]
    mean: dict[str, float]
    ece: float | None = None
    entropy: float | None = None
    empty_counts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "per_class": {int(k): v.to_dict() for k, v in self.per_class.items()},
            "mean": dict(self.mean),
            "ece": self.ece,
            "entropy": self.entropy,
            "empty_counts": dict(self.empty_counts),
        }


def class_metrics(
    pred: np.ndarray, gt: np.ndarray, *, spacing: Sequence[float], nsd_tolerance_mm: float = 1.0
) -> ClassMetrics:
    """All metrics of two binary masks from one pair of distance transforms.

    Empty-mask policy: both empty -> Dice, IoU, NSD, sensitivity, precision 1 and HD95, ASSD 0;
    exactly one empty -> the overlap metrics 0 and HD95 = ASSD = the image diagonal in mm.
    """
    pred = np.asarray(pred, dtype=bool)
    gt = np.asarray(gt, dtype=bool)
    tp, fp, fn = confusion(pred, gt)
    has_pred, has_gt = tp + fp > 0, tp + fn > 0
    if not has_pred and not has_gt:
        return ClassMetrics(1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, empty="both")
    if not (has_pred and has_gt):
        diagonal = image_diagonal(gt.shape, spacing)
        return ClassMetrics(0.0, 0.0, diagonal, diagonal, 0.0, 0.0, 0.0,
                            empty="pred" if not has_pred else "gt")
    to_gt, to_pred = surface_distances(pred, gt, spacing=spacing)
    return ClassMetrics(
        dice=2 * tp / (2 * tp + fp + fn),
        iou=tp / (tp + fp + fn),
        hd95=hd95_from(to_gt, to_pred),
        assd=assd_from(to_gt, to_pred),
        nsd=nsd_from(to_gt, to_pred, nsd_tolerance_mm),
        sensitivity=tp / (tp + fn),
        precision=tp / (tp + fp),
    )


def case_metrics(
    pred_labels: np.ndarray,
    gt_labels: np.ndarray,
    *,
    spacing: Sequence[float],
    classes: Sequence[int],
    nsd_tolerance_mm: float = 1.0,
    probabilities: np.ndarray | None = None,
) -> CaseMetrics:
    """Metrics of each class in ``classes`` (each ``label == k`` as a binary mask) and their mean.

    ``probabilities`` ``(K, *spatial)`` adds the expected calibration error and mean entropy.
    """
    pred_labels = np.asarray(pred_labels)
    gt_labels = np.asarray(gt_labels)
    if pred_labels.shape != gt_labels.shape:
        raise ValueError(f"prediction {pred_labels.shape} and label {gt_labels.shape} differ in shape")
    if not classes:
        raise ValueError("case_metrics needs at least one class")
    per_class = {
        int(k): class_metrics(pred_labels == k, gt_labels == k, spacing=spacing,
                              nsd_tolerance_mm=nsd_tolerance_mm)
        for k in classes
    }
    mean = {name: float(np.mean([getattr(m, name) for m in per_class.values()])) for name in METRIC_NAMES}
    counts = {kind: sum(m.empty == kind for m in per_class.values()) for kind in ("both", "pred", "gt")}
    ece = entropy = None
    if probabilities is not None:
        ece = expected_calibration_error(probabilities, gt_labels)
        entropy = mean_entropy(probabilities)
    return CaseMetrics(per_class=per_class, mean=mean, ece=ece, entropy=entropy, empty_counts=counts)
