"""Segmentation metrics: pure functions over arrays, the empty-mask policy, confidence intervals."""

from segrob.metrics.calibration import expected_calibration_error, mean_entropy
from segrob.metrics.case import CaseMetrics, ClassMetrics, case_metrics, class_metrics
from segrob.metrics.overlap import dice, iou, precision, sensitivity
from segrob.metrics.stats import aggregate, bootstrap_ci, paired_bootstrap_ci
from segrob.metrics.surface import assd, hd95, image_diagonal, nsd, surface, surface_distances

__all__ = [
    "CaseMetrics",
    "ClassMetrics",
    "aggregate",
    "assd",
    "bootstrap_ci",
    "case_metrics",
    "class_metrics",
    "dice",
    "expected_calibration_error",
    "hd95",
    "image_diagonal",
    "iou",
    "mean_entropy",
    "nsd",
    "paired_bootstrap_ci",
    "precision",
    "sensitivity",
    "surface",
    "surface_distances",
]
