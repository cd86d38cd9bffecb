"""Reductions over cases and their confidence intervals: percentile bootstrap, plain and paired."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from segrob.errors import SegrobError

REDUCTIONS = ("mean", "median", "none")
# resampled values held at once; bounds memory for audits with many cases
_BOOTSTRAP_BLOCK = 2_000_000


def _require_finite(values: Sequence[float], what: str) -> np.ndarray:
    data = np.asarray(values, dtype=np.float64).ravel()
    if data.size == 0:
        raise SegrobError(f"{what} needs at least one value")
    if not np.all(np.isfinite(data)):
        raise SegrobError(f"{what} got NaN or infinite values; drop or score them first")
    return data


def aggregate(
    values: Sequence[float], *, reduction: Literal["mean", "median", "none"] = "mean"
) -> float | np.ndarray:
    """Per-case values reduced to one number (``mean``, ``median``) or kept (``none``)."""
    if reduction not in REDUCTIONS:
        raise SegrobError(f"unknown reduction {reduction!r}; choose one of {', '.join(REDUCTIONS)}")
    data = _require_finite(values, "aggregate")
    if reduction == "none":
        return data
    return float(data.mean() if reduction == "mean" else np.median(data))


def bootstrap_ci(
    values: Sequence[float], *, n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean over cases.

    Draws ``n_resamples`` samples of the ``n`` cases with replacement, takes each sample's mean
    and returns the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of those
    means. One value gives the degenerate interval ``(v, v)``. Same seed, same interval.
    """
    data = _require_finite(values, "bootstrap_ci")
    if n_resamples < 1:
        raise SegrobError(f"bootstrap_ci needs n_resamples >= 1, got {n_resamples}")
    if not 0.0 < confidence < 1.0:
        raise SegrobError(f"confidence {confidence} must lie strictly between 0 and 1")
    if data.size == 1:
        return float(data[0]), float(data[0])
    rng = np.random.default_rng(seed)
    block = max(1, _BOOTSTRAP_BLOCK // data.size)
    means = np.concatenate([
        data[rng.integers(0, data.size, size=(min(block, n_resamples - start), data.size))].mean(1)
        for start in range(0, n_resamples, block)
    ])
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return float(low), float(high)


def paired_bootstrap_ci(
    baseline: Sequence[float],
    changed: Sequence[float],
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Bootstrap CI of ``mean(changed - baseline)``, resampling cases so pairs stay together."""
    a = np.asarray(baseline, dtype=np.float64)
    b = np.asarray(changed, dtype=np.float64)
    if a.shape != b.shape:
        raise SegrobError(f"paired values differ in length: {a.shape} vs {b.shape}")
    return bootstrap_ci(b - a, n_resamples=n_resamples, confidence=confidence, seed=seed)
