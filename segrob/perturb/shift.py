"""Intensity and resolution shifts of scanners and protocols.

Gamma compression (.86 -> .3) and expansion (1.4 -> 3.0), contrast, brightness, a smooth
multiplicative bias field (polynomial coefficients .3 -> 1.5), a random monotone histogram warp
and resolution loss (down- then up-sampling by 1.5 -> 5; along the through-plane axis only on an
anisotropic volume, as a thicker-slice scanner does). All work on 2D and 3D batches.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
from torch import Tensor

from segrob.perturb.base import Perturbation, from_unit, one_torch_thread, thread_independent, to_unit
from segrob.perturb.filters import resample
from segrob.perturb.seeding import sign
from segrob.perturb.stats import ImageStats, stats_for

Result = tuple[Tensor, Tensor | None]


class GammaCompression(Perturbation):
    name = "gamma_compression"
    family = "shift"
    description = "x^gamma with gamma < 1 on the robust range: dark tissue brightened"
    modalities = ("mri", "ct", "us", "histology")
    draws_field = False
    levels = {"gamma": (0.86, 0.7, 0.55, 0.42, 0.3)}
    units = {"gamma": "exponent on the robust range"}

    def apply(self, image: Tensor, label: Tensor | None, params: dict[str, Any],
              stats: ImageStats | None = None) -> Result:
        unit, low, span = to_unit(image, stats)
        gamma = params["gamma"]
        unit = thread_independent(unit.clamp_(0, 1), lambda part: part.pow_(gamma))
        return from_unit(unit, low, span, image), label


class GammaExpansion(GammaCompression):
    name = "gamma_expansion"
    description = "x^gamma with gamma > 1 on the robust range: bright tissue stretched"
    levels = {"gamma": (1.4, 1.8, 2.2, 2.6, 3.0)}


class Contrast(Perturbation):
    name = "contrast"
    family = "shift"
    description = "contrast reduced towards each image's mean by a factor"
    modalities = ("ct", "us", "histology", "mri")
    draws_field = False
    levels = {"factor": (0.8, 0.65, 0.5, 0.35, 0.2)}
    units = {"factor": "contrast kept (1 = unchanged)"}

    def apply(self, image: Tensor, label: Tensor | None, params: dict[str, Any],
              stats: ImageStats | None = None) -> Result:
        with one_torch_thread():  # a mean's rounding depends on torch's split among threads
            mean = image.float().mean(dim=tuple(range(2, image.ndim)), keepdim=True)
        return (image - mean).mul_(params["factor"]).add_(mean).to(image.dtype), label


class Brightness(Perturbation):
    name = "brightness"
    family = "shift"
    description = "an offset of a share of the robust range, random sign"
    modalities = ("ct", "histology", "us")
    draws_field = False
    levels = {"offset": (0.1, 0.2, 0.3, 0.4, 0.5)}
    units = {"offset": "share of the robust range"}

    def make_params(self, severity: int, generator: torch.Generator, *,
                    image_shape: tuple[int, ...]) -> dict[str, Any]:
        params = super().make_params(severity, generator, image_shape=image_shape)
        params["sign"] = sign(generator)
        return params

    def apply(self, image: Tensor, label: Tensor | None, params: dict[str, Any],
              stats: ImageStats | None = None) -> Result:
        # u + s o in unit range is x + s o span in the image's units: one pass, no round trip.
        offset = stats_for(image, stats).span * (params["sign"] * params["offset"])
        return (image + offset).to(image.dtype), label


class BiasField(Perturbation):
    name = "bias_field"
    family = "shift"
    cpu_dependent_bits = True
    description = "smooth multiplicative field exp(polynomial of order 3), coefficients in +-c"
    modalities = ("mri",)
    draws_field = False
    levels = {"coefficient": (0.3, 0.6, 0.9, 1.2, 1.5)}
    units = {"coefficient": "log-intensity, on coordinates in [-1, 1]"}
    order = 3

    def make_params(self, severity: int, generator: torch.Generator, *,
                    image_shape: tuple[int, ...]) -> dict[str, Any]:
        params = super().make_params(severity, generator, image_shape=image_shape)
        dims = len(image_shape) - 2
        terms = [p for p in itertools.product(range(self.order + 1), repeat=dims)
                 if sum(p) <= self.order]
        c = params["coefficient"]
        draws = torch.rand(len(terms), generator=generator) * 2 - 1
        params["terms"] = [list(t) for t in terms]
        params["coefficients"] = [round(float(c * d), 6) for d in draws]
        return params

    def apply(self, image: Tensor, label: Tensor | None, params: dict[str, Any],
              stats: ImageStats | None = None) -> Result:
        with one_torch_thread():  # products, mean and exp that round alike on any thread count
            field = self._field(image.shape[2:], params, image.device)
        unit, low, span = to_unit(image, stats)
        return from_unit(unit.mul_(field), low, span, image), label

    def _field(self, spatial: tuple[int, ...], params: dict[str, Any], device) -> Tensor:
        """``field = exp(P - mean P)``, ``P(x) = sum_t c_t prod_axis x_axis^(p_t,axis)`` on
        ``[-1, 1]`` per axis, evaluated separably: the coefficients form a tensor
        ``C[p_1, .., p_d]`` contracted with each axis's powers, so the cost is ``O(order x voxels)``
        instead of one full-size product per term."""
        coefficients = torch.zeros((self.order + 1,) * len(spatial), device=device)
        for powers, value in zip(params["terms"], params["coefficients"], strict=True):
            coefficients[tuple(powers)] = value
        log_field = coefficients
        for n in spatial:
            powers = torch.linspace(-1, 1, n, device=device)[None, :] ** torch.arange(
                self.order + 1, device=device)[:, None].float()
            # Contract the leading power axis and append this axis's positions at the end.
            log_field = torch.tensordot(log_field, powers, dims=([0], [0]))
        # Normalise so the field's mean is 1: it redistributes intensity rather than scaling it.
        return log_field.sub_(log_field.mean()).exp_()


class HistogramWarp(Perturbation):
    name = "histogram_warp"
    family = "shift"
    description = "random smooth monotone remapping of intensities (scanner look-up tables)"
    modalities = ("mri", "ct", "us", "histology")
    draws_field = False
    levels = {"strength": (0.15, 0.3, 0.45, 0.6, 0.8)}
    units = {"strength": "share of the robust range (1 - minimum slope)"}
    harmonics = 3

    def make_params(self, severity: int, generator: torch.Generator, *,
                    image_shape: tuple[int, ...]) -> dict[str, Any]:
        params = super().make_params(severity, generator, image_shape=image_shape)
        weights = torch.rand(self.harmonics, generator=generator) * 2 - 1
        weights = weights / weights.abs().sum().clamp_min(1e-6)
        params["weights"] = [round(float(w), 6) for w in weights]
        return params

    def apply(self, image: Tensor, label: Tensor | None, params: dict[str, Any],
              stats: ImageStats | None = None) -> Result:
        """``y = x + s * sum_k w_k sin(pi k x) / (pi k)`` with ``sum |w_k| = 1``: its slope is at
        least ``1 - s > 0``, so the map stays monotone, and the endpoints 0 and 1 stay put.

        Evaluated as ``sin(pi x) P(cos(pi x))``, from ``sin(k t) = sin(t) U_(k-1)(cos t)`` with
        ``U`` the Chebyshev polynomials of the second kind: one sine and one cosine whatever the
        number of harmonics."""
        unit, low, span = to_unit(image, stats)
        x = unit.clamp_(0, 1).float()
        angle = x * torch.pi
        warp = torch.sin(angle)
        cosine = angle.cos_()
        coefficients = sine_series(params["weights"], params["strength"])
        polynomial = torch.full_like(cosine, coefficients[-1])
        for coefficient in reversed(coefficients[:-1]):
            polynomial.mul_(cosine).add_(coefficient)
        return from_unit(warp.mul_(polynomial).add_(x), low, span, image), label


def sine_series(weights: list[float], strength: float) -> list[float]:
    """Power-series coefficients ``c_j`` of ``P(c) = s sum_k w_k U_(k-1)(c) / (pi k)``, lowest
    first, so that ``s sum_k w_k sin(k t) / (pi k) = sin(t) sum_j c_j cos(t)^j``."""
    previous, current = [0.0], [1.0]  # U_(-1) = 0, U_0 = 1
    total = [0.0] * len(weights)
    for k, weight in enumerate(weights, start=1):
        for j, value in enumerate(current):
            total[j] += strength * weight * value / (torch.pi * k)
        # U_k(c) = 2 c U_(k-1)(c) - U_(k-2)(c)
        shifted = [0.0] + [2.0 * value for value in current]
        previous, current = current, [a - (previous[j] if j < len(previous) else 0.0)
                                      for j, a in enumerate(shifted)]
    return total


class ResolutionLoss(Perturbation):
    name = "resolution_loss"
    family = "shift"
    description = ("down-sample by a factor (area) and back (linear): a lower-resolution scanner; "
                   "on an anisotropic volume along its through-plane axis only (thicker slices)")
    modalities = ("mri", "ct", "us", "histology")
    draws_field = False
    uses_spacing = True
    levels = {"factor": (1.5, 2.0, 3.0, 4.0, 5.0)}
    units = {"factor": "voxel size multiplier"}
    #: A volume whose coarsest axis is this many times its finest is anisotropic (nnU-Net's 3).
    anisotropy = 3.0

    def with_spacing(self, params: dict[str, Any], spacing: tuple[float, ...] | None) -> dict[str, Any]:
        """Record ``axes``, the through-plane axis, on an anisotropic volume; the factor is a
        ratio, so the spacing itself is not needed."""
        if spacing is not None and len(spacing) == 3 and max(spacing) >= self.anisotropy * min(spacing):
            params["axes"] = [max(range(3), key=lambda axis: spacing[axis])]
        return params

    def apply(self, image: Tensor, label: Tensor | None, params: dict[str, Any],
              stats: ImageStats | None = None) -> Result:
        spatial = tuple(image.shape[2:])
        axes = params.get("axes", range(len(spatial)))
        small = tuple(max(2, round(s / params["factor"])) if axis in axes else s
                      for axis, s in enumerate(spatial))
        return resample(resample(image, small, mode="area"), spatial, mode="linear"), label


