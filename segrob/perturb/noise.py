"""Noise: Gaussian, Rician, speckle, impulse (salt and pepper) and Poisson.

Strengths are relative to each image's robust range ``[low, high]``: on ``u = (x - low) /
(high - low)`` a variance ``v`` means noise of standard deviation ``sqrt(v) (high - low)`` in the
image's own units. The variance scale .02 -> .3 puts Kamath et al. 2023's speckle variances .1
and .3 at severities 3 and 5. All members work on 2D and 3D batches.

Each member computes in place on the buffer of its random field: a 3D batch is copied as few
times as the formula needs, so the random number generator, not the bookkeeping, sets the pace.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from segrob.perturb.base import Perturbation, from_unit, random_field, to_unit
from segrob.perturb.stats import ImageStats, stats_for

Result = tuple[Tensor, Tensor | None]


class GaussianNoise(Perturbation):
    name = "gaussian_noise"
    family = "noise"
    description = "additive Gaussian noise u + n, n ~ N(0, variance), on the robust range"
    modalities = ("ct", "mri", "histology")
    levels = {"variance": (0.02, 0.05, 0.1, 0.2, 0.3)}
    units = {"variance": "squared share of the robust range"}

    def apply(self, image: Tensor, label: Tensor | None, params: dict[str, Any],
              stats: ImageStats | None = None) -> Result:
        stats = stats_for(image, stats)
        # u + n sqrt(v) in unit range is x + n sqrt(v) span in the image's units.
        scale = stats.span * params["variance"] ** 0.5
        if type(image) is Tensor and image.device.type == "cpu" and image.dtype == torch.float32 \
                and image.is_contiguous() and not image.requires_grad:
            finish = _scale_and_add(scale, image)
            return random_field(params, tuple(image.shape), image, finish=finish), label
        noise = random_field(params, tuple(image.shape), image)
        return _add(image, noise.mul_(scale)), label


class RicianNoise(Perturbation):
    name = "rician_noise"
    family = "noise"
    cpu_dependent_bits = True
    description = "MRI magnitude noise sqrt((u + n1)^2 + n2^2), n1, n2 ~ N(0, sigma^2)"
    modalities = ("mri",)
    levels = {"sigma": (0.05, 0.1, 0.15, 0.22, 0.3)}
    units = {"sigma": "share of the robust range"}

    def apply(self, image: Tensor, label: Tensor | None, params: dict[str, Any],
              stats: ImageStats | None = None) -> Result:
        unit, low, span = to_unit(image, stats)
        real, imaginary = random_field(params, (2, *image.shape), image).mul_(params["sigma"])
        real.add_(unit.clamp_min_(0)).square_()
        magnitude = real.add_(imaginary.square_()).sqrt_()
        return from_unit(magnitude, low, span, image), label


class SpeckleNoise(Perturbation):
    name = "speckle_noise"
    family = "noise"
    description = "multiplicative speckle u + u n, n ~ N(0, variance) (ultrasound)"
    modalities = ("us",)
    levels = {"variance": (0.02, 0.05, 0.1, 0.2, 0.3)}
    units = {"variance": "squared share of the robust range"}

    def apply(self, image: Tensor, label: Tensor | None, params: dict[str, Any],
              stats: ImageStats | None = None) -> Result:
        stats = stats_for(image, stats)
        # u + max(u, 0) n sqrt(v) in unit range: x + max(x - low, 0) n sqrt(v) in image units.
        noise = random_field(params, tuple(image.shape), image).mul_(params["variance"] ** 0.5)
        noise.mul_((image - stats.low).clamp_min_(0))
        return _add(image, noise), label


class ImpulseNoise(Perturbation):
    name = "impulse_noise"
    family = "noise"
    description = "salt and pepper: a share of voxels set to the robust minimum or maximum"
    modalities = ("ct", "histology")
    levels = {"amount": (0.01, 0.03, 0.06, 0.1, 0.17)}
    units = {"amount": "share of voxels"}

    def apply(self, image: Tensor, label: Tensor | None, params: dict[str, Any],
              stats: ImageStats | None = None) -> Result:
        unit, low, span = to_unit(image, stats)
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
    units = {"peak": "photon counts at the robust maximum"}

    def apply(self, image: Tensor, label: Tensor | None, params: dict[str, Any],
              stats: ImageStats | None = None) -> Result:
        unit, low, span = to_unit(image, stats)
        peak = params["peak"]
        rate = unit.clamp_min(0).float() * peak
        # Drawn on the CPU like every field (see base): the same counts on any device.
        gen = torch.Generator(device="cpu").manual_seed(int(params["field_seed"]))
        counts = torch.poisson(rate.cpu(), generator=gen).to(image.device)
        return from_unit(counts / peak, low, span, image), label


def _scale_and_add(scale: Tensor, image: Tensor) -> Callable[[int, Tensor], None]:
    """A ``random_field`` finish that turns each drawn block ``n`` into ``n scale + image``, with
    the same float32 products and sums as ``noise.mul_(scale).add_(image)``.

    It runs on the drawing threads, in NumPy: a torch operation there would start an OpenMP team
    per thread, and one on the main thread afterwards leaves OpenMP's workers spinning on the
    cores the next call's draws need. ``scale`` holds one value per image and channel."""
    flat = image.detach().view(-1).numpy()
    factors = scale.detach().reshape(-1).numpy()
    per_channel = image[0, 0].numel()

    def finish(start: int, block: Tensor) -> None:
        values = block.numpy()
        done = 0
        while done < values.size:  # a block may straddle images or channels
            channel = (start + done) // per_channel
            stop = min(values.size, (channel + 1) * per_channel - start)
            part = values[done:stop]
            np.multiply(part, factors[channel], out=part)
            np.add(part, flat[start + done:start + stop], out=part)
            done = stop

    return finish


def _add(image: Tensor, noise: Tensor) -> Tensor:
    """``image + noise`` in ``image``'s dtype, into ``noise``'s buffer when the dtypes agree."""
    if noise.dtype == image.dtype:
        return noise.add_(image)
    return (image + noise).to(image.dtype)
