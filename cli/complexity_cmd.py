"""``segrob complexity``: texture distance per case, its distribution and the level."""

from __future__ import annotations

import typer

from .legacy import accepting, positional_data
from .options import AllowOutside, Data, Json
from .output import Output, console, fmt, handles_errors, table, warn


@handles_errors
def complexity(
    data: Data = ...,
    as_json: Json = False,
    cases: bool = typer.Option(False, "--cases", help="List every case's texture distance."),
    allow_outside: AllowOutside = False,
    resize: int = typer.Option(
        None, "--resize", metavar="256",
        help="Resize every image (3D: slice) to 256 x 256 before the LBP, as the authors' code does: "
             "only then does the texture distance equal theirs (default: the images' own size)."),
) -> None:
    """Measure task complexity as LBP texture distance (Kamath et al. 2023)."""
    from segrob.data import load_dataset
    from segrob.data.complexity import measure_complexity, thresholds_for
    from segrob.errors import SegrobError, UsageError

    try:
        thresholds_for(resize)
    except SegrobError as error:
        raise UsageError(str(error)) from None
    dataset = load_dataset(data, allow_outside=allow_outside)
    output = Output(as_json=as_json)
    with output.progress("texture distance", len(dataset)) as bar:
        report = measure_complexity(dataset, progress=bar, resize=resize)
    output.result({"data": str(data), **report.to_dict()}, lambda _: _view(report, cases))


def _view(report, cases: bool) -> None:
    summary = report.summary
    console.print(
        table(
            f"Texture distance (bits) over {summary['n'] or 0} cases",
            ("mean", "std", "min", "p5", "median", "p95", "max"),
            [tuple(summary[k] for k in ("mean", "std", "min", "p5", "median", "p95", "max"))],
        )
    )
    if cases:
        console.print(
            table(
                "Cases",
                ("case", "texture distance", "foreground ratio", "level"),
                [(c.name, c.texture_distance, c.foreground_ratio, c.level or "–") for c in report.cases],
            )
        )
    counts = {level: sum(c.level == level for c in report.cases) for level in ("low", "medium", "high")}
    low, medium = report.thresholds["low"], report.thresholds["medium"]
    console.print(
        f"cases per level: low {counts['low']}, medium {counts['medium']}, high {counts['high']}"
        + (f", skipped (no foreground or background) {report.skipped}" if report.skipped else "")
    )
    for message in report.warnings:
        warn(message)
    measured = f"resized to {report.resize} px" if report.resize else "at the images' own size"
    console.print(
        f"complexity: [bold]{report.level or 'unknown'}[/] (median TD {fmt(summary['median'])}, "
        f"measured {measured}; low >= {low}, medium {medium}..{low}, high < {medium} bits, "
        "calibrated on segrob's generator for this setting)"
    )


def register(app: typer.Typer) -> None:
    app.command("complexity", cls=accepting(positional_data))(complexity)
