"""What a dataset holds: cases, shapes, spacing, label values, foreground ratio."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from segrob.data.dataset import Dataset


@dataclass(frozen=True)
class DatasetInfo:
    """A summary of a dataset, read case by case (never all in memory)."""

    root: str
    layout: str
    n_cases: int
    spatial_dims: list[int]
    channels: list[int]
    shapes: dict[str, list[int]]
    spacing: dict[str, list[float]]
    label_values: list[int]
    foreground_ratio: dict[str, float]
    intensity: dict[str, float]
    synthetic: dict = field(default_factory=dict)
    cases: list[dict] = field(default_factory=list)
    #: Names of the label values and the ignore label, as ``dataset.json`` states them.
    labels: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def describe_dataset(
    dataset: Dataset, *, progress: Callable[[int], None] | None = None
) -> DatasetInfo:
    """Read every case once and summarise it; a bad case raises its own clear error."""
    shapes, spacings, ratios, rows = [], [], [], []
    dims, channels, labels = set(), set(), set()
    low, high = np.inf, -np.inf
    for index, case in enumerate(dataset):
        shapes.append(case.spatial_shape)
        spacings.append(case.spacing)
        dims.add(case.spatial_dims)
        channels.add(case.in_channels)
        if case.label is not None:
            labels.update(int(v) for v in np.unique(case.label))
        ratios.append(case.foreground_ratio)
        low = min(low, float(case.image.min()))
        high = max(high, float(case.image.max()))
        rows.append(
            {
                "name": case.name,
                "shape": list(case.image.shape),
                "spacing": [round(s, 4) for s in case.spacing],
                "foreground_ratio": round(case.foreground_ratio, 6),
            }
        )
        if progress is not None:
            progress(index + 1)
    shape_array = np.array(shapes) if len(dims) == 1 else None
    spacing_array = np.array(spacings) if len(dims) == 1 else None
    synthetic = dataset.metadata
    return DatasetInfo(
        root=str(dataset.root),
        layout=dataset.kind,
        n_cases=len(rows),
        spatial_dims=sorted(dims),
        channels=sorted(channels),
        shapes=_range(shape_array, int),
        spacing=_range(spacing_array, float),
        label_values=sorted(labels),
        foreground_ratio={
            "mean": round(float(np.mean(ratios)), 6),
            "min": round(float(np.min(ratios)), 6),
            "max": round(float(np.max(ratios)), 6),
        },
        intensity={"min": low, "max": high},
        synthetic={k: v for k, v in synthetic.items() if k != "cases"},
        cases=rows,
        labels=dataset.layout.labels.to_dict(),
    )


def _range(values: np.ndarray | None, kind: type) -> dict[str, list]:
    if values is None:
        return {}
    return {
        "min": [kind(v) for v in values.min(axis=0)],
        "max": [kind(v) for v in values.max(axis=0)],
    }
