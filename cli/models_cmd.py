"""``segrob models``: the architecture registry."""

from __future__ import annotations

import typer

from .options import Json
from .output import Output, console, handles_errors, table


@handles_errors
def models(
    as_json: Json = False,
) -> None:
    """List the architectures: dims, fixed input size, ONNX export, parameters at default size."""
    from segrob.models import list_models

    Output(as_json=as_json).result(list_models(), _view)


def _view(infos) -> None:
    rows = [
        (
            info.name,
            info.description,
            ", ".join(f"{d}D" for d in info.dims),
            "yes (img_size)" if info.fixed_size else "no",
            info.exportable,
            " / ".join(f"{info.params[k] / 1e6:.2f}M" for k in sorted(info.params)),
        )
        for info in infos
    ]
    console.print(
        table(
            "Architectures",
            ("name", "what it is", "dims", "fixed size", "ONNX", "params 2D / 3D"),
            rows,
            caption="params for 1 input channel and 2 classes at the default (CPU-sized) options",
            justify_numbers=False,
        )
    )


def register(app: typer.Typer) -> None:
    app.command("models")(models)
