"""Blur: Gaussian (defocus, partial volume) and motion (a line kernel in a random direction).

Both work on 2D and 3D batches; sigma and length are in mm (.8 -> 4 mm for Gaussian blur) and
follow the voxel spacing: on 0.5 x 0.5 x 3 mm voxels a 2 mm sigma is 4, 4 and 0.67 voxels.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from segrob.perturb.base import Perturbation, voxel_spacing
from segrob.perturb.filters import fft_convolve, gaussian_blur
from segrob.perturb.seeding import uniform
from segrob.perturb.stats import ImageStats

Result = tuple[Tensor, Tensor | None]


class GaussianBlur(Perturbation):
    name = "gaussian_blur"
    family = "blur"
    cpu_dependent_bits = True
    description = "Gaussian blur, isotropic in mm: sigma follows the voxel spacing"
    modalities = ("mri", "ct", "us", "histology")
    draws_field = False
    uses_spacing = True
    levels = {"sigma": (0.8, 1.5, 2.2, 3.0, 4.0)}
    units = {"sigma": "mm"}

    def apply(self, image: Tensor, label: Tensor | None, params: dict[str, Any],
              stats: ImageStats | None = None) -> Result:
        if "spacing" not in params:  # 1 mm voxels: one sigma for every axis, as before
            return gaussian_blur(image, params["sigma"]), label
        sigmas = [params["sigma"] / s for s in voxel_spacing(params, image.ndim - 2)]
        return gaussian_blur(image, sigmas), label


def line_kernel(length: int, direction: Tensor, spacing: tuple[float, ...] | None = None) -> Tensor:
    """A normalised line of ``length`` (voxels; mm with ``spacing``) through the centre along
    ``direction`` (a unit vector in mm space, so the line's voxel extent follows the spacing)."""
    dims = direction.numel()
    size = length if length % 2 else length + 1
    step = direction.float()
    sizes = [size] * dims
    if spacing is not None:
        step = step / torch.tensor(spacing, dtype=torch.float32)
        # Each axis as long as the line's extent along it (rounded as the points are), odd, so
        # the centre is a voxel.
        half = torch.round((length - 1) / 2.0 * step.abs())
        sizes = [2 * int(h) + 1 for h in half]
    centre = (torch.tensor(sizes, dtype=torch.float32) - 1) / 2.0
    steps = torch.linspace(-(length - 1) / 2.0, (length - 1) / 2.0, steps=4 * length)
    points = torch.round(centre + steps[:, None] * step[None, :]).long()
    points = torch.minimum(points.clamp_min(0), torch.tensor(sizes) - 1)
    kernel = torch.zeros(sizes)
    kernel[tuple(points.T)] = 1.0
    return kernel / kernel.sum()


class MotionBlur(Perturbation):
    name = "motion_blur"
    family = "blur"
    cpu_dependent_bits = True
    description = "linear motion blur: a line kernel of the given length in a random direction"
    modalities = ("us", "histology", "ct")
    draws_field = False
    uses_spacing = True
    levels = {"length": (3.0, 5.0, 9.0, 13.0, 17.0)}
    units = {"length": "mm"}

    def make_params(self, severity: int, generator: torch.Generator, *,
                    image_shape: tuple[int, ...]) -> dict[str, Any]:
        params = super().make_params(severity, generator, image_shape=image_shape)
        if len(image_shape) == 4:
            angle = uniform(generator, 0.0, math.pi)
            params["direction"] = [round(math.sin(angle), 6), round(math.cos(angle), 6)]
        else:
            v = [uniform(generator, -1.0, 1.0) for _ in range(3)]
            norm = math.sqrt(sum(c * c for c in v)) or 1.0
            params["direction"] = [round(c / norm, 6) for c in v]
        return params

    def apply(self, image: Tensor, label: Tensor | None, params: dict[str, Any],
              stats: ImageStats | None = None) -> Result:
        spacing = voxel_spacing(params, image.ndim - 2) if "spacing" in params else None
        kernel = line_kernel(int(params["length"]), torch.tensor(params["direction"]), spacing)
        return fft_convolve(image, kernel.to(image.device)), label
