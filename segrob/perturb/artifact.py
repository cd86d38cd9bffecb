"""Acquisition artifacts: MRI k-space physics, ultrasound beam effects, histology staining and JPEG.

MRI members act on the k-space of every image (``torch.fft`` over the spatial axes): ghosting
(every n-th line along the phase-encoding axis attenuated), a k-space spike (stripes), Gibbs
ringing (high frequencies truncated) and motion (a share of k-space lines from a shifted
object), in 2D and 3D. Each is the real part of the inverse transform of the changed k-space,
computed by the cheapest exact route: half spectra of the real image (``rfft``), one axis where
only one axis's lines change, and the spike as the plane wave that one k-space point adds.
Ultrasound: an acoustic shadow below a point and a depth-dependent gain error, depth being the
first spatial axis (3D: a 3D probe, the shadow a slab along the last axis).
Histology: per-channel stain scale and offset (meant for RGB, applied to any channels) and JPEG
(2D; a 3D volume is compressed slice by slice along its first axis, as lossy PACS storage does).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from segrob.perturb.base import (
    Perturbation,
    forward_fft,
    from_unit,
    inverse_fft,
    thread_independent_product,
    to_unit,
)
from segrob.perturb.seeding import sign, uniform
from segrob.perturb.stats import ImageStats

Result = tuple[Tensor, Tensor | None]


def _kspace(image: torch.Tensor) -> torch.Tensor:
    return forward_fft(image.float(), tuple(range(2, image.ndim)), half=False)


def _signed_image(kspace: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return inverse_fft(kspace, tuple(range(2, like.ndim))).real.to(like.dtype)


def _axis_frequencies(n: int, device) -> torch.Tensor:
    return torch.fft.fftfreq(n, device=device)


def _half_spectrum(scale: torch.Tensor) -> torch.Tensor:
    """A per-line k-space scale as ``rfft`` lines ``0..n/2``, made symmetric in ``k`` and ``n - k``.

    ``Re(ifft(scale * fft(x)))`` of a real ``x`` is ``irfft`` of the symmetric part
    ``(scale[k] + scale[n - k]) / 2`` times ``rfft(x)``: the real part is what every k-space
    member returns, and the symmetric scale keeps the result real by construction.
    """
    n = scale.numel()
    lines = torch.arange(n // 2 + 1, device=scale.device)
    return (scale[lines] + scale[(n - lines) % n]) / 2.0


def _spectrum_peak(image: torch.Tensor) -> torch.Tensor:
    """``max |fft(x)|`` per image and channel, shaped ``(N, C)``.

    For an image without negative values that is the sum (the DC term): ``|F(k)| <= sum |x|``.
    Otherwise the half spectrum of the real image holds every magnitude of the full one.
    """
    flat = image.flatten(2)
    total = flat.sum(dim=2)
    non_negative = flat.amin(dim=2) >= 0
    if bool(non_negative.all()):
        return total
    spectrum = forward_fft(image, tuple(range(2, image.ndim)), half=True)
    return torch.where(non_negative, total, spectrum.abs().flatten(2).amax(dim=2))


class Ghosting(Perturbation):
    name = "ghosting"
    family = "artifact"
    cpu_dependent_bits = True
    description = "MRI ghosting: every n-th k-space line along a random axis attenuated"
    modalities = ("mri",)
    draws_field = False
    levels = {"intensity": (0.2, 0.35, 0.5, 0.65, 0.8), "ghosts": (4.0, 4.0, 4.0, 4.0, 4.0)}
    units = {"intensity": "share of each ghost line removed", "ghosts": "every n-th k-space line"}

    def make_params(self, severity: int, generator: torch.Generator, *,
                    image_shape: tuple[int, ...]) -> dict[str, Any]:
        params = super().make_params(severity, generator, image_shape=image_shape)
        params["axis"] = int(uniform(generator, 0, len(image_shape) - 2 - 1e-9))
        return params

    def apply(self, image: Tensor, label: Tensor | None, params: dict[str, Any],
              stats: ImageStats | None = None) -> Result:
        axis = 2 + params["axis"]
        n = image.shape[axis]
        lines = torch.arange(n, device=image.device)
        hit = (lines % int(params["ghosts"]) == 0) & (lines != 0)  # keep the centre (DC) line
        scale = torch.where(hit, 1.0 - params["intensity"], 1.0)
        # The scale depends on this axis's line only, so the other axes' transforms cancel. A real
        # scale times a complex value rounds alike in every routine: only the transforms need one
        # thread.
        spectrum = forward_fft(image.float(), (axis,), half=True)
        spectrum *= _half_spectrum(scale).view([-1 if a == axis else 1 for a in range(image.ndim)])
        return inverse_fft(spectrum, (axis,), (n,)).to(image.dtype), label


class Spike(Perturbation):
    name = "spike"
    family = "artifact"
    cpu_dependent_bits = True
    description = "MRI k-space spike (herringbone stripes): one k-space point raised"
    modalities = ("mri",)
    draws_field = False
    levels = {"intensity": (0.02, 0.05, 0.1, 0.2, 0.35)}
    units = {"intensity": "share of the k-space peak"}

    def make_params(self, severity: int, generator: torch.Generator, *,
                    image_shape: tuple[int, ...]) -> dict[str, Any]:
        params = super().make_params(severity, generator, image_shape=image_shape)
        params["position"] = [round(uniform(generator, 0.05, 0.3) * sign(generator), 4)
                              for _ in range(len(image_shape) - 2)]
        return params

    def apply(self, image: Tensor, label: Tensor | None, params: dict[str, Any],
              stats: ImageStats | None = None) -> Result:
        """Adding ``a`` at k-space point ``k`` adds ``Re(ifft(a delta_k)) = a / V cos(2 pi sum_i
        k_i x_i / n_i)`` to the image (``V`` voxels): a plane wave, no transform of the image."""
        spatial = image.shape[2:]
        index = [round(p * n) % n for p, n in zip(params["position"], spatial, strict=True)]
        x = image.float()
        amplitude = _spectrum_peak(x) * (params["intensity"] / math.prod(spatial))
        cycles = torch.zeros((), device=image.device)
        for axis, (k, n) in enumerate(zip(index, spatial, strict=True)):
            # k x mod n in exact integers: the phase stays accurate far from the origin.
            turns = (k * torch.arange(n, device=image.device) % n).float() / n
            cycles = cycles + turns.view([-1 if a == axis else 1 for a in range(len(spatial))])
        wave = cycles.mul_(2 * math.pi).cos_()
        return (wave * amplitude.view(*amplitude.shape, *[1] * len(spatial))).add_(x) \
            .to(image.dtype), label


class GibbsRinging(Perturbation):
    name = "gibbs_ringing"
    family = "artifact"
    cpu_dependent_bits = True
    description = "MRI Gibbs ringing: k-space truncated to a central share"
    modalities = ("mri",)
    draws_field = False
    levels = {"keep": (0.8, 0.65, 0.5, 0.38, 0.25)}
    units = {"keep": "share of k-space kept per axis"}

    def apply(self, image: Tensor, label: Tensor | None, params: dict[str, Any],
              stats: ImageStats | None = None) -> Result:
        spatial = image.shape[2:]
        dims = tuple(range(2, image.ndim))
        spectrum = forward_fft(image.float(), dims, half=True)
        for axis, n in enumerate(spatial):
            # |frequency| is symmetric in k and n - k: the half spectrum keeps the image real.
            keep = _axis_frequencies(n, image.device).abs() <= params["keep"] / 2.0
            if axis == len(spatial) - 1:
                keep = keep[: n // 2 + 1]
            # The frequencies cut form one run of lines along the axis: zero them in place
            # rather than multiply the whole spectrum by the mask.
            cut = torch.nonzero(~keep).flatten().tolist()
            if cut:
                spectrum.narrow(2 + axis, cut[0], cut[-1] - cut[0] + 1).zero_()
        return inverse_fft(spectrum, dims, spatial).to(image.dtype), label


class MRIMotion(Perturbation):
    name = "mri_motion"
    family = "artifact"
    cpu_dependent_bits = True
    description = "MRI motion: a band of k-space lines acquired after the object moved"
    modalities = ("mri",)
    draws_field = False
    levels = {"lines": (0.1, 0.2, 0.3, 0.4, 0.5), "shift": (1.0, 2.0, 3.0, 4.0, 5.0)}
    units = {"lines": "share of k-space lines", "shift": "voxels"}

    def make_params(self, severity: int, generator: torch.Generator, *,
                    image_shape: tuple[int, ...]) -> dict[str, Any]:
        params = super().make_params(severity, generator, image_shape=image_shape)
        params["axis"] = int(uniform(generator, 0, len(image_shape) - 2 - 1e-9))
        params["centre"] = round(uniform(generator, -0.25, 0.25), 4)
        params["direction"] = [round(uniform(generator, -1, 1), 4)
                               for _ in range(len(image_shape) - 2)]
        return params

    def apply(self, image: Tensor, label: Tensor | None, params: dict[str, Any],
              stats: ImageStats | None = None) -> Result:
        """Lines within ``lines / 2`` of ``centre`` (in cycles per image along ``axis``) take the
        k-space of the object translated by ``shift`` voxels; one centre per seed, so a higher
        severity corrupts a superset of the lines a lower one does."""
        k = _kspace(image)
        spatial = image.shape[2:]
        axis = params["axis"]
        corrupted = ((_axis_frequencies(spatial[axis], image.device) - params["centre"]).abs()
                     <= params["lines"] / 2.0)
        lines = corrupted.nonzero().flatten()
        direction = torch.tensor(params["direction"])
        direction = direction / direction.norm().clamp_min(1e-6) * params["shift"]
        # The translation's phase on the corrupted lines alone (the rest keep their k-space): the
        # complex exponential is most of this member's time, and elementwise, so the same bits.
        # The product still spans the whole k-space: its rounding depends on each value's place.
        phase = torch.zeros((*spatial[:axis], lines.numel(), *spatial[axis + 1:]), device=image.device)
        for dim, n in enumerate(spatial):
            shape = [1] * len(spatial)
            shape[dim] = -1
            frequency = _axis_frequencies(n, image.device)
            if dim == axis:
                frequency = frequency[lines]
            phase = phase + (frequency * float(direction[dim])).view(shape)
        translation = torch.ones(spatial, dtype=k.dtype, device=image.device)
        translation.index_copy_(axis, lines, torch.exp(-2j * math.pi * phase))
        moved = thread_independent_product(k, translation)
        shape = [1] * len(spatial)
        shape[axis] = -1
        return _signed_image(torch.where(corrupted.view(shape), moved, k), image), label


class UltrasoundShadowing(Perturbation):
    name = "us_shadowing"
    family = "artifact"
    cpu_dependent_bits = True
    description = "ultrasound acoustic shadow: a band below a random point darkened (depth: axis 0)"
    modalities = ("us",)
    draws_field = False
    levels = {"attenuation": (0.2, 0.35, 0.5, 0.65, 0.8), "width": (0.06, 0.08, 0.1, 0.13, 0.16)}
    units = {"attenuation": "share of intensity removed", "width": "share of the image width"}

    def make_params(self, severity: int, generator: torch.Generator, *,
                    image_shape: tuple[int, ...]) -> dict[str, Any]:
        params = super().make_params(severity, generator, image_shape=image_shape)
        params["start_depth"] = round(uniform(generator, 0.1, 0.5), 4)
        params["centre"] = round(uniform(generator, 0.15, 0.85), 4)
        return params

    def apply(self, image: Tensor, label: Tensor | None, params: dict[str, Any],
              stats: ImageStats | None = None) -> Result:
        spatial = image.shape[2:]
        depth = torch.linspace(0, 1, spatial[0], device=image.device)
        across = torch.linspace(0, 1, spatial[-1], device=image.device)
        below = torch.sigmoid((depth - params["start_depth"]) * 60.0)
        band = torch.exp(-0.5 * ((across - params["centre"]) / (params["width"] / 2.0)) ** 2)
        shadow = 1.0 - params["attenuation"] * below.view(-1, *([1] * (len(spatial) - 1))) * band
        unit, low, span = to_unit(image, stats)
        return from_unit(unit * shadow, low, span, image), label


class UltrasoundGain(Perturbation):
    name = "us_gain"
    family = "artifact"
    description = "ultrasound time-gain error: a gain ramp along depth (axis 0), random sign"
    modalities = ("us",)
    draws_field = False
    levels = {"ramp": (0.2, 0.35, 0.5, 0.65, 0.8)}
    units = {"ramp": "gain change over the depth (share)"}

    def make_params(self, severity: int, generator: torch.Generator, *,
                    image_shape: tuple[int, ...]) -> dict[str, Any]:
        params = super().make_params(severity, generator, image_shape=image_shape)
        params["sign"] = sign(generator)
        return params

    def apply(self, image: Tensor, label: Tensor | None, params: dict[str, Any],
              stats: ImageStats | None = None) -> Result:
        spatial = image.shape[2:]
        depth = torch.linspace(-1, 1, spatial[0], device=image.device)
        gain = (1.0 + params["sign"] * params["ramp"] * depth).clamp_min(0.05)
        unit, low, span = to_unit(image, stats)
        return from_unit(unit * gain.view(-1, *([1] * (len(spatial) - 1))), low, span, image), label


class StainShift(Perturbation):
    name = "stain_shift"
    family = "artifact"
    description = "histology stain variation: per-channel scale and offset (meant for RGB)"
    modalities = ("histology",)
    draws_field = False
    levels = {"strength": (0.05, 0.1, 0.15, 0.22, 0.3)}
    units = {"strength": "share of the robust range"}

    def make_params(self, severity: int, generator: torch.Generator, *,
                    image_shape: tuple[int, ...]) -> dict[str, Any]:
        params = super().make_params(severity, generator, image_shape=image_shape)
        s = params["strength"]
        channels = image_shape[1]
        params["scale"] = [round(1.0 + uniform(generator, -s, s), 5) for _ in range(channels)]
        params["offset"] = [round(uniform(generator, -s, s) / 2.0, 5) for _ in range(channels)]
        return params

    def apply(self, image: Tensor, label: Tensor | None, params: dict[str, Any],
              stats: ImageStats | None = None) -> Result:
        unit, low, span = to_unit(image, stats)
        shape = (1, image.shape[1]) + (1,) * (image.ndim - 2)
        scale = torch.tensor(params["scale"], device=image.device).view(shape)
        offset = torch.tensor(params["offset"], device=image.device).view(shape)
        return from_unit(unit * scale + offset, low, span, image), label


_JPEG_LUMA = torch.tensor(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=torch.float32,
)


def _dct_matrix(n: int = 8) -> torch.Tensor:
    k = torch.arange(n, dtype=torch.float32)
    matrix = torch.cos(math.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n)) * math.sqrt(2.0 / n)
    matrix[0] /= math.sqrt(2.0)
    return matrix


class JPEG(Perturbation):
    name = "jpeg"
    family = "artifact"
    cpu_dependent_bits = True
    description = ("lossy JPEG in torch: 8x8 DCT blocks quantised with the standard luminance "
                   "table at a quality; 3D: each slice along the first axis on its own (as PACS)")
    modalities = ("histology", "us")
    draws_field = False
    levels = {"quality": (80.0, 60.0, 40.0, 25.0, 10.0)}
    units = {"quality": "JPEG quality (1-100)"}

    def apply(self, image: Tensor, label: Tensor | None, params: dict[str, Any],
              stats: ImageStats | None = None) -> Result:
        """Per 8x8 block ``B`` of ``255 u - 128``: ``D^T round(D B D^T / Q) Q D`` with ``D`` the
        orthonormal DCT-II and ``Q`` the luminance table scaled by quality (libjpeg's rule).
        Chroma subsampling and entropy coding are left out: they add no further loss."""
        unit, low, span = to_unit(image, stats)
        pixels = unit.clamp(0, 1).float() * 255.0 - 128.0
        if pixels.ndim == 5:  # (N, C, D, H, W): every slice is a 2D image
            n, c, d, h, w = pixels.shape
            planes = pixels.permute(0, 2, 1, 3, 4).reshape(n * d, c, h, w)
            merged = _jpeg_planes(planes, params["quality"])
            merged = merged.reshape(n, d, c, h, w).permute(0, 2, 1, 3, 4)
        else:
            merged = _jpeg_planes(pixels, params["quality"])
        return from_unit(((merged + 128.0) / 255.0).clamp(0, 1), low, span, image), label


def _jpeg_planes(pixels: Tensor, quality: float) -> Tensor:
    """Quantise ``(M, C, H, W)`` centred 8-bit values in 8x8 DCT blocks (edges replicated)."""
    n, c, h, w = pixels.shape
    pad_h, pad_w = (-h) % 8, (-w) % 8
    padded = torch.nn.functional.pad(pixels, (0, pad_w, 0, pad_h), mode="replicate")
    blocks = padded.unfold(2, 8, 8).unfold(3, 8, 8)  # (M, C, H/8, W/8, 8, 8)
    dct = _dct_matrix().to(pixels.device)
    scale = 5000.0 / quality if quality < 50 else 200.0 - 2.0 * quality
    table = ((_JPEG_LUMA.to(pixels.device) * scale + 50.0) / 100.0).floor().clamp_min(1.0)
    coefficients = dct @ blocks @ dct.T
    restored = dct.T @ (torch.round(coefficients / table) * table) @ dct
    return restored.permute(0, 1, 2, 4, 3, 5).reshape(n, c, h + pad_h, w + pad_w)[:, :, :h, :w]
