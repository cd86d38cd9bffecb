"""``segrob complexity``: texture distance per case, its distribution and the level."""

from __future__ import annotations

from pathlib import Path

import typer

from .output import console, emit_json, fmt, handles_errors, progress_bar, table, warn


@handles_errors
def complexity(
    data: Path = typer.Argument(..., help="Dataset folder (any supported layout)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON only."),
    cases: bool = typer.Option(False, "--cases", help="List every case's texture distance."),
) -> None:
    """Measure task complexity as LBP texture distance (Kamath et al. 2023)."""
    from segrob.data import load_dataset
    from segrob.data.complexity import measure_complexity

    dataset = load_dataset(data)
    with progress_bar("texture distance", len(dataset), quiet=as_json) as bar:
        report = measure_complexity(dataset, progress=bar)
    if as_json:
        emit_json({"data": str(data), **report.to_dict()})
        return
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
    console.print(
        f"complexity: [bold]{report.level or 'unknown'}[/] (median TD {fmt(summary['median'])}; "
        f"low >= {low}, medium {medium}..{low}, high < {medium} bits, calibrated on segrob's "
        "generator)"
    )


def register(app: typer.Typer) -> None:
    app.command("complexity")(complexity)
