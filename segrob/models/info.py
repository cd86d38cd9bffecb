"""What ``segrob models`` shows: each architecture with its size at the default options."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from segrob.models.registry import MODELS, ModelSpec, create_model
from segrob.models.sizes import size_rule


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@dataclass
class ModelInfo:
    """One registry entry, measured at the default options (1 input channel, 2 classes)."""

    spec: ModelSpec
    params: dict[str, int] = field(default_factory=dict)
    sizes: dict[str, str] = field(default_factory=dict)
    default_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def description(self) -> str:
        return self.spec.description

    @property
    def dims(self) -> tuple[int, ...]:
        return self.spec.dims

    @property
    def fixed_size(self) -> bool:
        return self.spec.fixed_size

    @property
    def exportable(self) -> bool:
        return self.spec.exportable

    def to_dict(self) -> dict[str, Any]:
        """The spec's own description plus what was measured on built models."""
        return {
            **self.spec.to_dict(),
            "params": dict(self.params),
            "input_sizes": dict(self.sizes),
            "default_options": {k: dict(v) for k, v in self.default_options.items()},
        }


def list_models(*, in_channels: int = 1, out_channels: int = 2) -> list[ModelInfo]:
    """Every registered architecture with its parameter count per dimensionality."""
    infos = []
    for name, spec in MODELS.items():
        info = ModelInfo(spec)
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
