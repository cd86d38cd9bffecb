"""``segrob demo``: the whole loop on built-in defaults."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from .options import Device, Epochs, Json, Out, Size, TrainCases
from .output import Output, console, handles_errors, info, table


@handles_errors
def demo(
    out: Out = Path("segrob-demo"),
    epochs: Epochs = 20,
    size: Size = 64,
    n_train: TrainCases = 48,
    device: Device = "auto",
    as_json: Json = False,
) -> None:
    """Generate data, train U-Net variants, export, audit and recommend, in a few minutes.

    Everything lands in --out, and rerunning reuses what is there.
    """
    from segrob.studies.demo import DemoConfig, run_demo

    started = time.perf_counter()
    result = run_demo(DemoConfig(out=out, epochs=epochs, size=size, n_train=n_train, device=device),
                      notify=info)
    Output(as_json=as_json).result(result, lambda shown: _view(shown, out, started))


def _view(result: dict, out: Path, started: float) -> None:
    from .render_audit import render_comparison
    from .study_cmd import skip_table

    console.rule("1. task complexity of the generated data")
    console.print(table(
        None, ("generated as", "measured level", "median texture distance (bits)"),
        [(level, c["measured_level"], c["median_td"]) for level, c in result["complexity"].items()],
    ))
    for level, c in result["complexity"].items():
        for message in c["warnings"]:
            console.print(f"[yellow]{level}:[/] {message}")
    console.rule("2. trained, exported and audited (the skip study at demo size)")
    console.print(skip_table(result["study"]))
    console.rule("3. the high-complexity models side by side (texture suite)")
    from segrob.audit.compare import compare_reports
    from segrob.report import load_report

    paths = result["report_paths"]
    render_comparison(compare_reports([load_report(p) for p in paths], paths))
    console.rule("4. recommendation")
    from .recommend_cmd import render

    render(result["recommendation"])
    console.print(f"[dim]everything is in {out}/ ({time.perf_counter() - started:.0f} s)[/]")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
