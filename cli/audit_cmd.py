"""``segrob audit``: the robustness benchmark of a deployed ONNX model."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import typer

from .legacy import accepting, json_report_file
from .options import (
    AllowOutside,
    AuditData,
    BatchSize,
    Cases,
    Device,
    Html,
    Json,
    Junit,
    Markdown,
    Orientation,
    Out,
    Overwrite,
    Preprocessing,
    SecondMetric,
    Seed,
    Size,
    Suite,
    TargetSpacing,
    Threads,
    bounds,
    fraction,
    normalization_method,
    number,
    one_of,
    whole_number,
    whole_numbers,
)
from .output import Output, console, handles_errors, info, warn
from .pages import check_outputs, pages_from, write_and_tell
from .ray_option import RayAddress, ray_address


@handles_errors
def audit(
    models: list[Path] = typer.Argument(..., help="The ONNX model(s); with several, --out is a folder."),
    data: AuditData = ...,
    suite: Suite = "shift",
    n: Cases = None,
    size: Size = None,
    out: Out = None,
    as_json: Json = False,
    fail_under: str = typer.Option(
        None, "--fail-under", parser=bounds,
        help="Gate, e.g. dice=0.8,rr=0.9 (Dice-like metrics in [0, 1], rr >= 0): exit 1 when a row "
        "falls under a bound.",
    ),
    device: Device = "auto",
    batch_size: BatchSize = 8,
    window: str = typer.Option(None, "--window", parser=whole_numbers(1),
                               help="Sliding window size, e.g. 96,96,96."),
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
    nsd_tolerance: float = typer.Option(1.0, "--nsd-tolerance", parser=number(0.0, low_open=True),
                                        help="NSD tolerance in mm (> 0)."),
    nsd_definition: str = typer.Option(
        "voxel", "--nsd-definition", metavar="voxel|area", parser=one_of(lambda: ("voxel", "area")),
        help="voxel: each surface voxel counts once (MONAI's default); area: surface elements weighted "
        "by area (DeepMind's, as the Decathlon and TotalSegmentator report).",
    ),
    empty_policy: str = typer.Option(
        "segrob", "--empty-policy", metavar="segrob|nnunet", parser=one_of(lambda: ("segrob", "nnunet")),
        help="segrob: both masks empty scores 1 (HD95 0); nnunet: NaN, left out of the means, as nnU-Net.",
    ),
    failure_dice: float = typer.Option(0.5, "--failure-dice", parser=fraction(upper_open=False),
                                       help="Dice in [0, 1] under which a case has failed."),
    in_channels: int = typer.Option(None, "--in-channels", parser=whole_number(1),
                                    help="For models without segrob metadata."),
    spatial_dims: int = typer.Option(None, "--spatial-dims", parser=whole_number(2, 3),
                                     help="For models without segrob metadata."),
    normalization: str = typer.Option(None, "--normalization", parser=normalization_method,
                                      help="Old name of --intensity."),
    preprocessing: Preprocessing = None,
    intensity: str = typer.Option(
        None, "--intensity", help="zscore, fixed, ct-window, percentile, robust-minmax or none."
    ),
    window_level: float = typer.Option(None, "--window-level", help="CT window centre (HU)."),
    window_width: float = typer.Option(None, "--window-width", help="CT window width (HU)."),
    target_spacing: TargetSpacing = None,
    orientation: Orientation = None,
    output_name: str = typer.Option(None, "--output", metavar="NAME|INDEX",
                                    help="The graph output to score (default: the first at full size)."),
    activation: str = typer.Option(None, "--activation", metavar="softmax|sigmoid|none",
                                   help="What turns the output into probabilities (none: it already is)."),
    size_multiple: int = typer.Option(None, "--size-multiple", metavar="N", parser=whole_number(1),
                                      help="Sizes the model takes are multiples of N (default: probed)."),
    threshold: float = typer.Option(None, "--threshold", parser=fraction(upper_open=False),
                                    help="Foreground probability threshold of a one-channel output (0.5)."),
    label_map: str = typer.Option(None, "--label-map", metavar="3=1,4=0",
                                  help="Map label values to model classes before scoring."),
    threads: Threads = None,
    html: Html = None,
    markdown: Markdown = None,
    junit: Junit = None,
    metric: SecondMetric = None,
    examples: int = typer.Option(
        None, "--examples", metavar="K", parser=whole_number(0),
        help="Keep the K worst cells for the HTML gallery, beside the --out report (default 8 with --html).",
    ),
    ray: RayAddress = None,
    allow_outside: AllowOutside = False,
) -> None:
    """Audit ONNX models under a perturbation suite: tables, a JSON report, pages and a CI gate."""
    from segrob.audit import AuditOptions, parse_bounds
    from segrob.errors import UsageError
    from segrob.perturb.suites import resolve_suite
    from segrob.preprocessing import spec_from_options

    bounds = parse_bounds(fail_under)
    resolve_suite(suite)  # a bad suite name or file fails before any work starts
    if resume and out is None:
        raise UsageError("--resume needs --out FILE (the partial results live beside it)")
    metadata = {model: _metadata(model) for model in models}  # a broken model fails before any work
    targets = _report_paths(models, out)
    preps = {model: spec_from_options(preprocessing, intensity=intensity or normalization,
                                      window_level=window_level, window_width=window_width,
                                      target_spacing=target_spacing, orientation=orientation,
                                      model=metadata[model]) for model in models}
    pages = pages_from(html, markdown, junit, metric)
    for target in targets:
        check_outputs(target, pages, overwrite=overwrite, inputs=(*models, data))
    overrides = _overrides(in_channels=in_channels, spatial_dims=spatial_dims, normalization=normalization,
                           output=output_name, activation=activation, size_multiple=size_multiple,
                           threshold=threshold, label_map=label_map)
    options = AuditOptions(
        suite=suite, seed=seed, device=device, batch_size=batch_size, window=_window(window),
        inference=inference, overlap=overlap, nsd_tolerance_mm=nsd_tolerance, nsd_definition=nsd_definition,
        empty_policy=empty_policy, failure_dice=failure_dice, bounds=bounds,
        skip_bad=skip_bad, resume=resume, threads=threads, overrides=overrides,
        examples=examples if examples is not None else (8 if html else 0),
    )
    output = Output(as_json=as_json)
    reports = _run_audits(models, metadata, targets, data, options, ray=ray, n=n, size=size,
                          overwrite=overwrite, output=output, allow_outside=allow_outside, preps=preps)
    write_and_tell(reports, [m.stem for m in models], pages, overwrite=overwrite, inputs=(*models, data))
    _show(output, reports)
    if any(report.gates and not report.gates["passed"] for report in reports):
        raise typer.Exit(1)


def _report_paths(models: list[Path], out: Path | None) -> list[Path | None]:
    """One model: ``--out`` is its report. Several: ``--out`` is a folder of ``<model stem>.json``."""
    from segrob.errors import UsageError

    if len(models) == 1 or out is None:
        return [out] * len(models)
    stems = [model.stem for model in models]
    repeated = sorted({stem for stem in stems if stems.count(stem) > 1})
    if repeated:
        raise UsageError(f"several models named {repeated[0]}: their reports would share "
                         f"{out / (repeated[0] + '.json')}")
    if out.suffix == ".json" or out.is_file():
        raise UsageError(f"--out {out}: with several models, --out is a folder (one <model>.json each)")
    return [out / f"{stem}.json" for stem in stems]


def _run_audits(models, metadata, targets, data, options, *, ray, n, size, overwrite, output,
                allow_outside=False, preps=None) -> list:
    """Each model's audit, in turn: here, or sharded over Ray (one connection for all)."""
    from contextlib import nullcontext
    from dataclasses import replace

    from segrob.audit import audit as run_audit
    from segrob.audit.data_source import resolve_audit_data
    from segrob.report import save_report

    reports = []
    with _ray_engine(ray) if ray else nullcontext() as engine:
        for model, target in zip(models, targets, strict=True):
            dims = options.overrides.get("spatial_dims") or int(metadata[model].get("spatial_dims") or 2)
            cases = resolve_audit_data(data, n=n, size=size, spatial_dims=dims, seed=options.seed,
                                       allow_outside=allow_outside)
            partial = Path(f"{target}.partial.jsonl") if target else None
            with output.progress(f"audit {model.stem}", None) as bar:
                chosen = replace(options, partial_path=partial, preprocessing=(preps or {}).get(model))
                report = run_audit(model, cases, chosen,
                                   progress=lambda done, total, name: bar(done, total, name), engine=engine)
            _warn_labels(report)
            if target is not None:
                target.parent.mkdir(parents=True, exist_ok=True)
                save_report(report, target, overwrite=overwrite, inputs=(*models, data))
                info(f"report written to {target}")
            reports.append(report)
    return reports


@contextmanager
def _ray_engine(address: str):
    from segrob.ray_engine import RayAudit, connect

    with connect(address) as ray:
        yield RayAudit(ray)


def _show(output, reports: list) -> None:
    """One report as it is; several as tables in turn, or a JSON list."""
    from segrob.report import report_json

    if len(reports) == 1:
        output.result(reports[0], _view, serialize=report_json)
    else:
        output.result(reports, _views,
                      serialize=lambda all_: f"[{','.join(report_json(r).strip() for r in all_)}]\n")


def _views(reports: list) -> None:
    for report in reports:
        _view(report)


def _overrides(**given) -> dict:
    """What the user says about a model its graph and metadata cannot tell (unset ones left out)."""
    from segrob.audit.labels import parse_label_map

    mapping = parse_label_map(given["label_map"])
    # String keys, as JSON has them: resuming compares the settings read back from the partial file.
    given["label_map"] = {str(k): v for k, v in mapping.items()} if mapping else None
    return {key: value for key, value in given.items() if value is not None}


def _warn_labels(report) -> None:
    for line in (report.settings.get("labels") or {}).get("warnings", []):
        warn(line)


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
    app.command("audit", cls=accepting(json_report_file, ray_address))(audit)
