"""The perturbation registry: name -> class, ``create_perturbation`` with a helpful error, and
``apply_perturbation``, which applies one by name.

Imports run one way: ``base`` (the contract) knows no member, the family modules build on
``base``, and only this module knows them all, so nothing imports back into it.
"""

from __future__ import annotations

import torch

from segrob.errors import SegrobError
from segrob.perturb.artifact import (
    JPEG,
    Ghosting,
    GibbsRinging,
    MRIMotion,
    Spike,
    StainShift,
    UltrasoundGain,
    UltrasoundShadowing,
)
from segrob.perturb.base import (
    AppliedPerturbation,
    Perturbation,
    check_batch,
    check_severity,
    check_spacing,
)
from segrob.perturb.blur import GaussianBlur, MotionBlur
from segrob.perturb.geometry import Affine, Elastic
from segrob.perturb.noise import (
    GaussianNoise,
    ImpulseNoise,
    PoissonNoise,
    RicianNoise,
    SpeckleNoise,
)
from segrob.perturb.seeding import generator
from segrob.perturb.shift import (
    BiasField,
    Brightness,
    Contrast,
    GammaCompression,
    GammaExpansion,
    HistogramWarp,
    ResolutionLoss,
)
from segrob.perturb.stats import ImageStats
from segrob.perturb.texture import BackgroundBlur, TextureSpeckle

PERTURBATIONS: dict[str, type[Perturbation]] = {
    cls.name: cls
    for cls in (
        GaussianNoise, RicianNoise, SpeckleNoise, ImpulseNoise, PoissonNoise,
        GaussianBlur, MotionBlur,
        GammaCompression, GammaExpansion, Contrast, Brightness, BiasField, HistogramWarp,
        ResolutionLoss,
        Ghosting, Spike, GibbsRinging, MRIMotion, UltrasoundShadowing, UltrasoundGain, StainShift,
        JPEG,
        Affine, Elastic,
        BackgroundBlur, TextureSpeckle,
    )
}


def list_perturbations() -> list[str]:
    """The registered names, in catalog order (family by family)."""
    return list(PERTURBATIONS)


def create_perturbation(name: str) -> Perturbation:
    """An instance of perturbation ``name``; an unknown name lists the valid ones."""
    if name not in PERTURBATIONS:
        raise SegrobError(f"unknown perturbation {name!r} (valid: {', '.join(PERTURBATIONS)})")
    return PERTURBATIONS[name]()


def apply_perturbation(
    name: str,
    image: torch.Tensor,
    label: torch.Tensor | None,
    *,
    severity: int,
    seed: int,
    stats: ImageStats | None = None,
    spacing: tuple[float, ...] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None, AppliedPerturbation]:
    """Draw the parameters of ``name`` at ``severity`` from ``seed`` and apply them.

    Args:
        name: a registered perturbation (see :func:`list_perturbations`).
        image: ``(N, C, *spatial)`` float batch on any device.
        label: ``(N, *spatial)`` integer class map, or ``None``.
        severity: 0 (clean: the inputs come back unchanged, ``params == {}``) to ``n_levels``.
        seed: the whole batch is drawn from this one seed (one set of parameters, one random
            field for the batch). The audit passes one case per call, with a seed derived from
            the case (:func:`derive_seed`), so each case's draw is independent of batch order.
        stats: the image's :func:`~segrob.perturb.stats.image_stats`, to compute them once for
            every perturbation of one clean image; computed per call when not given.
        spacing: mm per voxel along each spatial axis; parameters in mm (blur sigma, motion
            length, elastic displacement, the rigid affine) follow it, and resolution loss acts
            along the through-plane axis of an anisotropic volume. ``None``: isotropic 1 mm.

    Returns:
        The perturbed image and label (same shape, dtype and device) and the applied record.
    """
    perturbation = create_perturbation(name)
    check_severity(perturbation, severity)
    check_batch(perturbation, image, label)
    check_spacing(perturbation, image, spacing)
    if severity == 0:
        return image, label, AppliedPerturbation(name, 0, int(seed), {})
    gen = generator(seed, "cpu")
    params = perturbation.make_params(severity, gen, image_shape=tuple(image.shape))
    params = perturbation.with_spacing(params, spacing)
    out_image, out_label = perturbation.apply(image, label, params, stats)
    return out_image, out_label, AppliedPerturbation(name, severity, int(seed), params)
