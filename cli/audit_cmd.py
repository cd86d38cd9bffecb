"""``segrob audit``: the robustness benchmark of a deployed ONNX model."""

from __future__ import annotations

from pathlib import Path

import typer

from .output import console, handles_errors, info, progress_bar


@handles_errors
def audit(
    model: Path = typer.Argument(..., help="The ONNX model to audit."),
    data: str = typer.Option(
        ..., "--data", help="Dataset folder, or synth:low|medium|high for fresh synthetic cases."
    ),
    suite: str = typer.Option("shift", "--suite", help="Suite name (see `segrob suites`) or a suite file."),
    n: int = typer.Option(None, "--n", help="Audit only the first N cases (synthetic: make N, default 20)."),
    size: int = typer.Option(None, "--size", help="Synthetic case size (default 128 in 2D, 64 in 3D)."),
    json_out: str = typer.Option(None, "--json", help="Write the full report to FILE, or '-' for stdout."),
    fail_under: str = typer.Option(
        None, "--fail-under", help="Gate, e.g. dice=0.8,rr=0.9: exit 1 when a row falls under a bound."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda (cuda never falls back)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Images (or windows) per onnxruntime call."),
    window: str = typer.Option(None, "--window", help="Sliding window size, e.g. 96,96,96."),
    overlap: float = typer.Option(0.5, "--overlap", help="Sliding window overlap in [0, 1)."),
    seed: int = typer.Option(0, "--seed", help="Audit seed: every perturbation draw derives from it."),
    skip_bad: bool = typer.Option(
        False, "--skip-bad", help="Skip unreadable cases (listed) instead of failing."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted audit (needs --json FILE)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --json report."),
    nsd_tolerance: float = typer.Option(1.0, "--nsd-tolerance", help="NSD tolerance in mm."),
    failure_dice: float = typer.Option(
        0.5, "--failure-dice", help="Dice under which a case counts as failed."
    ),
    in_channels: int = typer.Option(None, "--in-channels", help="For models without segrob metadata."),
    spatial_dims: int = typer.Option(None, "--spatial-dims", help="For models without segrob metadata."),
    normalization: str = typer.Option(
        None, "--normalization", help="zscore, robust-minmax or none (for models without metadata)."
    ),
    threads: int = typer.Option(None, "--threads", help="onnxruntime intra-op threads."),
) -> None:
    """Audit an ONNX model under a perturbation suite: tables, a JSON report and a CI gate."""
    from segrob.audit import AuditOptions, parse_bounds
    from segrob.audit import audit as run_audit
    from segrob.audit.data_source import resolve_audit_data
    from segrob.errors import SegrobError, UsageError
    from segrob.io_utils import check_output_file
    from segrob.onnx.metadata import check_metadata
    from segrob.onnx.session import read_metadata
    from segrob.perturb.suites import resolve_suite
    from segrob.report import is_report_file, report_json, save_report

    from .render_audit import render_gates, render_report

    bounds = parse_bounds(fail_under)
    resolve_suite(suite)  # a bad suite name or file fails before any work starts
    if resume and (json_out is None or json_out == "-"):
        raise UsageError("--resume needs --json FILE (the partial results live beside it)")
    if not 0.0 <= overlap < 1.0:
        raise UsageError(f"--overlap must be in [0, 1), got {overlap}")
    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch_size}")
    if not model.is_file():
        raise SegrobError(f"{model}: model file not found")
    if json_out and json_out != "-":
        check_output_file(json_out, overwrite=overwrite, inputs=(model, data), is_ours=is_report_file)
    dims = spatial_dims or int(check_metadata(read_metadata(model), model).get("spatial_dims") or 2)
    cases = resolve_audit_data(data, n=n, size=size, spatial_dims=dims, seed=seed)
    overrides = {
        k: v
        for k, v in (("in_channels", in_channels), ("spatial_dims", spatial_dims),
                     ("normalization", normalization))
        if v is not None
    }
    options = AuditOptions(
        suite=suite,
        seed=seed,
        device=device,
        batch_size=batch_size,
        window=_window(window),
        overlap=overlap,
        nsd_tolerance_mm=nsd_tolerance,
        failure_dice=failure_dice,
        bounds=bounds,
        skip_bad=skip_bad,
        partial_path=Path(json_out + ".partial.jsonl") if json_out and json_out != "-" else None,
        resume=resume,
        threads=threads,
        overrides=overrides,
    )
    to_stdout = json_out == "-"
    with progress_bar("audit", None) as bar:
        report = run_audit(model, cases, options, progress=lambda done, total, name: bar(done, total, name))
    if to_stdout:
        typer.echo(report_json(report), nl=False)
    else:
        render_report(report)
        if json_out:
            save_report(report, json_out, overwrite=overwrite, inputs=(model, data))
            info(f"report written to {json_out}")
        render_gates(report.gates)
    if report.gates and not report.gates["passed"]:
        raise typer.Exit(1)
    if not to_stdout and not report.gates:
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
    app.command("audit")(audit)
