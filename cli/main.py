"""Entry point of the ``segrob`` command.

Each command lives in its own module with a ``register(app)`` function; heavy libraries
(torch, onnxruntime, scipy) are imported inside the commands so that ``--help`` is instant.
"""

from __future__ import annotations

import importlib

import typer
from typer import rich_utils

from segrob import __version__

from .output import set_debug, usage_error_line

# Typer's boxed usage-error panel becomes one line; a bad option exits 2 with its name and range.
rich_utils.rich_format_error = usage_error_line

COMMAND_MODULES = (
    "data_cmd",
    "complexity_cmd",
    "export_cmd",
    "check_cmd",
    "models_cmd",
    "train_cmd",
    "perturb_cmd",
    "audit_cmd",
    "report_cmd",
    "study_cmd",
    "recommend_cmd",
    "demo_cmd",
)

app = typer.Typer(
    name="segrob",
    help="Robustness of medical image segmentation models: data, training, ONNX export, "
    "perturbation audits and architecture advice.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"segrob {__version__}")
        raise typer.Exit(0)


@app.callback()
def root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """segrob: which segmentation architecture to deploy, and how it breaks under shift."""
    set_debug(debug)


for _name in COMMAND_MODULES:
    importlib.import_module(f"{__package__}.{_name}").register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
