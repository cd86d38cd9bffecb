"""``segrob check``: deployment checks of an ONNX model, as a table or JSON."""

from __future__ import annotations

from pathlib import Path

import typer

from .options import BatchSize, Device, Json, Preprocessing, Threads, whole_number
from .output import Output, console, handles_errors, table, to_json

STATUS_STYLE = {"pass": "[green]pass[/]", "warn": "[yellow]warn[/]", "fail": "[red]fail[/]",
                "skip": "[dim]skip[/]"}


@handles_errors
def check(
    model: Path = typer.Argument(..., help="The ONNX model to check."),
    device: Device = "auto",
    runs: int = typer.Option(20, "--runs", parser=whole_number(1),
                             help="Timed runs for the latency percentiles (>= 1)."),
    batch_size: BatchSize = 1,
    threads: Threads = None,
    run: Path = typer.Option(
        None, "--run", help="The training run folder: also time its checkpoint in torch eager "
        "beside this file on the same input."),
    as_json: Json = False,
    preprocessing: Preprocessing = None,
) -> None:
    """Check an ONNX model for deployment: validity, metadata, shapes, provider, speed,
    determinism. Exit 1 when a check fails. --preprocessing SPEC shows that spec as the audit
    would apply it, instead of the model's."""
    from segrob.onnx.checks import check_model_file
    from segrob.preprocessing import load_preprocessing, stated_preprocessing

    given = load_preprocessing(preprocessing) if preprocessing is not None else None
    report = check_model_file(model, device=device, runs=runs, batch_size=batch_size,
                              threads=threads, run=run)
    prep = stated_preprocessing(report.metadata, given)
    Output(as_json=as_json).result(report, lambda r: _render(r, prep),
                                   serialize=lambda r: to_json({**r.to_dict(), "preprocessing": prep}))
    if not report.passed:
        raise typer.Exit(1)


def _render(report, prep: dict) -> None:
    rows = [(item.name, STATUS_STYLE.get(item.status, item.status), item.detail)
            for item in report.items]
    opsets = ", ".join(v if d == "ai.onnx" else f"{d} {v}" for d, v in
                       ((d, str(v)) for d, v in report.opsets.items()))
    title = f"{report.path} ({report.size_bytes / 1024:.1f} KiB, opset {opsets})"
    console.print(table(title, ("check", "status", "detail"), rows, justify_numbers=False))
    if report.shapes:
        console.print(table(
            "Input shapes tried",
            ("shape", "runs", "expected", "output / error"),
            [("x".join(map(str, p.shape)), p.ok,
              "–" if p.expected is None else p.expected,
              "x".join(map(str, p.output_shape)) if p.ok else p.error)
             for p in report.shapes],
            justify_numbers=False,
        ))
    missing = report.metadata.get("missing") or []
    if report.metadata.get("segrob") and missing:
        console.print(f"missing segrob metadata: {', '.join(missing)}")
    console.print(f"preprocessing: {prep['text']}")
    verdict = "[green]passed[/]" if report.passed else "[red]failed[/]"
    console.print(f"deployment checks {verdict}")


def register(app: typer.Typer) -> None:
    app.command("check")(check)
