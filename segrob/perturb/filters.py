"""Batched filters on torch tensors shared by several perturbations (any device, 2D or 3D)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from segrob.perturb.base import at_most_torch_threads, forward_fft, inverse_fft, thread_independent_product

# Up to this length an axis is filtered by one matrix product (BLAS is ~10x faster than a
# one-channel conv3d on a CPU); longer axes use a convolution, whose cost does not grow with n.
MATRIX_MAX = 512
#: The most torch threads a batch's filter products run on. MKL splits a product among threads
#: and, for some shapes, sums in another order then: a batch of several images (a batch of small
#: products to torch) gave one thread's bits on 2 to 4 threads for every random shape tried, and
#: other bits on 6 to 16 for some. A single image of one channel runs on one thread: torch folds
#: it into one product over a transposed layout, which differed on two to four threads for 36 of
#: 84 shapes tried (see the README's known limits).
PRODUCT_MAX_THREADS = 4


def gaussian_kernel1d(sigma: float) -> torch.Tensor:
    """``exp(-x^2 / (2 sigma^2))`` on ``x = -r..r`` with ``r = ceil(3 sigma)``, summing to 1, on
    the CPU (:func:`separable_filter` builds its matrices there for any device)."""
    radius = max(1, math.ceil(3.0 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def filter_matrix(n: int, kernel: torch.Tensor) -> torch.Tensor:
    """The ``(n, n)`` matrix ``M`` with ``(M @ x)[i] = sum_t kernel[t] x[reflect(i + t - r)]``.

    Reflection without repeating the edge (``-1 -> 1``, ``n -> n - 2``), as ``F.pad(mode=
    "reflect")``, but valid for any radius: indices fold with period ``2 (n - 1)``.
    """
    if n == 1:
        return torch.ones((1, 1), device=kernel.device, dtype=kernel.dtype)
    radius = kernel.numel() // 2
    rows = torch.arange(n, device=kernel.device)
    index = rows[:, None] + torch.arange(-radius, radius + 1, device=kernel.device)[None, :]
    period = 2 * (n - 1)
    index = index % period
    index = torch.where(index >= n, period - index, index)
    matrix = torch.zeros((n, n), device=kernel.device, dtype=kernel.dtype)
    matrix.index_put_((rows[:, None].expand_as(index), index), kernel.expand(n, -1).clone(),
                      accumulate=True)
    return matrix


def _conv_axis(x: torch.Tensor, kernel: torch.Tensor, axis: int) -> torch.Tensor:
    """Filter ``x`` ``(M, 1, *spatial)`` along spatial ``axis`` with a 1D kernel (long axes)."""
    spatial = x.shape[2:]
    radius = kernel.numel() // 2
    shape = [1, 1] + [1] * len(spatial)
    shape[2 + axis] = kernel.numel()
    pad = [0, 0] * len(spatial)
    position = 2 * (len(spatial) - 1 - axis)  # F.pad lists pads from the last axis backwards
    pad[position] = pad[position + 1] = radius
    mode = "reflect" if spatial[axis] > radius else "replicate"
    x = F.pad(x, pad, mode=mode)
    return (F.conv2d if len(spatial) == 2 else F.conv3d)(x, kernel.view(shape))


def _product_threads(x: torch.Tensor) -> int:
    """The most torch threads the products of ``x``'s filter run on (see :data:`PRODUCT_MAX_THREADS`)."""
    if x.device.type != "cpu":  # a GPU's products do not depend on the CPU's threads
        return torch.get_num_threads()
    return 1 if x.shape[0] * x.shape[1] == 1 else PRODUCT_MAX_THREADS


