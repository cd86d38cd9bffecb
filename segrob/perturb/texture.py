"""The texture protocol of Kamath et al. 2023: change the background texture, keep the object.

* ``texture_blur_background`` (the paper's "easier" set): Gaussian blur of the background only
  (label 0), sigma 3 and 7 px: the background loses its texture, so the foreground stands out.
* ``texture_speckle`` (the paper's "harder" set): speckle noise of variance .1 and .3 over the
  whole image, burying both textures.

Each has two severities, the paper's two levels.
"""

from __future__ import annotations

import torch

from segrob.perturb.base import Perturbation
from segrob.perturb.filters import gaussian_blur
from segrob.perturb.noise import SpeckleNoise


class BackgroundBlur(Perturbation):
    name = "texture_blur_background"
    family = "texture"
    description = "the paper's easier shift: background (label 0) blurred, sigma 3 and 7 px"
    modalities = ("us", "mri", "ct", "histology")
    levels = {"sigma": (3.0, 7.0)}

    def make_params(self, severity, gen, image):
        return dict(self.severity_params(severity))

    def apply(self, image, label, params):
        if label is None:
            return gaussian_blur(image, params["sigma"]), label
        background = (label == 0)[:, None]
        return torch.where(background, gaussian_blur(image, params["sigma"]), image), label


class TextureSpeckle(SpeckleNoise):
    name = "texture_speckle"
    family = "texture"
    description = "the paper's harder shift: speckle noise over the image, variance .1 and .3"
    modalities = ("us", "mri", "ct", "histology")
    levels = {"variance": (0.1, 0.3)}
