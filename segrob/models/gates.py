"""What a U-Net does with an encoder feature map before the decoder sees it.

Every skip module has the same call, ``skip(features, gating) -> tensor or None``:
``features`` is the encoder output at this level, ``gating`` the coarser decoder features one
level below (before upsampling). ``None`` means "no skip": the decoder gets the upsampled
features only. Swapping this module is the only difference between the U-Net variants.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from segrob.errors import SegrobError
from segrob.models.layers import conv

SKIP_MODES = ("concat", "none", "attention", "gated")


class ConcatSkip(nn.Module):
    """The plain U-Net skip: encoder features go to the decoder unchanged."""

    def forward(self, features: torch.Tensor, gating: torch.Tensor) -> torch.Tensor:
        return features


class NoSkip(nn.Module):
    """No skip connection: the decoder sees only what came through the bottleneck."""

    def forward(self, features: torch.Tensor, gating: torch.Tensor) -> None:
        return None


class AttentionGate(nn.Module):
    """Additive attention gate (Oktay et al. 2018, "Attention U-Net").

    ``q = psi(relu(W_x x + W_g g + b_g))`` and ``alpha = sigmoid(q)``, computed at the coarse
    (gating) resolution: ``W_x`` is a stride-2 convolution of the skip ``x``, ``W_g`` a
    ``1^d`` convolution of the gating signal ``g``. ``alpha`` is resampled (linear) to the skip
    resolution and the gate returns ``alpha * x``.
    """

    def __init__(
        self, spatial_dims: int, channels: int, gating_channels: int, inter_channels: int
    ):
        super().__init__()
        self.spatial_dims = spatial_dims
        self.theta = conv(spatial_dims, channels, inter_channels, kernel_size=2, stride=2,
                          bias=False)
        self.phi = conv(spatial_dims, gating_channels, inter_channels, kernel_size=1)
        self.psi = conv(spatial_dims, inter_channels, 1, kernel_size=1)

    def attention(self, features: torch.Tensor, gating: torch.Tensor) -> torch.Tensor:
        """The attention coefficients ``alpha`` in [0, 1], shape ``(N, 1, *skip spatial)``."""
        q = self.psi(F.relu(self.theta(features) + self.phi(gating)))
        mode = "bilinear" if self.spatial_dims == 2 else "trilinear"
        return torch.sigmoid(F.interpolate(q, scale_factor=2.0, mode=mode, align_corners=False))

    def forward(self, features: torch.Tensor, gating: torch.Tensor) -> torch.Tensor:
        return features * self.attention(features, gating)


class GatedSkip(nn.Module):
    """A learnable per-channel gate, ``x * sigmoid(w)``, that can close a skip entirely.

    ``w`` starts at ``init`` (3.0: the gate is 95% open), so training starts from a U-Net and
    learns how much of each skip channel the task needs ("adaptive skip").
    """

    def __init__(self, spatial_dims: int, channels: int, *, init: float = 3.0):
        super().__init__()
        self.spatial_dims = spatial_dims
        self.logit = nn.Parameter(torch.full((channels,), float(init)))

    def openness(self) -> torch.Tensor:
        """Per-channel gate values in (0, 1)."""
        return torch.sigmoid(self.logit)

    def forward(self, features: torch.Tensor, gating: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * self.spatial_dims
        return features * self.openness().view(shape)


def make_skip(
    mode: str, spatial_dims: int, channels: int, gating_channels: int, *, gate_init: float = 3.0
) -> nn.Module:
    """The skip module for one level: ``concat``, ``none``, ``attention`` or ``gated``."""
    if mode == "concat":
        return ConcatSkip()
    if mode == "none":
        return NoSkip()
    if mode == "attention":
        return AttentionGate(spatial_dims, channels, gating_channels, max(1, channels // 2))
    if mode == "gated":
        return GatedSkip(spatial_dims, channels, init=gate_init)
    raise SegrobError(f"unknown skip mode {mode!r} (valid: {', '.join(SKIP_MODES)})")
