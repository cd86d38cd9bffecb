"""Intensity normalisation: the preprocessing a model is trained with and deployed with.

The method is stored in checkpoints and ONNX metadata (``segrob.normalization``) so that the
audit feeds a deployed model exactly what it saw in training: raw image -> perturbation ->
this normalisation -> model.
"""

from __future__ import annotations

from typing import Any

import torch

from segrob.errors import SegrobError

NORMALIZATIONS = ("zscore", "robust-minmax", "none")
DEFAULT_NORMALIZATION: dict[str, Any] = {"method": "zscore"}

_EPS = 1e-6


def check_normalization(spec: dict[str, Any]) -> dict[str, Any]:
    method = spec.get("method")
    if method not in NORMALIZATIONS:
        raise SegrobError(
            f"unknown normalisation {method!r} (valid: {', '.join(NORMALIZATIONS)})"
        )
    return dict(spec)


def normalize(batch: torch.Tensor, spec: dict[str, Any] | None = None) -> torch.Tensor:
    """Normalise each image and channel of a ``(N, C, *spatial)`` batch on its own.

    * ``zscore``: ``(x - mean) / std`` per image and channel (nnU-Net's choice for MRI).
    * ``robust-minmax``: clip to the 0.5 and 99.5 percentiles, scale to [0, 1].
    * ``none``: the raw intensities.

    Constant images map to zeros, never NaN.
    """
    spec = check_normalization(spec or DEFAULT_NORMALIZATION)
    method = spec["method"]
    x = batch.float()
    if method == "none":
        return x
    flat = x.flatten(2)
    if method == "zscore":
        mean = flat.mean(dim=2, keepdim=True)
        std = flat.std(dim=2, unbiased=False, keepdim=True)
        out = (flat - mean) / std.clamp_min(_EPS)
        out = torch.where(std > _EPS, out, torch.zeros_like(out))
    else:
        low, high = robust_range(x)
        span = (high - low).flatten(2)
        out = (flat.clamp(low.flatten(2), high.flatten(2)) - low.flatten(2)) / span.clamp_min(_EPS)
        out = torch.where(span > _EPS, out, torch.zeros_like(out))
    return out.view_as(x)


def robust_range(
    batch: torch.Tensor, lower: float = 0.005, upper: float = 0.995
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image and channel 0.5 and 99.5 percentiles, shaped ``(N, C, 1, ...)`` to broadcast.

    Perturbations scale their intensity parameters by this range, so one suite means the same
    on CT (Hounsfield units), MRI (arbitrary units) and 8-bit images.
    """
    flat = batch.float().flatten(2)
    # Percentiles of a strided sample of at most 2**18 voxels per image: exact enough for a
    # scale, and a selection (kthvalue) instead of a sort keeps 3D batches fast.
    step = max(1, flat.shape[2] // 262_144)
    sample = flat[:, :, ::step]
    n = sample.shape[2]
    low = torch.kthvalue(sample, min(n, round(lower * (n - 1)) + 1), dim=2).values
    high = torch.kthvalue(sample, min(n, round(upper * (n - 1)) + 1), dim=2).values
    shape = (batch.shape[0], batch.shape[1]) + (1,) * (batch.ndim - 2)
    return low.reshape(shape), high.reshape(shape)
