"""One self-contained HTML page for one or several audit reports: no network, no external files.

Plots are inline SVG (matplotlib), gallery thumbnails inline PNG (data URIs), the page a Jinja2
template with autoescaping; it opens offline and prints.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

from segrob.audit.compare import report_pairs
from segrob.errors import UsageError
from segrob.metrics.table import METRIC_BY_NAME
from segrob.render import plots
from segrob.render.view import ReportView
from segrob.report import AuditReport


@dataclass(frozen=True)
class GalleryItem:
    """One worst cell drawn for the gallery: the perturbed and the clean case, contours drawn."""

    model: str
    case: str
    perturbation: str
    severity: int
    dice: float | None
    clean_dice: float | None
    perturbed_png: bytes
    clean_png: bytes

    @property
    def perturbed_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.perturbed_png).decode("ascii")

    @property
    def clean_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.clean_png).decode("ascii")


def html_report(
    reports: Sequence[AuditReport],
    labels: Sequence[str],
    *,
    metric: str = "nsd",
    gallery: Sequence[GalleryItem] | None = None,
) -> str:
    """The page for ``reports`` (compared when several), Dice and ``metric`` against severity.

    ``gallery`` defaults to the worst cells the reports kept (:func:`gallery_items`).
    """
    import jinja2

    spec = METRIC_BY_NAME.get(metric)
    if spec is None or spec.name == "dice":
        others = ", ".join(name for name in METRIC_BY_NAME if name != "dice")
        raise UsageError(f"--metric {metric!r}: choose a second metric among {others}")
    views = [ReportView(label, r) for r, label in zip(reports, labels, strict=True)]
    names = list(dict.fromkeys(n for v in views for n in v.perturbations))
    figures = {
        "dice": plots.severity_curves(_panels(views, names, "dice"), metric="Dice"),
        "second": plots.severity_curves(
            _panels(views, names, spec.name), metric=spec.heading, lower_is_better=spec.lower_is_better
        ),
        "reliability": [
            plots.reliability_diagram(_reliability(view), title=f"{view.label}: reliability")
            if view.report.reliability else None for view in views
        ],
        "heatmaps": [
            plots.delta_heatmap(*view.delta_grid(), title=f"{view.label}: change in Dice from clean",
                                gid=f"heatmap-{index}")
            for index, view in enumerate(views)
        ],
    }
    template = jinja2.Environment(
        loader=jinja2.FunctionLoader(_template), autoescape=True, undefined=jinja2.StrictUndefined
    ).get_template("report.html.j2")
    if gallery is None:
        gallery = gallery_items(reports, labels)
    pairs = report_pairs(list(reports), list(labels)) if len(reports) > 1 else []
    return template.render(views=views, names=names, figures=figures, metric=spec, gallery=gallery,
                           pairs=pairs)


def gallery_items(reports: Sequence[AuditReport], labels: Sequence[str]) -> list[GalleryItem]:
    """The kept worst cells of every report, drawn with label and prediction contours."""
    items = []
    for report, label in zip(reports, labels, strict=True):
        for example in report.examples:
            if not example.arrays and report.folder is not None:
                example.load(report.folder)
            if not example.arrays:
                continue
            arrays, aspect = example.arrays, example.view.aspect
            title = f"{example.perturbation} s{example.severity}"
            items.append(GalleryItem(
                model=label, case=example.case, perturbation=example.perturbation,
                severity=example.severity, dice=example.dice, clean_dice=example.clean_dice,
                perturbed_png=plots.overlay_png(arrays["image"], arrays["label"], arrays["prediction"],
                                                aspect=aspect, title=title),
                clean_png=plots.overlay_png(arrays["clean_image"], arrays["clean_label"],
                                            arrays["clean_prediction"], aspect=aspect, title="clean"),
            ))
    return items


def _reliability(view: ReportView) -> dict:
    """Per scope the (confidence sum, correct sum, count) arrays the diagram divides."""
    import numpy as np

    return {scope: (np.asarray(t["confidence_sum"]), np.asarray(t["correct_sum"]), np.asarray(t["count"]))
            for scope, t in (view.report.reliability or {}).items()}


def _panels(views: list[ReportView], names: list[str], metric: str) -> dict[str, list[plots.Series]]:
    return {name: [v.series(name, metric) for v in views if name in v.perturbations] for name in names}


def _template(name: str) -> str:
    return resources.files("segrob.render").joinpath("templates", name).read_text(encoding="utf-8")
