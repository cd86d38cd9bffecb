"""The per-image intensity statistics perturbations are relative to, computable once per case.

Intensity parameters are shares of each image's robust range; finding it (a selection over the
volume) costs more than most perturbations themselves. A caller that applies many perturbations
to one clean image (the audit: every member and severity of a suite) computes
:func:`image_stats` once and passes it to each call; without it, each call computes its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from segrob.data.normalize import robust_range
from segrob.errors import SegrobError

EPS = 1e-6


@dataclass(frozen=True)
class ImageStats:
    """Per image and channel, shaped ``(N, C, 1, ...)`` to broadcast against the batch.

    ``low`` is the 0.5 percentile; ``span`` is ``p99.5 - p0.5``, or where that is zero (an image
    that is almost all one value) the full range ``max - min``, and ``EPS`` for a constant image,
    so dividing by it never gives NaN.
    """

    low: torch.Tensor
    span: torch.Tensor


def image_stats(image: torch.Tensor) -> ImageStats:
    """The robust range of every image and channel of ``(N, C, *spatial)``."""
    low, high = robust_range(image)
    span = high - low
    narrow = ~(span > EPS)
    if bool(narrow.any()):  # the full range only where needed: it is another pass over the image
        flat = image.detach().float().flatten(2)
        full = (flat.amax(dim=2) - flat.amin(dim=2)).view_as(low)
        span = torch.where(narrow, full, span)
    return ImageStats(low, span.clamp_min(EPS))


def stats_for(image: torch.Tensor, stats: ImageStats | None) -> ImageStats:
    """``stats`` after checking they belong to a batch shaped like ``image``, else computed."""
    if stats is None:
        return image_stats(image)
    expected = (image.shape[0], image.shape[1]) + (1,) * (image.ndim - 2)
    for name, value in (("low", stats.low), ("span", stats.span)):
        if tuple(value.shape) != expected or value.device != image.device:
            raise SegrobError(
                f"image statistics ({name} of shape {tuple(value.shape)} on {value.device}) do not "
                f"fit an image of shape {tuple(image.shape)} on {image.device}: compute them with "
                "image_stats(image)"
            )
    return stats
