"""``segrob report``: re-render a saved audit, or compare several side by side."""

from __future__ import annotations

from pathlib import Path

import typer

from .output import emit_json, handles_errors


@handles_errors
def report(
    reports: list[Path] = typer.Argument(..., help="One or more audit reports (JSON)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON only."),
) -> None:
    """Show a saved audit report, or compare reports of the same suite and data."""
    from segrob.audit.compare import compare_reports
    from segrob.report import load_report

    from .render_audit import render_comparison, render_gates, render_report

    loaded = [load_report(path) for path in reports]
    if len(loaded) == 1:
        if as_json:
            emit_json(loaded[0].to_dict())
            return
        render_report(loaded[0])
        render_gates(loaded[0].gates)
        return
    comparison = compare_reports(loaded, [str(p) for p in reports])
    if as_json:
        emit_json(comparison.to_dict())
        return
    render_comparison(comparison)


def register(app: typer.Typer) -> None:
    app.command("report")(report)
