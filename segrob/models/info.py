"""What ``segrob models`` shows: each architecture with its size at the default options."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from segrob.models.registry import MODELS, create_model
from segrob.models.sizes import size_rule


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@dataclass
class ModelInfo:
    """One registry entry, measured at the default options (1 input channel, 2 classes)."""

    name: str
    description: str
    dims: list[int]
    fixed_size: bool
    exportable: bool
    reference: str
    params: dict[str, int] = field(default_factory=dict)
    sizes: dict[str, str] = field(default_factory=dict)
    default_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    paper_options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "dims": list(self.dims),
            "fixed_size": self.fixed_size,
            "exportable": self.exportable,
            "reference": self.reference,
            "params": dict(self.params),
            "input_sizes": dict(self.sizes),
            "default_options": {k: dict(v) for k, v in self.default_options.items()},
            "paper_options": dict(self.paper_options),
        }


def list_models(*, in_channels: int = 1, out_channels: int = 2) -> list[ModelInfo]:
    """Every registered architecture with its parameter count per dimensionality."""
    infos = []
    for name, spec in MODELS.items():
        info = ModelInfo(
            name=name,
            description=spec.description,
            dims=list(spec.dims),
            fixed_size=spec.fixed_size,
            exportable=spec.exportable,
            reference=spec.reference,
            paper_options=dict(spec.paper_options),
        )
        for dims in spec.dims:
            model = create_model(
                name, spatial_dims=dims, in_channels=in_channels, out_channels=out_channels
            )
            key = f"{dims}d"
            info.params[key] = count_parameters(model)
            info.sizes[key] = size_rule(model)
            info.default_options[key] = dict(model.options)
        infos.append(info)
    return infos
