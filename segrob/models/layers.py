"""Building blocks shared by every architecture, for 2D and 3D alike."""

from __future__ import annotations

import torch
from torch import nn

from segrob.errors import SegrobError

NORMS = ("instance", "batch", "none")


def check_spatial_dims(spatial_dims: int) -> int:
    if spatial_dims not in (2, 3):
        raise SegrobError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
    return spatial_dims


def conv(spatial_dims: int, in_channels: int, out_channels: int, **kwargs) -> nn.Module:
    """``Conv2d`` or ``Conv3d``."""
    return (nn.Conv2d if spatial_dims == 2 else nn.Conv3d)(in_channels, out_channels, **kwargs)


def up_conv(spatial_dims: int, in_channels: int, out_channels: int) -> nn.Module:
    """Learned x2 upsampling: transposed convolution, kernel 2, stride 2."""
    kind = nn.ConvTranspose2d if spatial_dims == 2 else nn.ConvTranspose3d
    return kind(in_channels, out_channels, kernel_size=2, stride=2)


def max_pool(spatial_dims: int) -> nn.Module:
    return (nn.MaxPool2d if spatial_dims == 2 else nn.MaxPool3d)(kernel_size=2, stride=2)


def norm_layer(spatial_dims: int, channels: int, norm: str) -> nn.Module:
    """Instance norm (nnU-Net's default, independent of the batch), batch norm, or none."""
    if norm == "instance":
        kind = nn.InstanceNorm2d if spatial_dims == 2 else nn.InstanceNorm3d
        return kind(channels, affine=True)
    if norm == "batch":
        return (nn.BatchNorm2d if spatial_dims == 2 else nn.BatchNorm3d)(channels)
    if norm == "none":
        return nn.Identity()
    raise SegrobError(f"unknown norm {norm!r} (valid: {', '.join(NORMS)})")


class ConvBlock(nn.Sequential):
    """Two ``3^d`` convolutions, each followed by normalisation and LeakyReLU(0.01)."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, *, norm: str):
        # A bias before a normalisation with its own shift is redundant.
        bias = norm == "none"
        super().__init__(
            conv(spatial_dims, in_channels, out_channels, kernel_size=3, padding=1, bias=bias),
            norm_layer(spatial_dims, out_channels, norm),
            nn.LeakyReLU(0.01, inplace=True),
            conv(spatial_dims, out_channels, out_channels, kernel_size=3, padding=1, bias=bias),
            norm_layer(spatial_dims, out_channels, norm),
            nn.LeakyReLU(0.01, inplace=True),
        )


class UpBlock(nn.Sequential):
    """x2 transposed convolution followed by a :class:`ConvBlock` (UNETR's projection step)."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, *, norm: str):
        super().__init__(
            up_conv(spatial_dims, in_channels, out_channels),
            ConvBlock(spatial_dims, out_channels, out_channels, norm=norm),
        )


def exporting() -> bool:
    """True while the model is being traced, compiled or exported.

    Python-level shape checks are skipped then: on symbolic shapes they would become export
    guards that pin the dynamic spatial axes.
    """
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        return True
    compiler = getattr(torch, "compiler", None)
    if compiler is None:
        return False
    is_exporting = getattr(compiler, "is_exporting", None)
    return bool(compiler.is_compiling() or (is_exporting is not None and is_exporting()))


def as_tuple(value: int | tuple[int, ...] | list[int], spatial_dims: int, name: str) -> tuple:
    """An int or a per-axis sequence as a tuple of ``spatial_dims`` positive ints."""
    values = (value,) * spatial_dims if isinstance(value, int) else tuple(value)
    if len(values) != spatial_dims or not all(isinstance(v, int) and v > 0 for v in values):
        raise SegrobError(
            f"{name} must be a positive int or {spatial_dims} positive ints, got {value!r}"
        )
    return values
