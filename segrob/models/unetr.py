"""UNETR: a ViT encoder over image patches with a convolutional decoder.

Hatamizadeh et al., "UNETR: Transformers for 3D Medical Image Segmentation", WACV 2022.
The image is cut into ``patch_size^d`` patches, embedded linearly with a learned position
embedding, and passed through ``num_layers`` pre-norm transformer layers. Token maps from
evenly spaced layers (3, 6, 9 of 12 in the paper) are reshaped to a grid and upsampled by
transposed convolutions to 1/2, 1/4, ... of the input resolution; a U-Net style decoder
joins them with a convolutional encoding of the input.

The position embedding fixes the token grid, so the model takes exactly ``img_size``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from segrob.errors import SegrobError
from segrob.models.layers import (
    NORMS,
    ConvBlock,
    UpBlock,
    as_tuple,
    check_spatial_dims,
    conv,
    exporting,
    up_conv,
)
from segrob.models.sizes import check_input

#: The paper's ViT-B/16 encoder.
PAPER_OPTIONS = {"patch_size": 16, "hidden_size": 768, "num_layers": 12, "num_heads": 12,
                 "mlp_dim": 3072, "feature_size": 16}


class SelfAttention(nn.Module):
    """Multi-head self-attention, ``softmax(Q K^T / sqrt(d_head)) V``, written out so that it
    exports to plain ONNX MatMul/Softmax."""

    def __init__(self, hidden_size: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.proj = nn.Linear(hidden_size, hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens, hidden = x.shape[1], x.shape[2]
        qkv = self.qkv(x).reshape(-1, tokens, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        weights = torch.softmax((q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim), dim=-1)
        out = (weights @ v).transpose(1, 2).reshape(-1, tokens, hidden)
        return self.proj(out)


class TransformerLayer(nn.Module):
    """Pre-norm ViT layer: ``x + MSA(LN(x))`` then ``x + MLP(LN(x))`` with GELU."""

    def __init__(self, hidden_size: int, num_heads: int, mlp_dim: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden_size)
        self.attention = SelfAttention(hidden_size, num_heads)
        self.norm2 = nn.LayerNorm(hidden_size)
        self.mlp = nn.Sequential(
            nn.Linear(hidden_size, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, hidden_size)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def _check_options(size: tuple[int, ...], patch_size: int, hidden_size: int, num_heads: int,
                   num_layers: int, norm: str) -> int:
    """Refuse a UNETR configuration that cannot be built; returns the number of decoder stages."""
    stages = round(math.log2(patch_size)) if patch_size > 0 else 0
    if patch_size < 2 or 2**stages != patch_size:
        raise SegrobError(f"patch_size must be a power of two >= 2, got {patch_size}")
    if any(s % patch_size for s in size):
        raise SegrobError(f"img_size {size} must be a multiple of patch_size {patch_size} on every axis")
    if hidden_size % num_heads:
        raise SegrobError(f"hidden_size {hidden_size} must be divisible by num_heads {num_heads}")
    if num_layers < stages:
        raise SegrobError(
            f"num_layers must be at least log2(patch_size) = {stages} (one layer per decoder"
            f" stage), got {num_layers}"
        )
    if norm not in NORMS:
        raise SegrobError(f"unknown norm {norm!r} (valid: {', '.join(NORMS)})")
    return stages


class UNETR(nn.Module):
    """UNETR for 2D or 3D, with CPU-sized defaults (``PAPER_OPTIONS`` holds the paper's).

    Args:
        spatial_dims: 2 or 3.
        in_channels: image channels.
        out_channels: classes including background.
        img_size: the one input size the model takes (int or one per axis).
        patch_size: ViT patch edge; a power of two dividing ``img_size``. The decoder has
            ``log2(patch_size)`` upsampling stages.
        hidden_size, num_layers, num_heads, mlp_dim: the transformer encoder.
        feature_size: decoder width at full resolution; it doubles per stage down.
        norm: decoder normalisation (``instance``, ``batch`` or ``none``).
    """

    def __init__(
        self,
        *,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        img_size: int | Sequence[int] = 64,
        patch_size: int = 16,
        hidden_size: int = 96,
        num_layers: int = 4,
        num_heads: int = 4,
        mlp_dim: int | None = None,
        feature_size: int = 16,
        norm: str = "instance",
    ):
        super().__init__()
        check_spatial_dims(spatial_dims)
        size = as_tuple(img_size if isinstance(img_size, int) else list(img_size),
                        spatial_dims, "img_size")
        stages = _check_options(size, patch_size, hidden_size, num_heads, num_layers, norm)
        mlp_dim = mlp_dim or 4 * hidden_size
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.fixed_size: tuple[int, ...] | None = size
        self.size_multiple = patch_size
        self.min_size = patch_size
        self.grid = tuple(s // patch_size for s in size)
        self.hidden_size = hidden_size
        self.options: dict[str, Any] = {
            "img_size": list(size), "patch_size": patch_size, "hidden_size": hidden_size,
            "num_layers": num_layers, "num_heads": num_heads, "mlp_dim": mlp_dim,
            "feature_size": feature_size, "norm": norm,
        }

        self.embed = conv(spatial_dims, in_channels, hidden_size, kernel_size=patch_size,
                          stride=patch_size)
        self.position = nn.Parameter(torch.zeros(1, math.prod(self.grid), hidden_size))
        nn.init.trunc_normal_(self.position, std=0.02)
        self.layers = nn.ModuleList(
            TransformerLayer(hidden_size, num_heads, mlp_dim) for _ in range(num_layers)
        )
        self.final_norm = nn.LayerNorm(hidden_size)
        self._build_decoder(spatial_dims, in_channels, out_channels, stages, num_layers, feature_size, norm)

    def _build_decoder(self, spatial_dims: int, in_channels: int, out_channels: int, stages: int,
                       num_layers: int, feature_size: int, norm: str) -> None:
        hidden_size = self.hidden_size
        # Stage r works at 1/2^r resolution with feature_size * 2^r channels; stage r >= 1
        # takes its skip from layer round(num_layers * r / stages), upsampled stages - r times.
        self.taps = [round(num_layers * r / stages) - 1 for r in range(1, stages)]
        width = [feature_size * 2**r for r in range(stages)]
        self.input_encoder = ConvBlock(spatial_dims, in_channels, width[0], norm=norm)
        self.projections = nn.ModuleList(
            nn.Sequential(*[
                UpBlock(spatial_dims, hidden_size if step == 0 else width[r], width[r], norm=norm)
                for step in range(stages - r)
            ])
            for r in range(1, stages)
        )
        below = [*width[1:], hidden_size]  # channels arriving from stage r + 1
        self.ups = nn.ModuleList(up_conv(spatial_dims, below[r], width[r]) for r in range(stages))
        self.decoders = nn.ModuleList(
            ConvBlock(spatial_dims, 2 * width[r], width[r], norm=norm) for r in range(stages)
        )
        self.head = conv(spatial_dims, width[0], out_channels, kernel_size=1)

    def _grid(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(N, L, hidden)`` tokens -> ``(N, hidden, *grid)`` feature map."""
        return tokens.transpose(1, 2).reshape(-1, self.hidden_size, *self.grid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, in_channels, *img_size)`` -> logits ``(N, out_channels, *img_size)``."""
        if not exporting():
            check_input(self, tuple(x.shape))
        tokens = self.embed(x).flatten(2).transpose(1, 2) + self.position
        tapped = {}
        for index, layer in enumerate(self.layers):
            tokens = layer(tokens)
            tapped[index] = tokens
        y = self._grid(self.final_norm(tokens))
        for r in reversed(range(len(self.decoders))):
            if r == 0:
                skip = self.input_encoder(x)
            else:
                skip = self.projections[r - 1](self._grid(tapped[self.taps[r - 1]]))
            y = self.decoders[r](torch.cat([skip, self.ups[r](y)], dim=1))
        return self.head(y)
