"""``segrob report``: re-render a saved audit, or compare several side by side."""

from __future__ import annotations

from pathlib import Path

import typer

from .options import Html, Json, Junit, Markdown, SecondMetric
from .output import Output, handles_errors
from .pages import pages_from, write_and_tell


@handles_errors
def report(
    reports: list[Path] = typer.Argument(..., help="One or more audit reports (JSON)."),
    as_json: Json = False,
    html: Html = None,
    markdown: Markdown = None,
    junit: Junit = None,
    metric: SecondMetric = None,
) -> None:
    """Show a saved audit report, or compare reports of the same suite and data; write pages."""
    from segrob.audit.compare import compare_reports, model_label
    from segrob.report import load_report

    from .render_audit import render_comparison

    loaded = [load_report(path) for path in reports]
    if len(loaded) > 1:
        comparison = compare_reports(loaded, [str(p) for p in reports])  # refuses unlike reports first
    write_and_tell(loaded, [model_label(r, p) for r, p in zip(loaded, reports, strict=True)],
                   pages_from(html, markdown, junit, metric))
    output = Output(as_json=as_json)
    if len(loaded) == 1:
        output.result(loaded[0], _single)
    else:
        output.result(comparison, render_comparison)


def _single(report) -> None:
    from .render_audit import render_gates, render_report

    render_report(report)
    render_gates(report.gates)


def register(app: typer.Typer) -> None:
    app.command("report")(report)
