"""The U-Net family: one encoder-decoder, four ways to treat the skip connections.

``unet``, ``noskip``, ``attention`` and ``gated`` are this class with a different ``skip``
mode, so in a comparison the skip is the only thing that differs (same encoder, same
upsampling, same decoder blocks; the no-skip decoder's first convolution is narrower because
nothing is concatenated).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from segrob.errors import SegrobError
from segrob.models.gates import SKIP_MODES, GatedSkip, make_skip
from segrob.models.layers import (
    NORMS,
    ConvBlock,
    check_spatial_dims,
    conv,
    exporting,
    max_pool,
    up_conv,
)
from segrob.models.sizes import check_input

DEFAULT_CHANNELS = (16, 32, 64, 128)
#: The widths Kamath et al. trained with on synthetic data, 2D (2023) and 3D (2022); their 2D
#: clinical runs added a sixth level, 512 (amithjkamath/to_skip_or_not, toskipornot/train/).
PAPER_CHANNELS = (16, 32, 64, 128, 256)


class UNet(nn.Module):
    """Encoder-decoder with ``len(channels)`` levels and a configurable skip.

    Encoder level ``i`` is a :class:`ConvBlock` to ``channels[i]`` (after a 2x max-pool for
    ``i > 0``). Decoder level ``i`` upsamples level ``i + 1`` with a stride-2 transposed
    convolution to ``channels[i]``, joins the skip (concatenation) unless ``skip="none"``, and
    applies a :class:`ConvBlock`. A ``1^d`` convolution gives the logits.

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        out_channels: classes including background.
        channels: width of each level, shallow to deep (at least 2 levels).
        skip: ``concat`` (U-Net), ``none``, ``attention`` (Oktay gates) or ``gated``.
        norm: ``instance``, ``batch`` or ``none``.
        gate_init: initial logit of the ``gated`` skips (sigmoid(3) = 0.95, open).
    """

    def __init__(
        self,
        *,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        channels: Sequence[int] = DEFAULT_CHANNELS,
        skip: str = "concat",
        norm: str = "instance",
        gate_init: float = 3.0,
    ):
        super().__init__()
        check_spatial_dims(spatial_dims)
        channels = tuple(int(c) for c in channels)
        if len(channels) < 2 or any(c < 1 for c in channels):
            raise SegrobError(f"channels must list at least 2 positive widths, got {channels}")
        if skip not in SKIP_MODES:
            raise SegrobError(f"unknown skip mode {skip!r} (valid: {', '.join(SKIP_MODES)})")
        if norm not in NORMS:
            raise SegrobError(f"unknown norm {norm!r} (valid: {', '.join(NORMS)})")
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.levels = len(channels)
        self.size_multiple = 2 ** (self.levels - 1)
        # Instance norm needs more than one voxel at the bottleneck.
        self.min_size = 2 * self.size_multiple
        self.fixed_size: tuple[int, ...] | None = None
        self.skip_mode = skip
        # What create_model needs to rebuild this model (the skip comes with the arch name).
        self.options: dict[str, Any] = {"channels": list(channels), "norm": norm}
        if skip == "gated":
            self.options["gate_init"] = gate_init

        widths = (in_channels, *channels)
        self.encoders = nn.ModuleList(
            ConvBlock(spatial_dims, widths[i], widths[i + 1], norm=norm)
            for i in range(self.levels)
        )
        self.pool = max_pool(spatial_dims)
        below = range(self.levels - 1)  # decoder level i sits above level i + 1
        self.ups = nn.ModuleList(up_conv(spatial_dims, channels[i + 1], channels[i]) for i in below)
        self.skips = nn.ModuleList(
            make_skip(skip, spatial_dims, channels[i], channels[i + 1], gate_init=gate_init)
            for i in below
        )
        joined = 1 if skip == "none" else 2
        self.decoders = nn.ModuleList(
            ConvBlock(spatial_dims, joined * channels[i], channels[i], norm=norm) for i in below
        )
        self.head = conv(spatial_dims, channels[0], out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, in_channels, *spatial)`` -> logits ``(N, out_channels, *spatial)``."""
        if not exporting():
            check_input(self, tuple(x.shape))
        features = []
        for level, encoder in enumerate(self.encoders):
            if level > 0:
                x = self.pool(x)
            x = encoder(x)
            features.append(x)
        for level in reversed(range(self.levels - 1)):
            gating = x
            up = self.ups[level](gating)
            skip = self.skips[level](features[level], gating)
            x = self.decoders[level](up if skip is None else torch.cat([skip, up], dim=1))
        return self.head(x)

    def gate_openness(self) -> list[float] | None:
        """Mean gate value per level, shallow to deep, for ``gated`` models (else ``None``)."""
        if self.skip_mode != "gated":
            return None
        return [float(g.openness().detach().mean()) for g in self.skips if isinstance(g, GatedSkip)]
