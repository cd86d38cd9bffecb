"""``segrob export``: a trained run to one ONNX file, parity-gated, with segrob metadata."""

from __future__ import annotations

from pathlib import Path

import typer

from .options import (
    Device,
    Json,
    Orientation,
    Out,
    Overwrite,
    Preprocessing,
    TargetSpacing,
    fraction,
    int8_full_resolution_name,
    number,
    precision_name,
    whole_number,
)
from .output import Output, console, handles_errors, info, table, warn


@handles_errors
def export(
    run_dir: Path = typer.Argument(..., help="Run folder written by `segrob train`."),
    out: Out = ...,
    precision: str = typer.Option(
        "fp32", "--precision", parser=precision_name,
        help="fp32, fp16 (half weights and compute, float32 IO) or int8."
    ),
    opset: int = typer.Option(18, "--opset", parser=whole_number(18), help="ONNX opset (at least 18)."),
    parity_cases: int = typer.Option(8, "--parity-cases", parser=whole_number(1),
                                     help="Held-out cases for parity."),
    calibration_cases: int = typer.Option(
        16, "--calibration-cases", parser=whole_number(1), help="Training cases to calibrate INT8 on."
    ),
    min_agreement: float = typer.Option(
        None, "--min-agreement", parser=fraction(upper_open=False),
        help="Minimum argmax agreement (default .999 fp32, .995 fp16, .95 int8).",
    ),
    min_dice: float = typer.Option(
        None, "--min-dice", parser=fraction(upper_open=False),
        help="Minimum PyTorch-vs-ONNX mask Dice (default .99, .98, .90)."
    ),
    max_abs_diff: float = typer.Option(
        None, "--max-abs-diff", parser=number(0.0),
        help="Also fail when the largest logit difference exceeds this."
    ),
    int8_full_resolution: str = typer.Option(
        "auto", "--int8-full-resolution", parser=int8_full_resolution_name,
        help="int8 only: the convolutions at full resolution in int8, in float (float32), or auto: "
             "timed here, float unless all-int8 is clearly faster.",
    ),
    optimize: bool = typer.Option(
        False, "--optimize",
        help="Save onnxruntime's offline-optimised graph (extended level: portable across CPUs).",
    ),
    preprocessing: Preprocessing = None,
    target_spacing: TargetSpacing = None,
    orientation: Orientation = None,
    device: Device = "auto",
    overwrite: Overwrite = False,
    as_json: Json = False,
) -> None:
    """Export a run's best model to ONNX; fails (nothing written) when parity is too low.
    --preprocessing/--target-spacing/--orientation state what a deployment does before the model."""
    from segrob.onnx.export import ExportOptions, export_run

    options = ExportOptions(
        precision=precision, opset=opset, parity_cases=parity_cases,
        calibration_cases=calibration_cases, min_agreement=min_agreement, min_dice=min_dice,
        max_abs_diff=max_abs_diff, device=device, int8_full_resolution=int8_full_resolution,
        optimize=optimize, preprocessing=preprocessing,
        target_spacing=target_spacing, orientation=orientation, overwrite=overwrite,
    )
    output = Output(as_json=as_json)
    if not output.is_json:
        info(f"exporting {run_dir} ({precision}) ...")
    output.result(export_run(run_dir, out, options=options), _view)


def _view(result) -> None:
    from segrob.preprocessing import PreprocessingSpec

    parity = result.parity
    rows = [
        ("file", f"{result.path} ({result.size_bytes / 1024:.1f} KiB)"),
        ("architecture", f"{result.arch}, {result.spatial_dims}D, opset {result.opset}"),
        ("graph", _graph(result.metadata)),
        ("preprocessing", PreprocessingSpec.from_dict(result.metadata["preprocessing"]).describe()),
        ("input", _shape(result.input_shape)),
        ("output", _shape(result.output_shape)),
        ("dynamic", f"batch {_yes(result.dynamic_batch)}, spatial {_yes(result.dynamic_spatial)}"),
        ("parity inputs", parity.inputs),
        ("max |logit diff|", f"{parity.max_abs_diff:.3g} (mean {parity.mean_abs_diff:.3g})"),
        ("within atol/rtol", f"{parity.within_tolerance:.4f} of elements "
                             f"(atol {parity.thresholds.atol}, rtol {parity.thresholds.rtol})"),
        ("argmax agreement",
         f"{parity.argmax_agreement:.5f} (>= {parity.thresholds.min_agreement})"),
        ("mask Dice", f"{parity.mask_dice:.5f} (min case {parity.mask_dice_min:.5f}; "
                      f">= {parity.thresholds.min_dice})"),
    ]
    if "int8" in result.metadata:
        from segrob.onnx.quantize import describe_int8_choice

        rows.append(("int8", describe_int8_choice(result.metadata["int8"])))
    if parity.dice_vs_label:
        d = parity.dice_vs_label
        rows.append(("Dice vs labels", f"PyTorch {d['torch']:.4f}, ONNX {d['onnx']:.4f} "
                                       f"(change {d['change']:+.4f})"))
    rows.append(("seconds", f"{result.seconds:.1f}"))
    console.print(table(f"Exported {result.precision}", ("", "value"), rows,
                        justify_numbers=False))
    for note in result.notes:
        warn(note)
    console.print(f"[green]parity passed[/]; wrote {result.path}")


def _graph(metadata: dict) -> str:
    optimized = metadata.get("graph_optimization")
    return f"optimised offline ({optimized['level']})" if optimized else "as traced"


def _shape(shape: list) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def register(app: typer.Typer) -> None:
    app.command("export")(export)
