"""Intensity normalisation: the preprocessing a model is trained with and deployed with.

The method is stored in checkpoints and ONNX metadata (``segrob.normalization``, and as the
``intensity`` part of ``segrob.preprocessing``) so that the audit feeds a deployed model exactly
what it saw in training: raw image -> perturbation -> this normalisation -> model.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from segrob.errors import SegrobError

NORMALIZATIONS = ("zscore", "fixed", "ct-window", "percentile", "robust-minmax", "none")
DEFAULT_NORMALIZATION: dict[str, Any] = {"method": "zscore"}
#: The output ranges a CT window may be scaled to.
WINDOW_RANGES = ((0.0, 1.0), (-1.0, 1.0))

_EPS = 1e-6
#: The parameters each method takes (all optional ones have defaults in :func:`check_normalization`).
_PARAMETERS = {
    "zscore": (), "robust-minmax": (), "none": (),
    "fixed": ("mean", "std", "clip"),
    "ct-window": ("level", "width", "range"),
    "percentile": ("lower", "upper"),
}


def _number(spec: dict[str, Any], key: str, default: float | None = None) -> float:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        needed = "is required" if value is None else f"must be a finite number, got {value!r}"
        raise SegrobError(f"normalisation {spec['method']}: {key} {needed}")
    return float(value)


def _pair(spec: dict[str, Any], key: str) -> tuple[float, float] | None:
    value = spec.get(key)
    if value is None:
        return None
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise SegrobError(f"normalisation {spec['method']}: {key} must be two numbers [low, high]")
    low, high = (_number({"method": spec["method"], key: v}, key) for v in value)
    if not low < high:
        raise SegrobError(f"normalisation {spec['method']}: {key} needs low < high, got {list(value)}")
    return low, high


def check_normalization(spec: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``spec`` with its parameters checked and defaults filled in.

    * ``fixed``: ``mean``, ``std`` > 0 (dataset statistics, nnU-Net's CT scheme), optional
      ``clip`` ``[low, high]`` applied first (nnU-Net clips to the dataset's 0.5/99.5 percentiles).
    * ``ct-window``: ``level``, ``width`` > 0 (e.g. 40 and 400 HU), ``range`` [0, 1] (default)
      or [-1, 1].
    * ``percentile``: ``lower`` < ``upper`` in [0, 100] (default 0.5 and 99.5).
    """
    method = spec.get("method") if isinstance(spec, dict) else None
    if method not in NORMALIZATIONS:
        raise SegrobError(f"unknown normalisation {method!r} (valid: {', '.join(NORMALIZATIONS)})")
    unknown = sorted(set(spec) - {"method", *_PARAMETERS[method]})
    if unknown:
        valid = ", ".join(_PARAMETERS[method]) or "none"
        raise SegrobError(f"normalisation {method}: unknown parameter(s) {', '.join(unknown)} "
                          f"(it takes: {valid})")
    out: dict[str, Any] = {"method": method}
    if method == "fixed":
        out["mean"], out["std"] = _number(spec, "mean"), _number(spec, "std")
        if out["std"] <= 0:
            raise SegrobError(f"normalisation fixed: std must be > 0, got {out['std']}")
        clip = _pair(spec, "clip")
        if clip is not None:
            out["clip"] = list(clip)
    elif method == "ct-window":
        out["level"], out["width"] = _number(spec, "level"), _number(spec, "width")
        if out["width"] <= 0:
            raise SegrobError(f"normalisation ct-window: width must be > 0, got {out['width']}")
        scale = _pair(spec, "range") or WINDOW_RANGES[0]
        if scale not in WINDOW_RANGES:
            raise SegrobError(f"normalisation ct-window: range must be [0, 1] or [-1, 1], got {list(scale)}")
        out["range"] = list(scale)
    elif method == "percentile":
        out["lower"], out["upper"] = _number(spec, "lower", 0.5), _number(spec, "upper", 99.5)
        if not 0 <= out["lower"] < out["upper"] <= 100:
            raise SegrobError("normalisation percentile: needs 0 <= lower < upper <= 100, "
                              f"got lower {out['lower']}, upper {out['upper']}")
    return out


def normalize(batch: torch.Tensor, spec: dict[str, Any] | None = None) -> torch.Tensor:
    """Normalise each image and channel of a ``(N, C, *spatial)`` batch on its own.

    * ``zscore``: ``(x - mean) / std`` per image and channel (nnU-Net's choice for MRI).
    * ``fixed``: clip (if asked), then ``(x - mean) / std`` with the dataset's mean and std.
    * ``ct-window``: clip to ``level -+ width / 2``, scale to [0, 1] or [-1, 1].
    * ``percentile``: clip to the image's ``lower`` and ``upper`` percentiles, scale to [0, 1].
    * ``robust-minmax``: ``percentile`` with 0.5 and 99.5.
    * ``none``: the raw intensities.

    Constant images map to zeros, never NaN.
    """
    spec = check_normalization(spec or DEFAULT_NORMALIZATION)
    method = spec["method"]
    x = batch.float()
    if method == "none":
        return x
    if method == "fixed":
        if "clip" in spec:
            x = x.clamp(*spec["clip"])
        return (x - spec["mean"]) / spec["std"]
    if method == "ct-window":
        low_out, high_out = spec["range"]
        low = spec["level"] - spec["width"] / 2.0
        unit = (x.clamp(low, low + spec["width"]) - low) / spec["width"]
        return unit * (high_out - low_out) + low_out
    flat = x.flatten(2)
    if method == "zscore":
        mean = flat.mean(dim=2, keepdim=True)
        std = flat.std(dim=2, unbiased=False, keepdim=True)
        out = (flat - mean) / std.clamp_min(_EPS)
        out = torch.where(std > _EPS, out, torch.zeros_like(out))
    else:
        bounds = (spec["lower"] / 100.0, spec["upper"] / 100.0) if method == "percentile" else ()
        low, high = robust_range(x, *bounds)
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
