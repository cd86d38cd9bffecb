"""Which 2D view of a case to draw, and in what proportions.

3D cases are shown by the slice through the largest extent of the label: across the axis with the
coarsest spacing (the through-plane axis of an anisotropic scan; the first axis when isotropic),
at the index where the label covers the most voxels (the middle slice when there is no label).
The aspect of a drawn pixel, height over width, is the ratio of the two in-plane spacings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SliceView:
    """Where a 2D view of a case lies: ``axis``/``index`` are ``None`` for 2D cases."""

    axis: int | None
    index: int | None
    aspect: float

    def take(self, array: np.ndarray) -> np.ndarray:
        """The view of ``array`` over the case's spatial axes (leading axes kept)."""
        if self.axis is None:
            return array
        spatial_axis = array.ndim - 3 + self.axis
        return np.take(array, self.index, axis=spatial_axis)

    def to_dict(self) -> dict:
        return {"axis": self.axis, "index": self.index, "aspect": self.aspect}


def choose_view(shape: Sequence[int], spacing: Sequence[float] | None, label: np.ndarray | None) -> SliceView:
    """The slice through the largest extent of ``label`` (see the module docstring)."""
    spacing = tuple(float(s) for s in spacing) if spacing else (1.0,) * len(shape)
    if len(shape) == 2:
        return SliceView(axis=None, index=None, aspect=spacing[0] / spacing[1])
    coarsest = max(spacing)
    axis = spacing.index(coarsest) if coarsest > min(spacing) * 1.01 else 0
    if label is not None and np.any(label):
        others = tuple(a for a in range(3) if a != axis)
        index = int(np.argmax(np.count_nonzero(label, axis=others)))
    else:
        index = int(shape[axis]) // 2
    rows, columns = (spacing[a] for a in range(3) if a != axis)
    return SliceView(axis=axis, index=index, aspect=rows / columns)
