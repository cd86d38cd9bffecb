"""The options several commands share: one spelling, one help text and one validation each.

A command declares ``seed: Seed = 0``; the default stays with the command because it is part of
what the command means (check times one image at a time, the audit batches eight). Values are
validated here, while the command line is parsed: a bad value is a usage error (exit 2) that
names the option and the valid range, before any work starts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
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


def number(low: float, high: float | None = None, *, low_open: bool = False,
           high_open: bool = False) -> Callable[[str], float]:
    """A parser of finite numbers in a range (open or closed at each end) whose error states it."""
    shown = ("(" if low_open else "[") + f"{low:g}, " + (
        "inf)" if high is None else f"{high:g}" + (")" if high_open else "]"))

    def parse(text: str | float) -> float:
        try:
            value = float(text)
        except ValueError:
            raise typer.BadParameter(f"takes a number in {shown}, got {text!r}") from None
        above = value > low if low_open else value >= low
        below = high is None or (value < high if high_open else value <= high)
        if not (math.isfinite(value) and above and below):
            raise typer.BadParameter(f"must be in {shown}, got {value:g}")
        return value

    return parse


def fraction(*, upper_open: bool) -> Callable[[str], float]:
    """A parser of numbers in [0, 1] or [0, 1)."""
    return number(0.0, 1.0, high_open=upper_open)


def one_of(valid: Callable[[], Iterable[str]]) -> Callable[[str], str]:
    """A parser of one name among ``valid()`` (read from the library's registry when used)."""

    def parse(text: str) -> str:
        names = tuple(valid())
        if text not in names:
            raise typer.BadParameter(f"must be one of {', '.join(names)}; got {text!r}")
        return text

    return parse


def names_of(valid: Callable[[], Iterable[str]]) -> Callable[[str], str]:
    """A parser of comma-separated names, each among ``valid()``; returns the text."""

    def parse(text: str) -> str:
        names = tuple(valid())
        given = [part.strip() for part in text.split(",") if part.strip()]
        unknown = [part for part in given if part not in names]
        if unknown or not given:
            shown = repr(unknown[0]) if unknown else "nothing"
            raise typer.BadParameter(f"takes names among {', '.join(names)}; got {shown}")
        return text

    return parse


def whole_numbers(minimum: int, *, multiple_of: int = 1, by_x: bool = False) -> Callable[[str], str]:
    """A parser of comma-separated integers >= ``minimum`` (and multiples of ``multiple_of``);
    ``by_x``: sizes may also be written 64x64. Returns the text."""
    rule = f"integers >= {minimum}" + (f" that are multiples of {multiple_of}" if multiple_of > 1 else "")

    def parse(text: str) -> str:
        parts = [part.strip() for part in (text.replace("x", ",") if by_x else text).split(",")
                 if part.strip()]
        try:
            values = [int(part) for part in parts]
        except ValueError:
            raise typer.BadParameter(f"takes comma-separated {rule}, got {text!r}") from None
        if not values or any(v < minimum or v % multiple_of for v in values):
            raise typer.BadParameter(f"takes comma-separated {rule}, got {text!r}")
        return text

    return parse


def complexity_level(text: str) -> str:
    from segrob.data.blend import COMPLEXITY_LEVELS

    return one_of(lambda: COMPLEXITY_LEVELS)(text)


def complexity_levels(text: str) -> str:
    from segrob.data.blend import COMPLEXITY_LEVELS

    return names_of(lambda: COMPLEXITY_LEVELS)(text)


def architectures(text: str) -> str:
    from segrob.models.registry import MODELS

    return names_of(lambda: MODELS)(text)


def suite_name(text: str) -> str:
    """A registered suite, or a .toml/.json file (whose content is checked when it is read)."""
    from segrob.perturb.suites import SUITES

    if text in SUITES or Path(text).suffix.lower() in (".toml", ".json"):
        return text
    raise typer.BadParameter(f"must be one of {', '.join(SUITES)} or a .toml/.json suite file; got {text!r}")


def suite_or_none(text: str) -> str:
    """A suite as for ``--suite``, or '' for none."""
    return suite_name(text) if text else text


def audit_data(text: str) -> str:
    """``synth:LEVEL`` with a known level, or a folder (checked when it is opened)."""
    from segrob.audit.data_source import SYNTH_PREFIX
    from segrob.data.blend import COMPLEXITY_LEVELS

    level = text[len(SYNTH_PREFIX):] if text.startswith(SYNTH_PREFIX) else None
    if level is not None and level not in COMPLEXITY_LEVELS:
        raise typer.BadParameter(f"synth: takes a level among {', '.join(COMPLEXITY_LEVELS)}; got {level!r}")
    return text


def bounds(text: str) -> str:
    """``--fail-under``: every bound a finite number in its metric's range; returns the text."""
    from segrob.audit.gates import parse_bounds
    from segrob.errors import UsageError

    try:
        parse_bounds(text)
    except UsageError as error:
        raise typer.BadParameter(str(error).removeprefix("--fail-under: ")) from None
    return text


def normalization_method(text: str) -> str:
    from segrob.data.normalize import NORMALIZATIONS

    return one_of(lambda: NORMALIZATIONS)(text)


def synth_format(text: str) -> str:
    from segrob.data.synth import FORMATS

    return one_of(lambda: FORMATS)(text)


def texture_families(text: str) -> str:
    from segrob.data.textures import TEXTURE_FAMILIES

    return names_of(lambda: TEXTURE_FAMILIES)(text)


def min_max(text: str) -> str:
    """``MIN,MAX``: two finite numbers, the first not above the second (ranges: the library's)."""
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"takes MIN,MAX, e.g. 0.08,0.3; got {text!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and low <= high):
        raise typer.BadParameter(f"takes finite MIN <= MAX, got {text!r}")
    return text


def priority_name(text: str) -> str:
    from segrob.recommend import PRIORITY_WEIGHTS

    return one_of(lambda: PRIORITY_WEIGHTS)(text)


def perturbation_name(text: str) -> str:
    from segrob.perturb.registry import PERTURBATIONS

    return one_of(lambda: PERTURBATIONS)(text)


def architecture(text: str) -> str:
    from segrob.models.registry import MODELS

    return one_of(lambda: MODELS)(text)


def precision_name(text: str) -> str:
    from segrob.onnx.parity import PRECISIONS

    return one_of(lambda: PRECISIONS)(text)


def int8_full_resolution_name(text: str) -> str:
    from segrob.onnx.quantize import FULL_RESOLUTION_CHOICES

    return one_of(lambda: FULL_RESOLUTION_CHOICES)(text)


def key_value(text: str) -> str:
    if not text.partition("=")[1] or not text.partition("=")[0].strip():
        raise typer.BadParameter(f"takes KEY=VALUE, got {text!r}")
    return text


def second_metric(text: str) -> str:
    from segrob.metrics.table import METRIC_BY_NAME

    if text not in METRIC_BY_NAME or text == "dice":
        others = ", ".join(name for name in METRIC_BY_NAME if name != "dice")
        raise typer.BadParameter(f"must be one of {others}; got {text!r}")
    return text


def device(text: str) -> str:
    return one_of(lambda: DEVICES)(text)


Data = Annotated[Path, typer.Option(
    "--data", metavar="DIR", help="Dataset folder: images/ + labels/, nnU-Net v2 raw, or MSD.",
)]
AuditData = Annotated[str, typer.Option(
    "--data", metavar="DIR|synth:LEVEL", parser=audit_data,
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
    "--suite", metavar="NAME|FILE", parser=suite_name,
    help="A perturbation suite: a name from `segrob suites`, or a .toml/.json suite file.",
)]
Archs = Annotated[str, typer.Option(
    "--archs", metavar="A,B", parser=architectures,
    help="Architectures, comma-separated (see `segrob models`).",
)]
Complexity = Annotated[str, typer.Option(
    "--complexity", "-c", metavar="LEVEL", parser=complexity_level,
    help="Task complexity: low, medium or high.",
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
AllowOutside = Annotated[bool, typer.Option(
    "--allow-outside",
    help="Read case files that resolve outside the dataset folder (links, ../ or absolute paths).",
)]
Preprocessing = Annotated[Path, typer.Option(
    "--preprocessing", metavar="SPEC",
    help="What the model expects before its first layer: a .toml/.json spec (see the README).",
)]
TargetSpacing = Annotated[str, typer.Option(
    "--target-spacing", metavar="MM,MM,MM",
    help="The spacing the model takes (mm per array axis, e.g. 1,1,3); replaces the spec's.",
)]
Orientation = Annotated[str, typer.Option(
    "--orientation", metavar="as-stored|ras", help="The axis order the model takes (ras: NIfTI only).",
)]