def separable_filter(image: torch.Tensor, kernel: torch.Tensor | list) -> torch.Tensor:
    """Filter every spatial axis of ``(N, C, *spatial)`` with the same odd 1D ``kernel``, or
    axis ``i`` with ``kernel[i]`` when given a list (``None``: leave that axis alone)."""
    x = image.float()
    kernels = kernel if isinstance(kernel, list) else [kernel] * (x.ndim - 2)
    with at_most_torch_threads(_product_threads(x)):
        for axis in range(2, x.ndim):
            if kernels[axis - 2] is None:
                continue
            kernel = kernels[axis - 2].to(dtype=torch.float32)
            n = x.shape[axis]
            if n <= MATRIX_MAX:
                # Built where the kernel is (the CPU for a Gaussian) and copied once: on a GPU the
                # build is some forty tiny kernel launches, which took longer than the products.
                matrix = filter_matrix(n, kernel).to(image.device)
                x = torch.movedim(torch.movedim(x, axis, -1) @ matrix.T, -1, axis)
            else:
                batch, channels = x.shape[:2]
                flat = x.reshape(batch * channels, 1, *x.shape[2:])
                x = _conv_axis(flat, kernel.to(image.device), axis - 2).reshape(x.shape)
    return x.contiguous().to(image.dtype)


def gaussian_blur(image: torch.Tensor, sigma: float | list[float]) -> torch.Tensor:
    """Separable Gaussian blur of ``(N, C, *spatial)`` with ``sigma`` in voxels (one value, or one
    per spatial axis), reflect borders."""
    if not isinstance(sigma, list):
        if sigma <= 0:
            return image
        return separable_filter(image, gaussian_kernel1d(sigma))
    return separable_filter(image, [gaussian_kernel1d(s) if s > 0 else None for s in sigma])


def fft_convolve(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Convolve every image and channel with one odd-sized ``kernel`` through the FFT.

    Reflect padding by the kernel radius keeps the circular wrap-around off the image.
    """
    spatial = image.shape[2:]
    # An axis shorter than the kernel sees only the kernel's central 2n - 1 taps, rescaled so
    # the kernel keeps its sum (a thin 3D slab under a long motion kernel).
    total = kernel.sum()
    kernel = kernel[tuple(slice(max(0, k // 2 - (n - 1)), k - max(0, k // 2 - (n - 1)))
                          for k, n in zip(kernel.shape, spatial, strict=True))]
    kernel = kernel * (total / kernel.sum())
    radii = [k // 2 for k in kernel.shape]
    pad = []
    for axis in reversed(range(len(spatial))):
        r = min(radii[axis], spatial[axis] - 1)
        pad += [r, r]
    x = F.pad(image.float(), pad, mode="reflect")
    padded = x.shape[2:]
    dims = tuple(range(2, x.ndim))
    kernel_full = torch.zeros(padded, device=image.device, dtype=torch.float32)
    kernel_full[tuple(slice(0, k) for k in kernel.shape)] = kernel.to(image.device)
    kernel_full = torch.roll(kernel_full, shifts=[-r for r in radii],
                             dims=tuple(range(len(spatial))))
    spectrum = thread_independent_product(forward_fft(x, dims, half=True),
                                          forward_fft(kernel_full, tuple(range(kernel_full.ndim)), half=True))
    out = inverse_fft(spectrum, dims, padded)
    crop = [slice(None), slice(None)]
    for axis in range(len(spatial)):
        r = min(radii[axis], spatial[axis] - 1)
        crop.append(slice(r, r + spatial[axis]))
    return out[tuple(crop)].to(image.dtype)


def resample(image: torch.Tensor, size: tuple[int, ...], *, mode: str) -> torch.Tensor:
    """Resize ``(N, C, *spatial)`` to ``size``: ``linear``, ``area`` or ``nearest``."""
    interp = {"linear": "bilinear" if image.ndim == 4 else "trilinear", "area": "area",
              "nearest": "nearest"}[mode]
    kwargs = {"align_corners": False} if interp in ("bilinear", "trilinear") else {}
    return F.interpolate(image.float(), size=size, mode=interp, **kwargs).to(image.dtype)
