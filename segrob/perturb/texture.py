"""The texture protocol of Kamath et al. 2023: change the texture, keep the object's shape.

* ``texture_blur_background`` (the paper's "easier" shift): Gaussian blur of the background only
  (label 0), sigma 3 and 7 px. The background loses its texture while the foreground keeps its
  own, so the texture distance between them grows.
* ``texture_speckle`` (the paper's "harder" shift): speckle noise of variance .1 and .3 over the
  whole image, burying both textures, clipped to the image's range as the paper's is to [0, 1].

Each has two severities, the paper's two levels (1 = the paper's milder, 2 = its stronger); the
contract (severity 0 = clean, quality falls with severity) holds as for the 5-level members.
Both work on 2D and 3D batches.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from segrob.errors import SegrobError
from segrob.perturb.base import Perturbation
from segrob.perturb.filters import gaussian_blur
from segrob.perturb.noise import SpeckleNoise
from segrob.perturb.stats import ImageStats

Result = tuple[Tensor, Tensor | None]


class BackgroundBlur(Perturbation):
    name = "texture_blur_background"
    family = "texture"
    cpu_dependent_bits = True
    description = "the paper's easier shift: background (label 0) blurred, sigma 3 and 7 px"
    modalities = ("us", "mri", "ct", "histology")
    draws_field = False
    levels = {"sigma": (3.0, 7.0)}
    units = {"sigma": "voxels (the paper's protocol)"}

    def apply(self, image: Tensor, label: Tensor | None, params: dict[str, Any],
              stats: ImageStats | None = None) -> Result:
        if label is None:
            raise SegrobError(
                f"{self.name} blurs the background (label 0) and needs a label map; "
                "this case has none"
            )
        background = (label == 0)[:, None]
        return torch.where(background, gaussian_blur(image, params["sigma"]), image), label


class TextureSpeckle(SpeckleNoise):
    name = "texture_speckle"
    family = "texture"
    description = "the paper's harder shift: speckle over the whole image, variance .1 and .3"
    modalities = ("us", "mri", "ct", "histology")
    levels = {"variance": (0.1, 0.3)}
    units = {"variance": "squared share of the robust range"}

    def apply(self, image: Tensor, label: Tensor | None, params: dict[str, Any],
              stats: ImageStats | None = None) -> Result:
        # The paper's speckle (skimage random_noise) clips to the [0, 1] its images span: clip
        # to each image's own range, which is [0, 1] for such images.
        noisy, label = super().apply(image, label, params, stats)
        axes = tuple(range(2, image.ndim))
        return noisy.clamp_(image.amin(dim=axes, keepdim=True), image.amax(dim=axes, keepdim=True)), label
