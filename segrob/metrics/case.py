"""Every metric of one case, per class and averaged over the foreground classes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import numpy as np

from segrob.errors import SegrobError
from segrob.metrics.calibration import ece_from, mean_entropy, reliability_counts
from segrob.metrics.overlap import binary_pair, confusion
from segrob.metrics.surface import (
    LabelSurface,
    assd_from,
    check_spacing,
    hd95_from,
    image_diagonal,
    nsd_from,
    surface_distances,
)
from segrob.metrics.surfels import NSD_DEFINITIONS, nsd_area_from, surfel_distances
from segrob.metrics.table import METRIC_BY_NAME, metric_names

# The per-class metrics of the table, in its order: ClassMetrics has one field for each.
METRIC_NAMES = metric_names(per_class=True)
#: ``segrob``: both masks empty scores as a perfect prediction (Dice 1, HD95 0), so every case
#: counts. ``nnunet``: as nnU-Net's evaluation, every metric of a class whose masks are both empty
#: is NaN and means skip it (nan-mean), so the numbers can be set beside an nnU-Net summary.json.
EMPTY_POLICIES = ("segrob", "nnunet")


@dataclass(frozen=True)
class ClassMetrics:
    """One class of one case: a field per per-class metric of :mod:`segrob.metrics.table`, in
    its order, and ``empty``, which masks were empty: none, both, pred or gt."""

    dice: float
    iou: float
    hd95: float
    assd: float
    nsd: float
    sensitivity: float
    precision: float
    empty: str = "none"

    def to_dict(self) -> dict:
        """Plain JSON-ready dict of every field."""
        # Every field is a float or a str: a shallow dict is asdict's result without its deep copies.
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class CaseMetrics:
    """Per-class metrics, their mean over the foreground classes, and calibration.

    ``empty_counts`` counts the foreground classes in each empty-mask case (both, pred, gt).
    """

    per_class: dict[int, ClassMetrics]
    mean: dict[str, float]
    ece: float | None = None
    entropy: float | None = None
    empty_counts: dict[str, int] = field(default_factory=dict)
    #: :func:`~segrob.metrics.calibration.reliability_counts` of the image (with probabilities).
    reliability: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        """Plain JSON-ready dict; class keys become ints."""
        return {
            "per_class": {int(k): v.to_dict() for k, v in self.per_class.items()},
            "mean": dict(self.mean),
            "ece": self.ece,
            "entropy": self.entropy,
            "empty_counts": dict(self.empty_counts),
        }


def class_metrics(
    pred: np.ndarray, gt: np.ndarray, *, spacing: Sequence[float], nsd_tolerance_mm: float = 1.0,
    nsd_definition: str = "voxel", empty_policy: str = "segrob",
    label: LabelSurface | None = None,
) -> ClassMetrics:
    """All metrics of two binary masks from one pair of surface distance sets (``label``: ``gt``'s
    precomputed surface, see :func:`segrob.metrics.surface.surface_distances`).

    Empty-mask policy: both empty -> Dice, IoU, NSD, sensitivity, precision 1 and HD95, ASSD 0;
    exactly one empty -> the overlap metrics and NSD 0 and HD95 = ASSD = the image diagonal in
    mm (see :mod:`segrob.metrics.overlap` for the ``0 / 0`` ratios). ``empty_policy="nnunet"``
    makes every metric NaN when both are empty. ``nsd_definition="area"`` weights the surface by
    area (DeepMind's definition, :mod:`segrob.metrics.surfels`) instead of counting voxels.
    """
    _check_choices(nsd_definition, empty_policy)
    pred, gt = binary_pair(pred, gt)
    spacing = check_spacing(spacing, pred.ndim)
    tp, fp, fn = confusion(pred, gt)
    has_pred, has_gt = tp + fp > 0, tp + fn > 0
    if not has_pred and not has_gt:
        return _empty_mask_metrics("both", diagonal=0.0) if empty_policy == "segrob" else _both_empty_nan()
    if not (has_pred and has_gt):
        empty = "pred" if not has_pred else "gt"
        return _empty_mask_metrics(empty, diagonal=image_diagonal(gt.shape, spacing))
    to_gt, to_pred = surface_distances(pred, gt, spacing=spacing, label=label)
    return ClassMetrics(
        dice=2 * tp / (2 * tp + fp + fn),
        iou=tp / (tp + fp + fn),
        hd95=hd95_from(to_gt, to_pred),
        assd=assd_from(to_gt, to_pred),
        nsd=nsd_from(to_gt, to_pred, nsd_tolerance_mm) if nsd_definition == "voxel"
        else nsd_area_from(*surfel_distances(pred, gt, spacing=spacing), nsd_tolerance_mm),
        sensitivity=tp / (tp + fn),
        precision=tp / (tp + fp),
    )


def _empty_mask_metrics(empty: str, *, diagonal: float) -> ClassMetrics:
    """The empty-mask policy for every per-class metric: distances (mm) are 0 when both masks are
    empty and the image diagonal when one is; ratios are 1 when both are empty and 0 when one is."""
    both = empty == "both"
    values = {
        name: (0.0 if both else diagonal) if METRIC_BY_NAME[name].unit == "mm" else (1.0 if both else 0.0)
        for name in METRIC_NAMES
    }
    return ClassMetrics(**values, empty=empty)


def _both_empty_nan() -> ClassMetrics:
    """nnU-Net's policy for two empty masks: nothing to score, so every metric is NaN."""
    return ClassMetrics(**dict.fromkeys(METRIC_NAMES, float("nan")), empty="both")


def _foreground_mean(scored: list[ClassMetrics], name: str) -> float:
    """Mean over the foreground classes, skipping NaN (only the nnunet policy makes any).

    Below eight values numpy's mean is a plain left-to-right sum divided by the count, so the
    same sum in Python gives its value to the last bit, without an array per metric and image.
    """
    values = [float(getattr(m, name)) for m in scored]
    finite = [v for v in values if v == v]
    if not finite:
        return float("nan")
    if len(finite) < 8:
        return sum(finite) / len(finite)
    return float(np.mean(finite))


def case_metrics(
    pred_labels: np.ndarray,
    gt_labels: np.ndarray,
    *,
    spacing: Sequence[float],
    classes: Sequence[int],
    nsd_tolerance_mm: float = 1.0,
    probabilities: np.ndarray | None = None,
    nsd_definition: str = "voxel",
    empty_policy: str = "segrob",
    labels: dict[int, LabelSurface] | None = None,
) -> CaseMetrics:
    """Metrics of each class in ``classes`` (``label == k`` as a binary mask) and their mean.

    Args:
        pred_labels: Predicted integer label map ``(*spatial)``.
        gt_labels: Label map of the same shape.
        spacing: Voxel size in mm per spatial axis.
        classes: Classes to score. Background (0), if listed, is scored but left out of the
            mean, which is over the foreground classes only.
        nsd_tolerance_mm: Tolerance of the normalised surface Dice.
        probabilities: Softmax ``(K, *spatial)``; adds the ECE and mean entropy (nats).
        nsd_definition: ``voxel`` (default: surface voxels count once, MONAI's default) or
            ``area`` (surface elements weighted by area: DeepMind's, the Decathlon's).
        empty_policy: ``segrob`` (default) or ``nnunet`` (see :data:`EMPTY_POLICIES`).
        labels: :func:`label_surfaces` of a label map, reused across the predictions scored
            against it; a class whose mask differs from ``gt_labels == k`` is computed afresh.

    Returns:
        Per-class metrics, their foreground mean and the count of each empty-mask case.
    """
    pred_labels, gt_labels = np.asarray(pred_labels), np.asarray(gt_labels)
    keys, foreground = _check_case_inputs(pred_labels, gt_labels, classes, nsd_tolerance_mm)
    spacing = check_spacing(spacing, pred_labels.ndim)
    labels = labels or {}
    per_class = {
        k: class_metrics(
            pred_labels == k, gt_labels == k, spacing=spacing, nsd_tolerance_mm=nsd_tolerance_mm,
            nsd_definition=nsd_definition, empty_policy=empty_policy, label=labels.get(k),
        )
        for k in keys
    }
    scored = [per_class[k] for k in foreground]
    mean = {name: _foreground_mean(scored, name) for name in METRIC_NAMES}
    counts = {kind: sum(m.empty == kind for m in scored) for kind in ("both", "pred", "gt")}
    ece = entropy = reliability = None
    if probabilities is not None:
        reliability = reliability_counts(probabilities, gt_labels)
        ece, entropy = ece_from(reliability), mean_entropy(probabilities)
    return CaseMetrics(
        per_class=per_class, mean=mean, ece=ece, entropy=entropy, empty_counts=counts,
        reliability=reliability,
    )


def _check_case_inputs(pred_labels: np.ndarray, gt_labels: np.ndarray, classes: Sequence[int],
                       nsd_tolerance_mm: float) -> tuple[list[int], list[int]]:
    """The classes to score and the foreground among them, once the inputs are known to fit."""
    if pred_labels.shape != gt_labels.shape:
        raise SegrobError(f"prediction shape {pred_labels.shape} differs from label shape {gt_labels.shape}")
    keys = [int(k) for k in classes]
    foreground = [k for k in keys if k != 0]
    if not foreground:
        raise SegrobError(f"case_metrics needs at least one foreground class (not 0), got {keys}")
    if len(set(keys)) != len(keys):
        raise SegrobError(f"classes {keys} list a class twice")
    if nsd_tolerance_mm < 0:
        raise SegrobError(f"NSD tolerance {nsd_tolerance_mm} mm must be >= 0")
    return keys, foreground


def _check_choices(nsd_definition: str, empty_policy: str) -> None:
    if nsd_definition not in NSD_DEFINITIONS:
        raise SegrobError(
            f"unknown NSD definition {nsd_definition!r}; choose one of {', '.join(NSD_DEFINITIONS)}"
        )
    if empty_policy not in EMPTY_POLICIES:
        raise SegrobError(
            f"unknown empty-mask policy {empty_policy!r}; choose one of {', '.join(EMPTY_POLICIES)}"
        )


def label_surfaces(
    gt_labels: np.ndarray, *, spacing: Sequence[float], classes: Sequence[int]
) -> dict[int, LabelSurface]:
    """Each class's :class:`LabelSurface`, for :func:`case_metrics` ``labels=``: built once per
    label map, it saves the label's surface and search tree in every prediction scored against it."""
    gt_labels = np.asarray(gt_labels)
    return {int(k): LabelSurface(gt_labels == k, spacing=spacing) for k in classes}
