"""Blur: Gaussian (defocus, partial volume) and motion (a line kernel in a random direction)."""

from __future__ import annotations

import math

import torch

from segrob.perturb.base import Perturbation
from segrob.perturb.filters import fft_convolve, gaussian_blur
from segrob.perturb.seeding import uniform


class GaussianBlur(Perturbation):
    name = "gaussian_blur"
    family = "blur"
    description = "isotropic Gaussian blur, sigma in voxels"
    modalities = ("mri", "ct", "us", "histology")
    levels = {"sigma": (0.8, 1.5, 2.2, 3.0, 4.0)}

    def make_params(self, severity, gen, image):
        return dict(self.severity_params(severity))

    def apply(self, image, label, params):
        return gaussian_blur(image, params["sigma"]), label


def line_kernel(length: int, direction: torch.Tensor) -> torch.Tensor:
    """A normalised line of ``length`` voxels through the centre along ``direction``."""
    dims = direction.numel()
    size = length if length % 2 else length + 1
    kernel = torch.zeros((size,) * dims)
    centre = (size - 1) / 2.0
    for t in torch.linspace(-(length - 1) / 2.0, (length - 1) / 2.0, steps=4 * length):
        point = torch.round(centre + t * direction).long().clamp(0, size - 1)
        kernel[tuple(point.tolist())] = 1.0
    return kernel / kernel.sum()


class MotionBlur(Perturbation):
    name = "motion_blur"
    family = "blur"
    description = "linear motion blur: a line kernel of the given length in a random direction"
    modalities = ("us", "histology", "ct")
    levels = {"length": (3.0, 5.0, 9.0, 13.0, 17.0)}

    def make_params(self, severity, gen, image):
        params = dict(self.severity_params(severity))
        dims = image.ndim - 2
        if dims == 2:
            angle = uniform(gen, 0.0, math.pi)
            params["direction"] = [math.sin(angle), math.cos(angle)]
        else:
            v = [uniform(gen, -1.0, 1.0) for _ in range(3)]
            norm = math.sqrt(sum(c * c for c in v)) or 1.0
            params["direction"] = [c / norm for c in v]
        return params

    def apply(self, image, label, params):
        kernel = line_kernel(int(params["length"]), torch.tensor(params["direction"]))
        return fft_convolve(image, kernel.to(image.device)), label
