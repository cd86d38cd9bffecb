"""``segrob recommend``: which architecture to deploy, from the papers and the user's own audits."""

from __future__ import annotations

from pathlib import Path

import typer

from .options import AllowOutside, Archs, Complexity, Data, Dims, Json, priority_name
from .output import Output, console, fmt, handles_errors, table


@handles_errors
def recommend(
    files: list[Path] | None = typer.Argument(
        None, metavar="REPORT.json", help="Audit reports to rank (with --reports)."
    ),
    reports: bool = typer.Option(
        False, "--reports", help="Rank the audit reports given as arguments (e.g. audits/*.json)."
    ),
    complexity: Complexity = None,
    data: Data = None,
    dims: Dims = None,
    priority: str = typer.Option(
        "robustness", "--priority", parser=priority_name, help="robustness (default) or accuracy."
    ),
    archs: Archs = None,
    as_json: Json = False,
    allow_outside: AllowOutside = False,
) -> None:
    """Rank architectures with reasons and citations; your own audits outweigh the papers.

    --data measures the dataset's complexity (and dimensionality) first; without --dims, the
    dimensionality comes from --data or the reports, else 2.
    """
    from segrob.errors import UsageError
    from segrob.recommend import recommend as run_recommend
    from segrob.report import load_report

    if files and not reports:
        raise UsageError(
            f"unexpected argument {files[0]}; to rank audit reports write: "
            "segrob recommend --reports FILE..."
        )
    loaded = [load_report(path) for path in files or []] if reports else None
    names = [a.strip() for a in archs.split(",") if a.strip()] if archs else None
    output = Output(as_json=as_json)
    with output.progress("texture distance", None, quiet=data is None) as bar:
        result = run_recommend(
            complexity=complexity, dims=dims, priority=priority, reports=loaded,
            report_paths=[str(p) for p in files or []], data=data, archs=names, progress=bar,
            allow_outside=allow_outside,
        )
    output.result(result, render)


def render(result) -> None:
    """Tables for people: the user's models (if any), the published ranking, notes, verdict."""
    from rich.markup import escape

    if result.models:
        console.print(table(
            f"Your audited models (suite {result.suite}) - measured, these outweigh the papers",
            ("#", "model", "arch", "clean Dice", "rR", "mean Dice", "weighted degr.",
             "failure rate", "score", "published expectation"),
            [(m.rank, escape(m.label), m.arch or "–", m.clean_dice, m.relative_robustness,
              m.mean_dice, m.weighted_degradation, m.failure_rate, m.score, _expected(m.expected))
             for m in result.models],
        ))
        for comparison in result.comparisons:
            console.print("pairwise (paired bootstrap over the shared cases, BCa 95%): "
                          f"{escape(comparison.statement())}")
    level = result.complexity or "unknown"
    if result.complexity_source == "measured":
        level += " (measured)"
    weights = result.weights
    console.print(table(
        f"Published evidence: {level} complexity, {result.dims}D, priority {result.priority}",
        ("#", "architecture", "score", "why", "expected in-domain", "expected out of domain",
         "evidence"),
        [(r.rank, r.arch, _score(r), escape(r.why), r.expectation.in_domain_shown,
          _out_of_domain(r.expectation), escape(r.expectation.evidence_line() or "–"))
         for r in result.ranking],
        caption=f"score = {weights['in_domain']} x in-domain Dice + {weights['retention']} x "
        "retention (out-of-domain / in-domain Dice); ranked after: evidence only in the other "
        "dimensionality, then none",
    ))
    if result.measured_data:
        measured = result.measured_data
        console.print(
            f"complexity of {escape(measured['path'])}: [bold]{measured['level']}[/] (median texture "
            f"distance {fmt(measured['median_texture_distance'])} bits; low >= "
            f"{measured['thresholds']['low']}, high < {measured['thresholds']['medium']})"
        )
    for note in result.notes:
        console.print(f"note: {escape(note)}")
    for citation in sorted({item["citation"] for item in result.evidence}):
        console.print(f"source: {escape(citation)}", style="dim")
    console.print(f"[bold]verdict:[/] {escape(result.verdict)}")


def _score(ranked) -> str:
    return fmt(ranked.score)


def _out_of_domain(expectation) -> str:
    if expectation.retention is None:
        return "–"
    return f"keeps {expectation.retention:.3f}"


def _expected(expectation) -> str:
    if expectation is None:
        return "architecture not in the published evidence"
    if expectation.coverage == "none":
        return "no published evidence"
    text = f"in-domain {expectation.in_domain_shown}, keeps {fmt(expectation.retention)}"
    return text + (f" ({expectation.dims}D evidence)" if expectation.coverage == "other-dims" else "")


def register(app: typer.Typer) -> None:
    app.command("recommend")(recommend)
