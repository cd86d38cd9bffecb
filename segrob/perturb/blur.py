"""Blur: Gaussian (defocus, partial volume) and motion (a line kernel in a random direction).

Both work on 2D and 3D batches; sigma and length are in voxels (.8 -> 4 px for Gaussian blur).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from segrob.perturb.base import Perturbation
from segrob.perturb.filters import fft_convolve, gaussian_blur
from segrob.perturb.seeding import uniform
from segrob.perturb.stats import ImageStats

Result = tuple[Tensor, Tensor | None]


class GaussianBlur(Perturbation):
    name = "gaussian_blur"
    family = "blur"
    description = "isotropic Gaussian blur, sigma in voxels"
    modalities = ("mri", "ct", "us", "histology")
    draws_field = False
    levels = {"sigma": (0.8, 1.5, 2.2, 3.0, 4.0)}

    def apply(self, image: Tensor, label: Tensor | None, params: dict[str, Any],
              stats: ImageStats | None = None) -> Result:
        return gaussian_blur(image, params["sigma"]), label


def line_kernel(length: int, direction: Tensor) -> Tensor:
    """A normalised line of ``length`` voxels through the centre along ``direction``."""
    dims = direction.numel()
    size = length if length % 2 else length + 1
    centre = (size - 1) / 2.0
    steps = torch.linspace(-(length - 1) / 2.0, (length - 1) / 2.0, steps=4 * length)
    points = torch.round(centre + steps[:, None] * direction[None, :].float()).long()
    points = points.clamp(0, size - 1)
    kernel = torch.zeros((size,) * dims)
    kernel[tuple(points.T)] = 1.0
    return kernel / kernel.sum()


class MotionBlur(Perturbation):
    name = "motion_blur"
    family = "blur"
    description = "linear motion blur: a line kernel of the given length in a random direction"
    modalities = ("us", "histology", "ct")
    draws_field = False
    levels = {"length": (3.0, 5.0, 9.0, 13.0, 17.0)}

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
        kernel = line_kernel(int(params["length"]), torch.tensor(params["direction"]))
        return fft_convolve(image, kernel.to(image.device)), label
