"""The perturbation contract: draw parameters for a severity, then apply them (TorchIO-style).

A perturbation maps a batch ``(N, C, *spatial)`` (float, any device) and its label map
``(N, *spatial)`` (integer, or ``None``) to the same shapes, dtypes and device. Intensity
parameters are relative to each image's robust range (0.5 to 99.5 percentile), so one suite means
the same on CT, MRI and 8-bit images. Severity 0 is the identity; 1..levels grow in strength.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch

from segrob.data.normalize import robust_range
from segrob.errors import SegrobError
from segrob.perturb.seeding import generator, sub_seed

EPS = 1e-6


@dataclass(frozen=True)
class AppliedPerturbation:
    """What was applied: enough to reproduce it exactly."""

    name: str
    severity: int
    seed: int
    params: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Perturbation:
    """Base class. Subclasses set the class attributes and implement :meth:`apply`.

    ``levels`` maps each parameter to its nominal value at severity 1..n (ROOD-MRI, ImageNet-C
    and the papers' reference points). :meth:`make_params` draws the applied values (random
    signs, directions, the seed of a random field) from a generator.
    """

    name: ClassVar[str]
    family: ClassVar[str]
    kind: ClassVar[str] = "intensity"
    dims: ClassVar[tuple[int, ...]] = (2, 3)
    description: ClassVar[str] = ""
    modalities: ClassVar[tuple[str, ...]] = ()
    levels: ClassVar[dict[str, tuple[float, ...]]] = {}

    @property
    def n_levels(self) -> int:
        return len(next(iter(self.levels.values())))

    def severity_params(self, severity: int) -> dict[str, float]:
        """The nominal parameters at ``severity`` (for `segrob suites`)."""
        return {key: values[severity - 1] for key, values in self.levels.items()}

    def make_params(self, severity: int, gen: torch.Generator, image: torch.Tensor) -> dict[str, Any]:
        params: dict[str, Any] = dict(self.severity_params(severity))
        params["field_seed"] = sub_seed(gen)
        return params

    def apply(
        self, image: torch.Tensor, label: torch.Tensor | None, params: dict[str, Any]
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "kind": self.kind,
            "dims": list(self.dims),
            "description": self.description,
            "modalities": list(self.modalities),
            "severities": {s: self.severity_params(s) for s in range(1, self.n_levels + 1)},
        }


def spatial_axes(image: torch.Tensor) -> tuple[int, ...]:
    return tuple(range(2, image.ndim))


def to_unit(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x - low) / span`` per image and channel, with ``low`` and ``span`` to map back."""
    low, high = robust_range(image)
    span = (high - low).clamp_min(EPS)
    return (image - low) / span, low, span


def from_unit(unit: torch.Tensor, low: torch.Tensor, span: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return (unit * span + low).to(like.dtype)


def random_field(params: dict[str, Any], shape: tuple[int, ...], like: torch.Tensor,
                 kind: str = "normal") -> torch.Tensor:
    """A random field from the recorded ``field_seed``, drawn on the CPU and moved to ``like``'s
    device, so the same seed gives the same perturbation on a CPU and on a GPU."""
    gen = generator(params["field_seed"], "cpu")
    draw = torch.randn if kind == "normal" else torch.rand
    return draw(shape, generator=gen).to(device=like.device, dtype=torch.float32)


def apply_perturbation(
    name: str,
    image: torch.Tensor,
    label: torch.Tensor | None,
    *,
    severity: int,
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor | None, AppliedPerturbation]:
    """Draw the parameters of ``name`` at ``severity`` from ``seed`` and apply them.

    The whole batch gets one draw; the audit passes one case per call with a seed derived from
    the case, so each case's perturbation is independent of the others and of batch order.
    Severity 0 returns the inputs unchanged.
    """
    from segrob.perturb.registry import create_perturbation

    perturbation = create_perturbation(name)
    check_severity(perturbation, severity)
    if image.ndim - 2 not in perturbation.dims:
        dims = " or ".join(f"{d}D" for d in perturbation.dims)
        raise SegrobError(f"perturbation {name} works on {dims} images, got {image.ndim - 2}D")
    if severity == 0:
        return image, label, AppliedPerturbation(name, 0, int(seed), {})
    gen = generator(seed, "cpu")
    params = perturbation.make_params(severity, gen, image)
    out_image, out_label = perturbation.apply(image, label, params)
    return out_image, out_label, AppliedPerturbation(name, severity, int(seed), params)


def check_severity(perturbation: Perturbation, severity: int) -> None:
    if not isinstance(severity, int) or not 0 <= severity <= perturbation.n_levels:
        raise SegrobError(
            f"severity {severity!r} is out of range for {perturbation.name} "
            f"(0 = clean, 1..{perturbation.n_levels})"
        )
