"""Whole-image and sliding-window prediction with a PyTorch model (validation and tests)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from segrob.models.sizes import nearest_valid_size


def window_starts(size: int, window: int, overlap: float) -> list[int]:
    """Start offsets of windows covering ``[0, size)``; the last one is flush with the end."""
    if size <= window:
        return [0]
    stride = max(1, int(window * (1.0 - overlap)))
    starts = list(range(0, size - window, stride))
    return [*starts, size - window]


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    image: torch.Tensor,
    *,
    window: tuple[int, ...] | None = None,
    overlap: float = 0.25,
    batch_size: int = 4,
) -> torch.Tensor:
    """Logits ``(K, *spatial)`` for one normalised image ``(C, *spatial)``.

    Without ``window`` the image goes through in one piece (zero-padded at the end to a size
    the model accepts, then cropped). With ``window`` it is tiled with ``overlap`` and the
    logits of overlapping windows are averaged (uniform weights).
    """
    spatial = tuple(image.shape[1:])
    fixed = getattr(model, "fixed_size", None)
    if window is None and fixed is not None and tuple(fixed) != spatial:
        window = tuple(fixed)
    if window is None:
        padded = tuple(_accepted(model, s) for s in spatial)
        x = pad_end(image, padded)
        logits = model(x[None])[0]
        return logits[(slice(None), *(slice(0, s) for s in spatial))]
    window = tuple(int(w) for w in window)
    x = pad_end(image, tuple(max(s, w) for s, w in zip(spatial, window, strict=True)))
    full = tuple(x.shape[1:])
    starts = list(itertools.product(
        *(window_starts(s, w, overlap) for s, w in zip(full, window, strict=True))
    ))
    total = None
    count = torch.zeros((1, *full), device=x.device)
    for first in range(0, len(starts), batch_size):
        group = starts[first:first + batch_size]
        slices = [tuple(slice(s, s + w) for s, w in zip(st, window, strict=True)) for st in group]
        batch = torch.stack([x[(slice(None), *sl)] for sl in slices])
        out = model(batch)
        if total is None:
            total = torch.zeros((out.shape[1], *full), device=x.device, dtype=out.dtype)
        for logits, sl in zip(out, slices, strict=True):
            total[(slice(None), *sl)] += logits
            count[(slice(None), *sl)] += 1
    assert total is not None
    return (total / count)[(slice(None), *(slice(0, s) for s in spatial))]


def _accepted(model: nn.Module, size: int) -> int:
    """The smallest size ``>= size`` that the model accepts."""
    multiple = int(getattr(model, "size_multiple", 1))
    padded = -(-size // multiple) * multiple
    return max(padded, nearest_valid_size(model, padded))


def pad_end(tensor: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Zero-pad the last ``len(shape)`` axes at their far end up to ``shape``."""
    extra = [t - s for s, t in zip(tensor.shape[-len(shape):], shape, strict=True)]
    if not any(extra):
        return tensor
    widths: list[int] = []
    for e in reversed(extra):  # F.pad lists the last axis first
        widths += [0, e]
    return F.pad(tensor, widths)
