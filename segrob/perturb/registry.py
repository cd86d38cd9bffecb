"""The perturbation registry: name -> class, and ``create_perturbation`` with a helpful error."""

from __future__ import annotations

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
from segrob.perturb.base import Perturbation
from segrob.perturb.blur import GaussianBlur, MotionBlur
from segrob.perturb.geometry import Affine, Elastic
from segrob.perturb.noise import (
    GaussianNoise,
    ImpulseNoise,
    PoissonNoise,
    RicianNoise,
    SpeckleNoise,
)
from segrob.perturb.shift import (
    BiasField,
    Brightness,
    Contrast,
    GammaCompression,
    GammaExpansion,
    HistogramWarp,
    ResolutionLoss,
)
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
