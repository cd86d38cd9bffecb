"""Batched filters on torch tensors shared by several perturbations (any device, 2D or 3D)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def gaussian_kernel1d(sigma: float, device, dtype=torch.float32) -> torch.Tensor:
    radius = max(1, math.ceil(3.0 * sigma))
    x = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur over every spatial axis of ``(N, C, *spatial)``, reflect padding."""
    if sigma <= 0:
        return image
    n, c = image.shape[:2]
    spatial = image.shape[2:]
    kernel = gaussian_kernel1d(sigma, image.device)
    radius = kernel.numel() // 2
    x = image.float().reshape(n * c, 1, *spatial)
    for axis in range(len(spatial)):
        shape = [1, 1] + [1] * len(spatial)
        shape[2 + axis] = kernel.numel()
        weight = kernel.view(shape)
        pad = [0, 0] * len(spatial)
        # F.pad lists pads from the last axis backwards.
        position = 2 * (len(spatial) - 1 - axis)
        size = spatial[axis]
        mode = "reflect" if size > radius else "replicate"
        pad[position] = pad[position + 1] = radius
        x = F.pad(x, pad, mode=mode)
        x = (F.conv2d if len(spatial) == 2 else F.conv3d)(x, weight)
    return x.reshape(n, c, *spatial).to(image.dtype)


def fft_convolve(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Convolve every image and channel with one odd-sized ``kernel`` through the FFT.

    Reflect padding by the kernel radius keeps the circular wrap-around off the image.
    """
    spatial = image.shape[2:]
    radii = [k // 2 for k in kernel.shape]
    pad = []
    for axis in reversed(range(len(spatial))):
        r = min(radii[axis], spatial[axis] - 1)
        pad += [r, r]
    x = image.float()
    mode = "reflect" if len(spatial) in (2, 3) else "replicate"
    x = F.pad(x, pad, mode=mode)
    padded = x.shape[2:]
    dims = tuple(range(2, x.ndim))
    kernel_full = torch.zeros(padded, device=image.device, dtype=torch.float32)
    region = tuple(slice(0, k) for k in kernel.shape)
    kernel_full[region] = kernel
    kernel_full = torch.roll(kernel_full, shifts=[-r for r in radii], dims=tuple(range(len(spatial))))
    out = torch.fft.irfftn(torch.fft.rfftn(x, dim=dims) * torch.fft.rfftn(kernel_full), s=padded, dim=dims)
    crop = [slice(None), slice(None)]
    for axis in range(len(spatial)):
        r = min(radii[axis], spatial[axis] - 1)
        crop.append(slice(r, r + spatial[axis]))
    return out[tuple(crop)].to(image.dtype)


def resample(image: torch.Tensor, size: tuple[int, ...], *, mode: str) -> torch.Tensor:
    interp = {"linear": "bilinear" if image.ndim == 4 else "trilinear", "area": "area",
              "nearest": "nearest"}[mode]
    kwargs = {"align_corners": False} if interp in ("bilinear", "trilinear") else {}
    return F.interpolate(image.float(), size=size, mode=interp, **kwargs).to(image.dtype)
