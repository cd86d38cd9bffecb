"""Noise: Gaussian, Rician, speckle, impulse (salt and pepper) and Poisson.

Strengths are relative to each image's robust range ``[low, high]``: on ``u = (x - low) /
(high - low)`` a variance ``v`` means noise of standard deviation ``sqrt(v) (high - low)`` in the
image's own units. The variance scale .02 -> .3 puts Kamath et al. 2023's speckle variances .1
and .3 at severities 3 and 5. All members work on 2D and 3D batches.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from segrob.perturb.base import Perturbation, from_unit, random_field, to_unit

Result = tuple[Tensor, Tensor | None]


class GaussianNoise(Perturbation):
    name = "gaussian_noise"
    family = "noise"
    description = "additive Gaussian noise u + n, n ~ N(0, variance), on the robust range"
    modalities = ("ct", "mri", "histology")
    levels = {"variance": (0.02, 0.05, 0.1, 0.2, 0.3)}

    def apply(self, image: Tensor, label: Tensor | None, params: dict[str, Any]) -> Result:
        unit, low, span = to_unit(image)
        noise = random_field(params, tuple(image.shape), image) * params["variance"] ** 0.5
        return from_unit(unit + noise, low, span, image), label


class RicianNoise(Perturbation):
    name = "rician_noise"
    family = "noise"
    description = "MRI magnitude noise sqrt((u + n1)^2 + n2^2), n1, n2 ~ N(0, sigma^2)"
    modalities = ("mri",)
    levels = {"sigma": (0.05, 0.1, 0.15, 0.22, 0.3)}

    def apply(self, image: Tensor, label: Tensor | None, params: dict[str, Any]) -> Result:
        unit, low, span = to_unit(image)
        both = random_field(params, (2, *image.shape), image) * params["sigma"]
        magnitude = torch.sqrt((unit.clamp_min(0) + both[0]) ** 2 + both[1] ** 2)
        return from_unit(magnitude, low, span, image), label


class SpeckleNoise(Perturbation):
    name = "speckle_noise"
    family = "noise"
    description = "multiplicative speckle u + u n, n ~ N(0, variance) (ultrasound)"
    modalities = ("us",)
    levels = {"variance": (0.02, 0.05, 0.1, 0.2, 0.3)}

    def apply(self, image: Tensor, label: Tensor | None, params: dict[str, Any]) -> Result:
        unit, low, span = to_unit(image)
        noise = random_field(params, tuple(image.shape), image) * params["variance"] ** 0.5
        return from_unit(unit + unit.clamp_min(0) * noise, low, span, image), label


class ImpulseNoise(Perturbation):
    name = "impulse_noise"
    family = "noise"
    description = "salt and pepper: a share of voxels set to the robust minimum or maximum"
    modalities = ("ct", "histology")
    levels = {"amount": (0.01, 0.03, 0.06, 0.1, 0.17)}

    def apply(self, image: Tensor, label: Tensor | None, params: dict[str, Any]) -> Result:
        unit, low, span = to_unit(image)
        draw = random_field(params, (2, *image.shape), image, kind="uniform")
        hit = draw[0] < params["amount"]
        salt = draw[1] < 0.5
        out = torch.where(hit & salt, torch.ones_like(unit), unit)
        out = torch.where(hit & ~salt, torch.zeros_like(unit), out)
        return from_unit(out, low, span, image), label


class PoissonNoise(Perturbation):
    name = "poisson_noise"
    family = "noise"
    description = "photon counts Poisson(u peak) / peak: fewer photons, more noise (CT dose)"
    modalities = ("ct",)
    levels = {"peak": (200.0, 80.0, 30.0, 12.0, 5.0)}

    def apply(self, image: Tensor, label: Tensor | None, params: dict[str, Any]) -> Result:
        unit, low, span = to_unit(image)
        peak = params["peak"]
        rate = unit.clamp_min(0).float() * peak
        # Drawn on the CPU like every field (see base): the same counts on any device.
        gen = torch.Generator(device="cpu").manual_seed(int(params["field_seed"]))
        counts = torch.poisson(rate.cpu(), generator=gen).to(image.device)
        return from_unit(counts / peak, low, span, image), label
