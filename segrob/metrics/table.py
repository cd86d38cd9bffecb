"""The one table of metrics: every place that lists, orders, gates or shows a metric reads it.

A per-class metric is computed for each class by :func:`segrob.metrics.case.class_metrics` and
averaged over the foreground classes; an image-level one (calibration) is computed once per image
from the softmax. Adding a metric is one entry here and the function that computes it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    """One metric: how it is named, measured, ordered and shown.

    ``gateable`` metrics may take a ``--fail-under`` bound; bounds are minimums, so a gateable
    metric must be higher-is-better. ``digits`` is how many decimals tables show.
    """

    name: str
    label: str
    unit: str
    lower_is_better: bool
    gateable: bool
    per_class: bool
    digits: int = 3

    def __post_init__(self) -> None:
        if self.gateable and self.lower_is_better:
            raise ValueError(f"metric {self.name}: a gate bound is a minimum, so it must be higher-is-better")

    @property
    def heading(self) -> str:
        """Column heading: the label and its unit (``HD95 mm``)."""
        return f"{self.label} {self.unit}".strip()


METRIC_TABLE: tuple[Metric, ...] = (
    Metric("dice", "Dice", "", lower_is_better=False, gateable=True, per_class=True),
    Metric("iou", "IoU", "", lower_is_better=False, gateable=True, per_class=True),
    Metric("hd95", "HD95", "mm", lower_is_better=True, gateable=False, per_class=True, digits=2),
    Metric("assd", "ASSD", "mm", lower_is_better=True, gateable=False, per_class=True, digits=2),
    Metric("nsd", "NSD", "", lower_is_better=False, gateable=True, per_class=True),
    Metric("sensitivity", "sensitivity", "", lower_is_better=False, gateable=True, per_class=True),
    Metric("precision", "precision", "", lower_is_better=False, gateable=True, per_class=True),
    Metric("ece", "ECE", "", lower_is_better=True, gateable=False, per_class=False),
    Metric("entropy", "entropy", "nats", lower_is_better=True, gateable=False, per_class=False),
)

METRIC_BY_NAME: dict[str, Metric] = {m.name: m for m in METRIC_TABLE}


def metric_names(*, per_class: bool | None = None, gateable: bool | None = None) -> tuple[str, ...]:
    """Names in table order, optionally only the per-class (or image-level) or gateable ones."""
    return tuple(
        m.name
        for m in METRIC_TABLE
        if (per_class is None or m.per_class == per_class) and (gateable is None or m.gateable == gateable)
    )
