"""The unit every stage works on: one image with its label map and voxel spacing."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Case:
    """One labelled image.

    Attributes:
        name: identifier, unique within a dataset (file stem without channel suffix).
        image: float32 array, channels first: ``(C, *spatial)`` with 2 or 3 spatial axes.
        label: integer map of shape ``spatial`` (int32), or ``None`` for unlabelled images.
        spacing: physical size of a voxel along each spatial axis, in mm.
        source: where the arrays came from (``image`` and ``label`` paths), for messages.
    """

    name: str
    image: np.ndarray
    label: np.ndarray | None
    spacing: tuple[float, ...]
    source: dict[str, str] = field(default_factory=dict)

    @property
    def spatial_dims(self) -> int:
        return self.image.ndim - 1

    @property
    def in_channels(self) -> int:
        return int(self.image.shape[0])

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.image.shape[1:])

    @property
    def foreground_ratio(self) -> float:
        """Share of voxels with a non-zero label (the FBR of the whole image)."""
        if self.label is None or self.label.size == 0:
            return float("nan")
        return float(np.count_nonzero(self.label)) / float(self.label.size)
