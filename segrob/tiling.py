"""Logits for whole images from any predict function: padding, sliding windows, stitching.

Validation (a PyTorch model) and the audit (an onnxruntime session) both infer through here, so a
model's validation Dice and its clean Dice in the audit are computed the same way. An image goes
through in one piece, zero-padded at its far end to a size the model accepts, unless it needs a
window: a fixed-size model (UNETR) on any other size, or a patch-trained model on an image larger
than its patch. Windows overlap by ``overlap`` of their size and are stitched with Gaussian
importance weights (sigma 1/8 of the window), as nnU-Net does, so the centre of a window, where
the model saw the most context, counts most. Everything stays a torch tensor on the device of the
images (tiles) and of the logits (stitching).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

#: Share of a window that overlaps its neighbour, for validation and the audit alike.
DEFAULT_OVERLAP = 0.5

#: How the audit feeds an image: ``window`` (the default: a fixed-size model in windows of its size, a
#: patch-trained 3D model in windows of its patch) or ``whole`` (each image in one pass, for fully
#: convolutional models: no stitching seams and no overlapping work, at memory that grows with the
#: whole volume times the batch).
INFERENCE_MODES = ("window", "whole")

#: A batch ``(N, C, *spatial)`` in, logits ``(N, K, *spatial)`` out.
Predict = Callable[[torch.Tensor], torch.Tensor]


def tiled_logits(
    images: torch.Tensor,
    predict: Predict,
    *,
    window: Sequence[int] | None = None,
    fixed_size: bool = False,
    size_multiple: int = 1,
    min_size: int = 1,
    overlap: float = DEFAULT_OVERLAP,
    batch_size: int = 8,
) -> torch.Tensor:
    """Logits ``(B, K, *spatial)`` for a batch of images ``(B, C, *spatial)``.

    ``window`` is the size a fixed-size model takes (``fixed_size=True``) or the patch a model
    was trained on; without one, or when the image fits in it and the model is not fixed-size,
    the image goes through whole, padded to a multiple of ``size_multiple`` (at least
    ``min_size``). ``predict`` sees at most ``batch_size`` images or windows at a time.
    """
    spatial = tuple(images.shape[2:])
    fits = window is not None and all(s <= w for s, w in zip(spatial, window, strict=True))
    if window is None or (fits and (not fixed_size or spatial == tuple(window))):
        target = tuple(accepted_size(s, size_multiple, min_size) for s in spatial)
        return whole_image_logits(images, predict, target, batch_size=batch_size)
    return sliding_window_logits(images, predict, tuple(int(w) for w in window),
                                 overlap=overlap, batch_size=batch_size)


def inference_window(
    mode: str, *, spatial_dims: int, fixed: Sequence[int] | None, window: Sequence[int] | None,
    patch: Sequence[int] | None,
) -> tuple[int, ...] | None:
    """The window the audit infers in (``None``: whole images) for ``mode`` (:data:`INFERENCE_MODES`),
    a fixed-size model's size, an explicit ``--window`` and the 3D training patch."""
    from segrob.errors import UsageError

    if mode not in INFERENCE_MODES:
        raise UsageError(f"--inference must be one of {', '.join(INFERENCE_MODES)}, got {mode!r}")
    if mode == "whole":
        if fixed:
            raise UsageError(f"--inference whole needs a fully convolutional model; this one takes "
                             f"only {tuple(fixed)} (it runs in windows)")
        if window:
            raise UsageError("--inference whole and --window contradict each other: give one")
        return None
    chosen = fixed or window or (patch if spatial_dims == 3 else None)
    return tuple(chosen) if chosen else None


def accepted_size(size: int, multiple: int, minimum: int = 1) -> int:
    """The smallest size ``>= size`` that is a multiple of ``multiple`` and at least ``minimum``."""
    multiple = max(1, int(multiple))
    return max(-(-int(size) // multiple) * multiple, int(minimum))


def pad_end(tensor: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Zero-pad the last ``len(shape)`` axes at their far end up to ``shape``."""
    extra = [t - s for s, t in zip(tensor.shape[-len(shape):], shape, strict=True)]
    if not any(extra):
        return tensor
    widths: list[int] = []
    for e in reversed(extra):  # F.pad lists the last axis first
        widths += [0, e]
    return F.pad(tensor, widths)


def window_starts(size: int, window: int, overlap: float) -> list[int]:
    """Start offsets of windows covering ``[0, size)``; the last one is flush with the end."""
    if size <= window:
        return [0]
    stride = max(1, int(window * (1.0 - overlap)))
    starts = list(range(0, size - window, stride))
    return [*starts, size - window]


def gaussian_importance(window: Sequence[int], device: torch.device | str | None = None) -> torch.Tensor:
    """Weights that trust a window's centre more than its edges (sigma = 1/8 of the window,
    peak 1, floor 1e-3 so that every voxel of a window counts a little)."""
    weights = torch.ones((), dtype=torch.float64, device=device)
    for size in window:
        offsets = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2.0
        sigma = max(size / 8.0, 1e-3)
        weights = weights[..., None] * torch.exp(-0.5 * (offsets / sigma) ** 2)
    return (weights / weights.max()).clamp_min(1e-3).float()


def whole_image_logits(
    images: torch.Tensor, predict: Predict, shape: Sequence[int], *, batch_size: int = 8
) -> torch.Tensor:
    """Pad ``images`` at their far end to ``shape``, predict in batches, crop back."""
    spatial = tuple(images.shape[2:])
    padded = pad_end(images, shape)
    step = max(1, batch_size)
    parts = [predict(padded[i:i + step].contiguous()) for i in range(0, len(padded), step)]
    logits = parts[0] if len(parts) == 1 else torch.cat(parts)  # one batch: no copy
    return logits[(slice(None), slice(None), *(slice(0, s) for s in spatial))]


def sliding_window_logits(
    images: torch.Tensor,
    predict: Predict,
    window: tuple[int, ...],
    *,
    overlap: float = DEFAULT_OVERLAP,
    batch_size: int = 8,
) -> torch.Tensor:
    """Tile each image (zero-padded up to ``window`` where smaller), predict the windows of all
    images in batches of ``batch_size`` and stitch them with Gaussian importance weights."""
    spatial = tuple(images.shape[2:])
    full = tuple(max(s, w) for s, w in zip(spatial, window, strict=True))
    padded = pad_end(images, full)
    starts = [window_starts(s, w, overlap) for s, w in zip(full, window, strict=True)]
    regions = [tuple(slice(c, c + w) for c, w in zip(corner, window, strict=True))
               for corner in itertools.product(*starts)]
    tiles = [(index, region) for index in range(len(images)) for region in regions]
    step = max(1, batch_size)
    total = weights = None
    for first in range(0, len(tiles), step):
        group = tiles[first:first + step]
        logits = predict(torch.stack([padded[(index, slice(None), *region)] for index, region in group]))
        if total is None:
            weights = gaussian_importance(window, logits.device)
            dtype = torch.promote_types(logits.dtype, torch.float32)
            total = torch.zeros((len(images), logits.shape[1], *full), dtype=dtype, device=logits.device)
        for (index, region), tile in zip(group, logits, strict=True):
            total[(index, slice(None), *region)].addcmul_(tile, weights)
    assert total is not None and weights is not None  # an image has at least one window
    # Every image has the same windows: their summed weights are computed once for the batch.
    coverage = torch.zeros(full, dtype=total.dtype, device=total.device)
    for region in regions:
        coverage[region] += weights
    return (total / coverage)[(slice(None), slice(None), *(slice(0, s) for s in spatial))]
