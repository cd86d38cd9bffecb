"""``segrob report``: re-render a saved audit, or compare several side by side."""

from __future__ import annotations

from pathlib import Path

import typer

from .options import Json
from .output import Output, handles_errors


@handles_errors
def report(
    reports: list[Path] = typer.Argument(..., help="One or more audit reports (JSON)."),
    as_json: Json = False,
) -> None:
    """Show a saved audit report, or compare reports of the same suite and data."""
    from segrob.audit.compare import compare_reports
    from segrob.report import load_report

    from .render_audit import render_comparison

    loaded = [load_report(path) for path in reports]
    output = Output(as_json=as_json)
    if len(loaded) == 1:
        output.result(loaded[0], _single)
    else:
        output.result(compare_reports(loaded, [str(p) for p in reports]), render_comparison)


def _single(report) -> None:
    from .render_audit import render_gates, render_report

    render_report(report)
    render_gates(report.gates)


def register(app: typer.Typer) -> None:
    app.command("report")(report)
