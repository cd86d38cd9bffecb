"""Geometric perturbations: affine (rotation, translation, scale) and elastic deformation.

The label follows the image through the same transform with nearest-neighbour sampling, so it
stays a map of class ids. Areas brought in from outside the image take the image's robust
minimum (background), and label 0. Both act in mm when given a voxel spacing: the affine is
rigid in physical space (a rotation of anisotropic voxels does not shear the anatomy) and the
elastic displacement is a length in mm.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from segrob.perturb.base import Perturbation, random_field, voxel_spacing
from segrob.perturb.seeding import sign, uniform
from segrob.perturb.stats import ImageStats, stats_for

Result = tuple[Tensor, Tensor | None]
#: Whole numbers up to here are exact in float32; the label's flat index is built in float64 above.
FLOAT32_WHOLE = 1 << 24
#: A padded label with this many voxels or more is indexed with int64.
INT32_INDEX = 1 << 31


def _warp(image: Tensor, label: Tensor | None, grid: Tensor, stats: ImageStats | None) -> Result:
    low = stats_for(image, stats).low
    moved = _bilinear(image.float() - low, grid).add_(low)
    return moved.to(image.dtype), None if label is None else _nearest(label, grid)


def _bilinear(image: Tensor, grid: Tensor) -> Tensor:
    """``grid_sample``, bilinear with zeros outside. PyTorch's 3D kernel on a CPU is parallel over
    the batch only, so a single volume is sampled as slabs of output planes, one per thread
    (a batch of slabs over the same input); every voxel is computed as before."""
    depth = image.shape[2] if image.ndim == 5 else 1  # 2D: the kernel is vectorised, left as is
    parts = max((k for k in range(1, torch.get_num_threads() + 1) if depth % k == 0), default=1)
    if image.device.type == "cpu" and image.shape[0] == 1 and parts > 1:
        slabs = grid.reshape(parts, depth // parts, *grid.shape[2:])
        out = F.grid_sample(image.expand(parts, *image.shape[1:]), slabs, mode="bilinear",
                            padding_mode="zeros", align_corners=False)
        return out.transpose(0, 1).reshape(1, image.shape[1], *grid.shape[1:4])
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _nearest(label: Tensor, grid: Tensor) -> Tensor:
    """``label`` sampled at ``grid`` by its nearest voxel, 0 outside, in ``label``'s dtype."""
    if type(label) is Tensor and label.device.type == "cpu" and label.ndim == 4 \
            and grid.dtype == torch.float32:
        return _nearest_3d_cpu(label, grid)
    # Nearest sampling of whole numbers returns whole numbers (or 0 outside): no rounding.
    out = F.grid_sample(label[:, None].float(), grid, mode="nearest", padding_mode="zeros",
                        align_corners=False)
    return out[:, 0].to(label.dtype)


def _nearest_3d_cpu(label: Tensor, grid: Tensor) -> Tensor:
    """What ``grid_sample`` returns for the label as float, nearest and zeros, bit for bit.

    PyTorch's 3D kernel on a CPU is a scalar loop per voxel, parallel over the batch only, and
    took a third of the affine's time for the label alone. Here each source voxel's index is
    found with whole-volume operations, once for a grid that the batch shares (a stride-0
    batch axis), and read from a copy of the label with a border of zeros for outside, in the
    narrowest dtype that holds its values: the reads are memory bound.
    """
    n, sizes = label.shape[0], tuple(label.shape[1:])
    carrier = _carrier(label)
    padded = torch.zeros((n, *(s + 2 for s in sizes)), dtype=carrier)
    padded[:, 1:-1, 1:-1, 1:-1] = label
    out = torch.empty((n, *grid.shape[1:4]), dtype=carrier)
    shared = grid.stride(0) == 0
    index = None
    for i in range(n):
        if index is None or not shared:
            index = _source_index(grid[i], sizes)
        torch.index_select(padded[i].view(-1), 0, index, out=out[i].view(-1))
    return out.to(label.dtype)


