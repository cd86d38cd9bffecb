"""The options several commands share: one spelling, one help text and one validation each.

A command declares ``seed: Seed = 0``; the default stays with the command because it is part of
what the command means (check times one image at a time, the audit batches eight). Values are
validated here, while the command line is parsed: a bad value is a usage error (exit 2) that
names the option and the valid range, before any work starts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

DEVICES = ("auto", "cpu", "cuda")
SYNTH_SIZES = (16, 1024)


def whole_number(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """A parser of integers in ``[minimum, maximum]`` whose error states the range."""

    def parse(text: str | int) -> int:
        try:
            value = int(text)
        except ValueError:
            raise typer.BadParameter(f"takes a whole number, got {text!r}") from None
        if maximum is None and value < minimum:
            raise typer.BadParameter(f"must be at least {minimum}, got {value}")
        if maximum is not None and not minimum <= value <= maximum:
            raise typer.BadParameter(f"must be between {minimum} and {maximum}, got {value}")
        return value

    return parse


def fraction(*, upper_open: bool) -> Callable[[str], float]:
    """A parser of numbers in [0, 1] or [0, 1)."""
    bounds = "[0, 1)" if upper_open else "[0, 1]"

    def parse(text: str | float) -> float:
        try:
            value = float(text)
        except ValueError:
            raise typer.BadParameter(f"takes a number in {bounds}, got {text!r}") from None
        if not (0.0 <= value < 1.0 if upper_open else 0.0 <= value <= 1.0):
            raise typer.BadParameter(f"must be in {bounds}, got {value:g}")
        return value

    return parse


def second_metric(text: str) -> str:
    from segrob.metrics.table import METRIC_BY_NAME

    if text not in METRIC_BY_NAME or text == "dice":
        others = ", ".join(name for name in METRIC_BY_NAME if name != "dice")
        raise typer.BadParameter(f"must be one of {others}; got {text!r}")
    return text


def device(text: str) -> str:
    if text not in DEVICES:
        raise typer.BadParameter(f"must be one of {', '.join(DEVICES)}; got {text!r}")
    return text


Data = Annotated[Path, typer.Option(
    "--data", metavar="DIR", help="Dataset folder: images/ + labels/, nnU-Net v2 raw, or MSD.",
)]
AuditData = Annotated[str, typer.Option(
    "--data", metavar="DIR|synth:LEVEL",
    help="Dataset folder, or synth:low|medium|high to audit on fresh synthetic cases.",
)]
Out = Annotated[Path, typer.Option(
    "--out", "-o", metavar="PATH",
    help="What the command writes: its output folder, or the .onnx (export) or report (audit) file.",
)]
Json = Annotated[bool, typer.Option(
    "--json", help="Print the result as JSON on stdout and nothing else there.",
)]
Overwrite = Annotated[bool, typer.Option(
    "--overwrite", help="Replace what segrob wrote before at an output path (never an input or your files).",
)]
Device = Annotated[str, typer.Option(
    "--device", metavar="auto|cpu|cuda", parser=device,
    help="auto: CUDA when usable, else CPU; cuda fails rather than fall back to the CPU.",
)]
Seed = Annotated[int, typer.Option(
    "--seed", metavar="SEED", parser=whole_number(0),
    help="Random seed (>= 0): the same seed gives the same result.",
)]
BatchSize = Annotated[int, typer.Option(
    "--batch-size", metavar="N", parser=whole_number(1),
    help="Images (patches in 3D training, windows in a sliding-window audit) per batch.",
)]
Threads = Annotated[int, typer.Option(
    "--threads", metavar="N", parser=whole_number(1),
    help="CPU threads for torch or onnxruntime (default: the library's choice, one per core).",
)]
Cases = Annotated[int, typer.Option(
    "--n", metavar="N", parser=whole_number(1),
    help="Number of cases: how many to make, or how many of a dataset's first cases to use.",
)]
Size = Annotated[int, typer.Option(
    "--size", metavar="PX", parser=whole_number(*SYNTH_SIZES),
    help=f"Edge length of synthetic images and volumes ({SYNTH_SIZES[0]}-{SYNTH_SIZES[1]}).",
)]
Epochs = Annotated[int, typer.Option(
    "--epochs", metavar="N", parser=whole_number(1), help="Training epochs per model.",
)]
TrainCases = Annotated[int, typer.Option(
    "--n-train", metavar="N", parser=whole_number(1), help="Synthetic training cases per setting.",
)]
TestCases = Annotated[int, typer.Option(
    "--n-test", metavar="N", parser=whole_number(1), help="Unseen synthetic test cases per setting.",
)]
Suite = Annotated[str, typer.Option(
    "--suite", metavar="NAME|FILE",
    help="A perturbation suite: a name from `segrob suites`, or a .toml/.json suite file.",
)]
Archs = Annotated[str, typer.Option(
    "--archs", metavar="A,B", help="Architectures, comma-separated (see `segrob models`).",
)]
Complexity = Annotated[str, typer.Option(
    "--complexity", "-c", metavar="LEVEL", help="Task complexity: low, medium or high.",
)]
Dims = Annotated[int, typer.Option(
    "--dims", metavar="2|3", parser=whole_number(2, 3), help="Spatial dimensions: 2 or 3.",
)]
Html = Annotated[Path, typer.Option(
    "--html", metavar="FILE", help="Write a self-contained HTML report (opens offline, prints).",
)]
Markdown = Annotated[Path, typer.Option(
    "--markdown", metavar="FILE", help="Write a compact markdown summary (for a CI job page).",
)]
Junit = Annotated[Path, typer.Option(
    "--junit", metavar="FILE", help="Write JUnit XML: each --fail-under bound is a test case.",
)]
SecondMetric = Annotated[str, typer.Option(
    "--metric", metavar="NAME", parser=second_metric,
    help="The HTML report's second metric against severity, beside Dice (default nsd).",
)]
