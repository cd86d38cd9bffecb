"""Figures of an audit, drawn with matplotlib's object API (no pyplot state, safe in threads).

Every function takes plain numbers and returns an SVG document (text) or PNG bytes, so the HTML
report can inline them and tests can parse them. Elements that a reader (or a test) needs to
find carry an SVG id (``gid``): ``curve-<perturbation>-<model index>``, ``heatmap-<model index>``.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Colour-blind-safe (Okabe-Ito), one per model.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
LABEL_COLOUR = "#00C853"
PREDICTION_COLOUR = "#FF1744"


@dataclass(frozen=True)
class Series:
    """One model's metric against severity for one perturbation (severity 0 is the clean image).

    ``low``/``high`` bound the bootstrap interval; ``None`` where a value was not measured.
    """

    model: str
    severities: Sequence[int]
    mean: Sequence[float | None]
    low: Sequence[float | None]
    high: Sequence[float | None]


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    return figure


def _svg(figure) -> str:
    import matplotlib

    buffer = io.StringIO()
    # Text stays text (selectable, small); the page supplies the font.
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "segrob"}):
        # No RDF block: it only names vocabularies by URL, which reads like a network reference.
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None, "Format": None,
                                                      "Type": None})
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def _floats(values: Sequence[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def severity_curves(
    panels: dict[str, list[Series]], *, metric: str, lower_is_better: bool = False, columns: int = 4
) -> str:
    """Small multiples: one panel per perturbation, one line per model with its interval as a band."""
    names = list(panels)
    columns = max(1, min(columns, len(names)))
    rows = max(1, -(-len(names) // columns))
    figure = _figure(2.6 * columns, 2.1 * rows + 0.4)
    axes = figure.subplots(rows, columns, squeeze=False, sharey=True)
    for index, axis in enumerate(axes.flat):
        if index >= len(names):
            axis.set_visible(False)
            continue
        name = names[index]
        for model_index, series in enumerate(panels[name]):
            colour = PALETTE[model_index % len(PALETTE)]
            x = np.asarray(series.severities)
            mean, low, high = _floats(series.mean), _floats(series.low), _floats(series.high)
            (line,) = axis.plot(x, mean, marker="o", markersize=3, color=colour, label=series.model)
            line.set_gid(f"curve-{name}-{model_index}")
            band = np.isfinite(low) & np.isfinite(high)
            if band.any():
                axis.fill_between(x[band], low[band], high[band], color=colour, alpha=0.18, linewidth=0)
        axis.set_title(name, fontsize=9)
        axis.set_xticks(list(panels[name][0].severities))
        axis.tick_params(labelsize=8)
        axis.grid(alpha=0.3)
        if index % columns == 0:
            axis.set_ylabel(metric + (" (lower is better)" if lower_is_better else ""), fontsize=8)
    figure.supxlabel("severity (0 = clean)", fontsize=9)
    if any(len(series_list) > 1 for series_list in panels.values()):
        handles, labels = axes.flat[0].get_legend_handles_labels()
        figure.legend(handles, labels, loc="outside upper center", ncols=min(4, len(labels)), fontsize=8)
    return _svg(figure)


def delta_heatmap(
    perturbations: Sequence[str],
    severities: Sequence[int],
    deltas: np.ndarray,
    significant: np.ndarray,
    *,
    title: str,
    gid: str,
) -> str:
    """Perturbation x severity grid of the paired change from clean; significant cells outlined.

    ``deltas`` and ``significant`` are ``(len(perturbations), len(severities))``; NaN where a
    perturbation has no such severity.
    """
    from matplotlib.patches import Rectangle

    deltas = np.asarray(deltas, dtype=np.float64)
    limit = float(np.nanmax(np.abs(deltas))) if np.isfinite(deltas).any() else 1.0
    limit = max(limit, 1e-3)
    figure = _figure(1.2 + 0.75 * len(severities), 0.9 + 0.32 * len(perturbations))
    axis = figure.add_subplot()
    image = axis.imshow(deltas, cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
    image.set_gid(gid)
    axis.set_xticks(range(len(severities)), [str(s) for s in severities], fontsize=8)
    axis.set_yticks(range(len(perturbations)), list(perturbations), fontsize=8)
    axis.set_xlabel("severity", fontsize=8)
    axis.set_title(title, fontsize=9)
    for row, column in zip(*np.nonzero(np.isfinite(deltas)), strict=True):
        value = deltas[row, column]
        strong = abs(value) > 0.6 * limit
        axis.text(column, row, f"{value:+.2f}", ha="center", va="center", fontsize=7,
                  color="white" if strong else "black")
        if significant[row, column]:
            axis.add_patch(Rectangle((column - 0.5, row - 0.5), 1, 1, fill=False, edgecolor="black",
                                     linewidth=1.6))
    figure.colorbar(image, ax=axis, shrink=0.8).ax.tick_params(labelsize=7)
    return _svg(figure)


def reliability_diagram(
    curves: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], *, title: str
) -> str:
    """Accuracy against confidence per bin, one line per scope (``clean``, ``perturbed``).

    Each value is ``(confidence_sum, correct_sum, count)`` per equal-width bin; empty bins are
    left out. The diagonal is perfect calibration.
    """
    figure = _figure(3.4, 3.2)
    axis = figure.add_subplot()
    axis.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
    for index, (scope, (confidence, correct, count)) in enumerate(curves.items()):
        count = np.asarray(count, dtype=np.float64)
        used = count > 0
        if not used.any():
            continue
        x = np.asarray(confidence, dtype=np.float64)[used] / count[used]
        y = np.asarray(correct, dtype=np.float64)[used] / count[used]
        (line,) = axis.plot(x, y, marker="o", markersize=3, color=PALETTE[index % len(PALETTE)], label=scope)
        line.set_gid(f"reliability-{scope}")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1)
    axis.set_xlabel("confidence", fontsize=8)
    axis.set_ylabel("accuracy", fontsize=8)
    axis.set_title(title, fontsize=9)
    axis.tick_params(labelsize=7)
    axis.legend(fontsize=7)
    return _svg(figure)


def overlay_png(
    image: np.ndarray,
    label: np.ndarray,
    prediction: np.ndarray,
    *,
    aspect: float = 1.0,
    title: str = "",
    size: float = 2.4,
) -> bytes:
    """A 2D slice in grey with the label (green) and the prediction (red) drawn as contours.

    ``aspect`` is the height of a pixel over its width (the voxel spacing ratio), so anisotropic
    slices keep their true proportions.
    """
    image = np.asarray(image, dtype=np.float64)
    finite = image[np.isfinite(image)]
    low, high = (np.percentile(finite, [0.5, 99.5]) if finite.size else (0.0, 1.0))
    figure = _figure(size, size * min(3.0, max(0.33, aspect * image.shape[0] / max(1, image.shape[1]))))
    axis = figure.add_subplot()
    axis.imshow(image, cmap="gray", vmin=low, vmax=high if high > low else low + 1, aspect=aspect,
                interpolation="nearest")
    for mask, colour in ((label, LABEL_COLOUR), (prediction, PREDICTION_COLOUR)):
        mask = np.asarray(mask)
        for value in np.unique(mask[mask > 0]):
            axis.contour((mask == value).astype(np.float32), levels=[0.5], colors=colour, linewidths=1.0)
    axis.set_axis_off()
    if title:
        axis.set_title(title, fontsize=7)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return buffer.getvalue()
