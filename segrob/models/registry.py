"""The architecture registry: ``MODELS`` maps a name to its spec, ``create_model`` builds one."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from segrob.errors import SegrobError
from segrob.models.unet import PAPER_CHANNELS, UNet
from segrob.models.unetr import PAPER_OPTIONS as UNETR_PAPER_OPTIONS
from segrob.models.unetr import UNETR

_CONTRACT = ("spatial_dims", "in_channels", "out_channels")


@dataclass(frozen=True)
class ModelSpec:
    """One registered architecture.

    Attributes:
        name: registry key.
        description: one line for ``segrob models``.
        factory: ``factory(spatial_dims=, in_channels=, out_channels=, **options)``.
        dims: spatial dimensionalities it supports.
        fixed_size: True when the model takes exactly one input size (``img_size``).
        exportable: exports to ONNX (with a dynamic batch; spatial too unless fixed-size).
        reference: the paper it follows.
        paper_options: the options that give the paper's size (defaults are CPU-sized).
    """

    name: str
    description: str
    factory: Callable[..., nn.Module]
    dims: tuple[int, ...] = (2, 3)
    fixed_size: bool = False
    exportable: bool = True
    reference: str = ""
    paper_options: dict[str, Any] = field(default_factory=dict)

    @property
    def option_names(self) -> tuple[str, ...]:
        """Options ``create_model`` accepts for this architecture."""
        target = self.factory
        fixed: set[str] = set()
        if isinstance(target, functools.partial):
            fixed = set(target.keywords)
            target = target.func
        names = inspect.signature(target).parameters
        return tuple(n for n in names if n not in _CONTRACT and n not in fixed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "dims": list(self.dims),
            "fixed_size": self.fixed_size,
            "exportable": self.exportable,
            "reference": self.reference,
            "options": list(self.option_names),
            "paper_options": dict(self.paper_options),
        }


_UNET_PAPER = {"channels": list(PAPER_CHANNELS)}

MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "unet",
            "encoder-decoder with concatenating skips",
            functools.partial(UNet, skip="concat"),
            reference="Ronneberger et al., MICCAI 2015",
            paper_options=_UNET_PAPER,
        ),
        ModelSpec(
            "noskip",
            "U-Net with every skip removed, decoder narrowed",
            functools.partial(UNet, skip="none"),
            reference="Kamath et al., MICCAI 2023",
            paper_options=_UNET_PAPER,
        ),
        ModelSpec(
            "attention",
            "U-Net with additive attention gates on the skips",
            functools.partial(UNet, skip="attention"),
            reference="Oktay et al., MIDL 2018",
            paper_options=_UNET_PAPER,
        ),
        ModelSpec(
            "gated",
            "U-Net with learnable per-channel skip gates",
            functools.partial(UNet, skip="gated"),
            reference="adaptive skip, after Kamath et al. 2023",
            paper_options=_UNET_PAPER,
        ),
        ModelSpec(
            "unetr",
            "ViT encoder over patches + conv decoder",
            UNETR,
            fixed_size=True,
            reference="Hatamizadeh et al., WACV 2022",
            paper_options=dict(UNETR_PAPER_OPTIONS),
        ),
    )
}


def get_spec(name: str) -> ModelSpec:
    """The spec of ``name``; the error lists the valid names."""
    if name not in MODELS:
        raise SegrobError(f"unknown architecture {name!r} (valid: {', '.join(MODELS)})")
    return MODELS[name]


def create_model(
    name: str, *, spatial_dims: int, in_channels: int, out_channels: int, **options: Any
) -> nn.Module:
    """Build architecture ``name`` mapping ``(N, in_channels, *spatial)`` to logits
    ``(N, out_channels, *spatial)``.

    The model carries ``arch``, ``spatial_dims``, ``in_channels``, ``out_channels``,
    ``options`` (every option, resolved, JSON-ready), ``size_multiple``, ``min_size`` and
    ``fixed_size`` (see :mod:`segrob.models.sizes`).

    Raises:
        SegrobError: unknown name (lists the valid ones), unsupported dims, bad channel counts,
            an unknown option (lists the valid ones) or an invalid option value.
    """
    spec = get_spec(name)
    if spatial_dims not in spec.dims:
        dims = " or ".join(str(d) for d in spec.dims)
        raise SegrobError(f"{name} supports spatial_dims {dims}, got {spatial_dims}")
    for label, value in (("in_channels", in_channels), ("out_channels", out_channels)):
        if not isinstance(value, int) or value < 1:
            raise SegrobError(f"{label} must be a positive integer, got {value!r}")
    valid = spec.option_names
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise SegrobError(
            f"unknown option {unknown[0]!r} for {name} (valid: {', '.join(valid)})"
        )
    try:
        model = spec.factory(
            spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels,
            **options,
        )
    except (TypeError, ValueError) as error:
        raise SegrobError(f"invalid options for {name} {options}: {error}") from error
    model.arch = name
    return model
