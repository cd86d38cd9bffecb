"""From raw image batches to logits through any predict function (onnxruntime in the audit).

Order, as in deployment: the raw (perturbed) image -> the model's own normalisation -> padding
to a size the network accepts, or a sliding window for fixed-size models and large images ->
logits cropped back to the image.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from segrob.data.normalize import normalize
from segrob.training.inference import pad_end, window_starts

PredictFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class InferencePlan:
    """How to feed a model: its normalisation, accepted sizes and window."""

    spatial_dims: int
    in_channels: int
    normalization: dict
    size_multiple: int = 16
    window: tuple[int, ...] | None = None
    fixed_size: bool = False
    overlap: float = 0.5
    batch_size: int = 8

    def to_dict(self) -> dict:
        return {
            "spatial_dims": self.spatial_dims,
            "in_channels": self.in_channels,
            "normalization": self.normalization,
            "size_multiple": self.size_multiple,
            "window": list(self.window) if self.window else None,
            "fixed_size": self.fixed_size,
            "overlap": self.overlap,
            "batch_size": self.batch_size,
        }


def predict(images: torch.Tensor, plan: InferencePlan, run: PredictFn) -> np.ndarray:
    """Logits ``(B, K, *spatial)`` for a raw batch ``(B, C, *spatial)``.

    The batch stays a torch tensor on its device until ``run``: on CUDA the session binds it in
    place (IOBinding), so perturbed batches never travel to the host and back.
    """
    batch = normalize(images, plan.normalization).float()
    spatial = tuple(batch.shape[2:])
    fits = plan.window is not None and all(s <= w for s, w in zip(spatial, plan.window, strict=True))
    if plan.window is None or (fits and not plan.fixed_size):
        return _padded(batch, plan, run)
    return _sliding_window(batch, plan, run)


def _run_chunks(batch: torch.Tensor, plan: InferencePlan, run: PredictFn) -> np.ndarray:
    outputs = [np.asarray(run(batch[i : i + plan.batch_size].contiguous()), dtype=np.float32)
               for i in range(0, batch.shape[0], plan.batch_size)]
    return np.concatenate(outputs, axis=0)


def _padded(batch: torch.Tensor, plan: InferencePlan, run: PredictFn) -> np.ndarray:
    """Pad each axis up to a multiple of ``size_multiple``, run, crop back."""
    spatial = tuple(batch.shape[2:])
    multiple = max(1, plan.size_multiple)
    target = [int(np.ceil(s / multiple) * multiple) for s in spatial]
    logits = _run_chunks(pad_end(batch, target), plan, run)
    crop = (slice(None), slice(None), *[slice(0, s) for s in spatial])
    return logits[crop]


def gaussian_importance(window: tuple[int, ...]) -> np.ndarray:
    """Weights that trust a window's centre more than its edges (sigma = 1/8 of the window)."""
    axes = []
    for w in window:
        x = np.arange(w, dtype=np.float64) - (w - 1) / 2.0
        sigma = max(w / 8.0, 1e-3)
        axes.append(np.exp(-0.5 * (x / sigma) ** 2))
    weights = axes[0]
    for axis in axes[1:]:
        weights = np.multiply.outer(weights, axis)
    weights = weights / weights.max()
    return np.maximum(weights, 1e-3).astype(np.float32)


def _sliding_window(batch: torch.Tensor, plan: InferencePlan, run: PredictFn) -> np.ndarray:
    assert plan.window is not None
    window = plan.window
    spatial = tuple(batch.shape[2:])
    # Images smaller than the window along an axis are padded up to it.
    padded_shape = [max(s, w) for s, w in zip(spatial, window, strict=True)]
    padded = pad_end(batch, padded_shape)
    starts = [window_starts(p, w, plan.overlap) for p, w in zip(padded_shape, window, strict=True)]
    corners = list(itertools.product(*starts))
    weights = gaussian_importance(window)
    results = []
    for image in padded:
        tiles = torch.stack([
            image[(slice(None), *[slice(c, c + w) for c, w in zip(corner, window, strict=True)])]
            for corner in corners
        ])
        logits = _run_chunks(tiles, plan, run)
        total = np.zeros((logits.shape[1], *padded_shape), dtype=np.float32)
        norm = np.zeros(padded_shape, dtype=np.float32)
        for corner, tile in zip(corners, logits, strict=True):
            region = tuple(slice(c, c + w) for c, w in zip(corner, window, strict=True))
            total[(slice(None), *region)] += tile * weights
            norm[region] += weights
        results.append(total / norm)
    stacked = np.stack(results)
    return stacked[(slice(None), slice(None), *[slice(0, s) for s in spatial])]


def softmax(logits: np.ndarray, axis: int = 1) -> np.ndarray:
    shifted = logits - logits.max(axis=axis, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=axis, keepdims=True)