def _carrier(label: Tensor) -> torch.dtype:
    """A dtype that holds every value of ``label`` as its float32 copy does: uint8 or int16 where
    the values fit, else float32 itself (which rounds ids beyond 2^24, as ``grid_sample`` did)."""
    if label.dtype in (torch.uint8, torch.bool):
        return torch.uint8
    if label.numel() == 0 or label.is_floating_point() or label.is_complex():
        return torch.float32
    low, high = (int(v) for v in torch.aminmax(label))
    if low >= 0 and high <= 255:
        return torch.uint8
    return torch.int16 if low >= -(1 << 15) and high < 1 << 15 else torch.float32


def _source_index(grid: Tensor, sizes: tuple[int, ...]) -> Tensor:
    """Flat index, into the label padded by one voxel on every side, of each output voxel's
    nearest source voxel; ``grid`` is ``(D, H, W, 3)``.

    The arithmetic is ``grid_sampler_compute_source_index`` (``((g + 1) size - 1) / 2`` in float32,
    no padding clip, align_corners False) and ``nearbyint`` (round half to even); clamping to one
    voxel outside lands every outside voxel on the border of zeros."""
    padded = [s + 2 for s in sizes]
    strides = (1, padded[2], padded[1] * padded[2])  # x, y, z
    exact = torch.float32 if math.prod(padded) <= FLOAT32_WHOLE else torch.float64
    index = scratch = None
    for channel, (size, stride) in enumerate(zip(reversed(sizes), strides, strict=True)):
        voxel = torch.add(grid[..., channel], 1, out=scratch)
        voxel = voxel.mul_(size).sub_(1).div_(2).round_().clamp_(-1, size)
        if index is None:  # x, stride 1
            index, scratch = voxel.to(exact), torch.empty_like(voxel)
        else:  # whole numbers below 2^24 (or 2^53): every product and sum is exact
            index.add_(voxel, alpha=stride)
    index.add_(sum(strides))  # the border: voxel -1 of every axis is row 0 of the padded copy
    return index.view(-1).to(torch.int32 if math.prod(padded) < INT32_INDEX else torch.int64)


def affine_grid(theta: Tensor, shape: list[int]) -> Tensor:
    """``F.affine_grid(theta, shape, align_corners=False)`` (to float32 rounding), built as the sum
    of one small broadcast term per axis: the full-size grid is written once, where
    ``affine_grid`` multiplies a ``(N, voxels, dims + 1)`` base grid by ``theta``. It is built
    channels first, so the additions run along the image's rows, and returned as a view in
    ``grid_sample``'s layout ``(N, *spatial, dims)``."""
    n, spatial = shape[0], shape[2:]
    dims = len(spatial)
    grid = theta[:, :, dims].reshape(n, dims, *[1] * dims).to(torch.float32)
    for channel, size in enumerate(reversed(spatial)):  # grid channels are x, y(, z)
        # Voxel centres in [-1, 1], as affine_grid places them with align_corners=False.
        centres = torch.linspace(-1, 1, size, device=theta.device).mul_(size - 1).div_(size)
        view = [1] * (dims + 2)
        view[dims + 1 - channel] = size
        grid = grid + centres.view(view) * theta[:, :, channel].reshape(n, dims, *[1] * dims)
    return grid.movedim(1, -1)


