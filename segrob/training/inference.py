"""Prediction with a PyTorch model (validation and tests), tiled as the audit tiles."""

from __future__ import annotations

import torch
from torch import nn

from segrob.tiling import DEFAULT_OVERLAP, tiled_logits


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    image: torch.Tensor,
    *,
    window: tuple[int, ...] | None = None,
    overlap: float = DEFAULT_OVERLAP,
    batch_size: int = 4,
) -> torch.Tensor:
    """Logits ``(K, *spatial)`` for one normalised image ``(C, *spatial)``.

    ``window`` is the training patch; a fixed-size model (UNETR) always uses its own size. See
    :func:`segrob.tiling.tiled_logits` for when the image goes through whole (zero-padded to a
    size the model accepts) and how overlapping windows are weighted.
    """
    fixed = getattr(model, "fixed_size", None)
    return tiled_logits(
        image[None],
        model,
        window=tuple(fixed) if fixed is not None else window,
        fixed_size=fixed is not None,
        size_multiple=int(getattr(model, "size_multiple", 1)),
        min_size=int(getattr(model, "min_size", 1)),
        overlap=overlap,
        batch_size=batch_size,
    )[0]
