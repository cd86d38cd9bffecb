"""``segrob audit``: the robustness benchmark of a deployed ONNX model."""

from __future__ import annotations

from pathlib import Path

import typer

from .legacy import accepting, json_report_file
from .options import (
    AuditData,
    BatchSize,
    Cases,
    Device,
    Html,
    Json,
    Junit,
    Markdown,
    Out,
    Overwrite,
    SecondMetric,
    Seed,
    Size,
    Suite,
    Threads,
    fraction,
    whole_number,
)
from .output import Output, console, handles_errors, info
from .pages import check_outputs, pages_from, write_and_tell


@handles_errors
def audit(
    model: Path = typer.Argument(..., help="The ONNX model to audit."),
    data: AuditData = ...,
    suite: Suite = "shift",
    n: Cases = None,
    size: Size = None,
    out: Out = None,
    as_json: Json = False,
    fail_under: str = typer.Option(
        None, "--fail-under", help="Gate, e.g. dice=0.8,rr=0.9: exit 1 when a row falls under a bound."
    ),
    device: Device = "auto",
    batch_size: BatchSize = 8,
    window: str = typer.Option(None, "--window", help="Sliding window size, e.g. 96,96,96."),
    inference: str = typer.Option(
        "window", "--inference",
        help="window (patch-trained 3D models in windows of their patch) or whole (one pass per "
        "volume, fully convolutional models; memory grows with the volume)."),
    overlap: float = typer.Option(
        0.5, "--overlap", parser=fraction(upper_open=True), help="Sliding window overlap in [0, 1)."
    ),
    seed: Seed = 0,
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Skip (and list) unreadable cases, not fail."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted audit (needs --out FILE)."),
    overwrite: Overwrite = False,
    nsd_tolerance: float = typer.Option(1.0, "--nsd-tolerance", help="NSD tolerance in mm."),
    failure_dice: float = typer.Option(0.5, "--failure-dice", help="Dice under which a case has failed."),
    in_channels: int = typer.Option(None, "--in-channels", help="For models without segrob metadata."),
    spatial_dims: int = typer.Option(None, "--spatial-dims", help="For models without segrob metadata."),
    normalization: str = typer.Option(None, "--normalization", help="zscore, robust-minmax or none (ditto)."),
    threads: Threads = None,
    html: Html = None,
    markdown: Markdown = None,
    junit: Junit = None,
    metric: SecondMetric = None,
    examples: int = typer.Option(
        None, "--examples", metavar="K", parser=whole_number(0),
        help="Keep the K worst cells for the HTML gallery, beside the --out report (default 8 with --html).",
    ),
) -> None:
    """Audit an ONNX model under a perturbation suite: tables, a JSON report, pages and a CI gate."""
    from segrob.audit import AuditOptions, parse_bounds
    from segrob.audit import audit as run_audit
    from segrob.audit.data_source import resolve_audit_data
    from segrob.errors import UsageError
    from segrob.perturb.suites import resolve_suite
    from segrob.report import report_json, save_report

    bounds = parse_bounds(fail_under)
    resolve_suite(suite)  # a bad suite name or file fails before any work starts
    if resume and out is None:
        raise UsageError("--resume needs --out FILE (the partial results live beside it)")
    metadata = _metadata(model)  # a missing or broken model fails before any data is read
    pages = pages_from(html, markdown, junit, metric)
    check_outputs(out, pages, overwrite=overwrite, inputs=(model, data))
    dims = spatial_dims or int(metadata.get("spatial_dims") or 2)
    cases = resolve_audit_data(data, n=n, size=size, spatial_dims=dims, seed=seed)
    given = {"in_channels": in_channels, "spatial_dims": spatial_dims, "normalization": normalization}
    overrides = {key: value for key, value in given.items() if value is not None}
    options = AuditOptions(
        suite=suite, seed=seed, device=device, batch_size=batch_size, window=_window(window),
        inference=inference, overlap=overlap, nsd_tolerance_mm=nsd_tolerance, failure_dice=failure_dice,
        bounds=bounds,
        skip_bad=skip_bad, partial_path=Path(f"{out}.partial.jsonl") if out else None,
        resume=resume, threads=threads, overrides=overrides,
        examples=examples if examples is not None else (8 if html else 0),
    )
    output = Output(as_json=as_json)
    with output.progress("audit", None) as bar:
        report = run_audit(model, cases, options, progress=lambda done, total, name: bar(done, total, name))
    if out is not None:
        save_report(report, out, overwrite=overwrite, inputs=(model, data))
        info(f"report written to {out}")
    write_and_tell([report], [model.stem], pages, overwrite=overwrite, inputs=(model, data))
    output.result(report, _view, serialize=report_json)
    if report.gates and not report.gates["passed"]:
        raise typer.Exit(1)


def _metadata(model: Path) -> dict:
    from segrob.errors import SegrobError
    from segrob.onnx.metadata import check_metadata
    from segrob.onnx.session import read_metadata

    if not model.is_file():
        raise SegrobError(f"{model}: model file not found")
    return check_metadata(read_metadata(model), model)


def _view(report) -> None:
    from .render_audit import render_gates, render_report

    render_report(report)
    render_gates(report.gates)
    if not report.gates:
        console.print("[dim]tip: --fail-under dice=0.8,rr=0.9 turns this audit into a CI gate[/]")


def _window(text: str | None) -> tuple[int, ...] | None:
    from segrob.errors import UsageError

    if not text:
        return None
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"--window takes sizes like 96,96,96; got {text!r}") from None
    if any(v < 1 for v in values):
        raise UsageError(f"--window sizes must be positive, got {text!r}")
    return values


def register(app: typer.Typer) -> None:
    app.command("audit", cls=accepting(json_report_file))(audit)