def _rotation(dims: int, degrees: float, axis: list[float]) -> torch.Tensor:
    angle = math.radians(degrees)
    if dims == 2:
        cos, sin = math.cos(angle), math.sin(angle)
        return torch.tensor([[cos, -sin], [sin, cos]])
    k = torch.tensor(axis) / max(1e-6, math.sqrt(sum(a * a for a in axis)))
    cross = torch.tensor([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return torch.eye(3) + math.sin(angle) * cross + (1 - math.cos(angle)) * cross @ cross


class Affine(Perturbation):
    name = "affine"
    family = "geometry"
    kind = "geometric"
    description = "rigid rotation (random sign/axis), translation (share of the extent) and scale"
    modalities = ("ct", "us", "histology", "mri")
    draws_field = False
    uses_spacing = True
    units = {"degrees": "degrees", "translation": "share of the image extent per axis",
             "scale": "relative zoom"}
    levels = {
        "degrees": (6.0, 12.0, 18.0, 24.0, 30.0),
        "translation": (0.02, 0.04, 0.06, 0.08, 0.1),
        "scale": (0.03, 0.05, 0.08, 0.11, 0.15),
    }

    def make_params(self, severity: int, generator: torch.Generator, *,
                    image_shape: tuple[int, ...]) -> dict[str, Any]:
        params = super().make_params(severity, generator, image_shape=image_shape)
        dims = len(image_shape) - 2
        params["degrees"] = params["degrees"] * sign(generator)
        params["axis"] = ([round(uniform(generator, -1, 1), 6) for _ in range(3)]
                          if dims == 3 else None)
        # Grid units: the image spans [-1, 1], so a translation t of the size is 2 t.
        params["shift"] = [round(params["translation"] * 2 * sign(generator), 5)
                           for _ in range(dims)]
        params["zoom"] = round(1.0 + params["scale"] * sign(generator), 5)
        return params

    def apply(self, image: Tensor, label: Tensor | None, params: dict[str, Any],
              stats: ImageStats | None = None) -> Result:
        """Output voxel ``x`` samples the input at ``R x / zoom + shift`` (centred coordinates).

        The rotation acts in mm, ``S^-1 R S`` in the grid's normalised units with ``S`` the half
        extents in mm, so a rotation stays rigid on a non-square image and on anisotropic voxels.
        """
        dims = image.ndim - 2
        rotation = _rotation(dims, params["degrees"], params["axis"] or [0, 0, 1]) / params["zoom"]
        extent = [n * s for n, s in zip(image.shape[2:], voxel_spacing(params, dims), strict=True)]
        half = torch.tensor([e / 2.0 for e in reversed(extent)])  # grid order: x, y(, z)
        matrix = rotation * half[None, :] / half[:, None]
        theta = torch.cat([matrix, torch.tensor(params["shift"])[:, None]], dim=1)
        # One grid for the whole batch (all its images move alike), expanded with stride 0.
        grid = affine_grid(theta.to(image.device, torch.float32)[None], [1, *image.shape[1:]])
        return _warp(image, label, grid.expand(image.shape[0], *grid.shape[1:]), stats)


class Elastic(Perturbation):
    name = "elastic"
    family = "geometry"
    kind = "geometric"
    description = "smooth random displacement (6 control points per axis), maximum in mm"
    modalities = ("us", "histology", "mri")
    uses_spacing = True
    levels = {"displacement": (1.5, 3.0, 4.5, 6.0, 8.0)}
    units = {"displacement": "mm"}
    control_points = 6

    def apply(self, image: Tensor, label: Tensor | None, params: dict[str, Any],
              stats: ImageStats | None = None) -> Result:
        dims = image.ndim - 2
        spatial = image.shape[2:]
        coarse = random_field(params, (1, dims, *([self.control_points] * dims)), image)
        mode = "bicubic" if dims == 2 else "trilinear"
        field = F.interpolate(coarse, size=tuple(spatial), mode=mode, align_corners=True)
        field = field / field.abs().amax().clamp_min(1e-6)
        # Displacement in mm -> voxels -> grid units (2 / size per voxel); grid channels are x,
        # y(, z).
        voxels = [params["displacement"] / s for s in voxel_spacing(params, dims)]
        scale = torch.tensor([2.0 * v / s for v, s in zip(reversed(voxels), reversed(spatial),
                                                          strict=True)], device=image.device)
        displacement = field[0].flip(0).movedim(0, -1) * scale
        # The batch shares one field: one grid, expanded with stride 0.
        theta = torch.eye(dims, dims + 1, device=image.device)[None]
        grid = affine_grid(theta, [1, *image.shape[1:]]).add_(displacement)
        return _warp(image, label, grid.expand(image.shape[0], *grid.shape[1:]), stats)
