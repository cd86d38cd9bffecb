"""``segrob data synth`` and ``segrob data info``."""

from __future__ import annotations

from pathlib import Path

import typer

from .output import console, emit_json, fmt, handles_errors, progress_bar, table

data_app = typer.Typer(help="Generate synthetic datasets and inspect any dataset.", no_args_is_help=True)


@data_app.command("synth")
@handles_errors
def synth(
    out: Path = typer.Option(..., "--out", help="Output folder (created; must be empty)."),
    dims: int = typer.Option(2, "--dims", help="2 (images) or 3 (volumes)."),
    complexity: str = typer.Option(
        None, "--complexity", help="Named level: low, medium or high (default medium)."
    ),
    blend: float = typer.Option(
        None, "--blend", help="Explicit blend in [0, 1): share of background texture in the foreground."
    ),
    n: int = typer.Option(100, "--n", help="Number of cases."),
    size: int = typer.Option(128, "--size", help="Edge length in pixels/voxels."),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed writes the same bytes."),
    families: str = typer.Option(
        None, "--families", help="Comma-separated texture families (default: all for the dims)."
    ),
    fg_fraction: str = typer.Option(
        "0.08,0.3", "--fg-fraction", help="Foreground share of each case as MIN,MAX."
    ),
    fmt_name: str = typer.Option(
        None, "--format", help="tiff (2D default), nifti (3D default) or npy."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty --out."),
    as_json: bool = typer.Option(False, "--json", help="Print the dataset's segrob.json on stdout."),
) -> None:
    """Write a synthetic, complexity-graded dataset (images/ + labels/ + segrob.json)."""
    from segrob.data.blend import blend_for
    from segrob.data.synth import SynthConfig, write_synthetic
    from segrob.errors import UsageError
    from segrob.io_utils import atomic_output_dir

    if complexity is not None and blend is not None:
        raise UsageError("give --complexity or --blend, not both")
    blend_value, level = blend_for(complexity, blend)
    config = SynthConfig(
        dims=dims,
        n=n,
        size=size,
        blend=blend_value,
        level=level,
        seed=seed,
        families=tuple(f.strip() for f in families.split(",")) if families else (),
        fg_fraction=_pair(fg_fraction, "--fg-fraction"),
        fmt=fmt_name or ("tiff" if dims == 2 else "nifti"),
    ).check()
    with atomic_output_dir(out, overwrite=overwrite) as staging, progress_bar(
        "synth", config.n, quiet=as_json
    ) as bar:
        metadata = write_synthetic(config, staging, progress=lambda done, _total: bar(done))
    if as_json:
        emit_json(metadata)
        return
    console.print(
        f"wrote {config.n} {config.dims}D cases ({config.size}^{config.dims}, blend {config.blend}"
        f"{', level ' + level if level else ''}, {config.fmt}) to {out}"
    )
    ratio = metadata["foreground_ratio"]
    console.print(
        f"texture families: {', '.join(config.families)}; foreground ratio "
        f"{ratio['min']:.3f}-{ratio['max']:.3f} (mean {ratio['mean']:.3f})"
    )


def _pair(text: str, option: str) -> tuple[float, float]:
    from segrob.errors import UsageError

    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"{option} takes MIN,MAX, e.g. 0.08,0.3; got {text!r}") from None
    return low, high


@data_app.command("info")
@handles_errors
def info(
    data: Path = typer.Argument(..., help="Dataset folder (images/+labels/, nnU-Net raw, or MSD)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON only."),
    cases: bool = typer.Option(False, "--cases", help="List every case."),
) -> None:
    """Summarise a dataset: cases, shapes, spacing, label values, foreground ratio."""
    from segrob.data import load_dataset
    from segrob.data.info import describe_dataset

    dataset = load_dataset(data)
    with progress_bar("reading", len(dataset), quiet=as_json) as bar:
        summary = describe_dataset(dataset, progress=bar)
    if as_json:
        emit_json(summary.to_dict())
        return
    rows = [
        ("folder", summary.root),
        ("layout", summary.layout),
        ("cases", summary.n_cases),
        ("spatial dims", ", ".join(map(str, summary.spatial_dims))),
        ("channels", ", ".join(map(str, summary.channels))),
        ("shape", _span(summary.shapes)),
        ("spacing (mm)", _span(summary.spacing)),
        ("label values", ", ".join(map(str, summary.label_values)) or "–"),
        (
            "foreground ratio",
            f"mean {fmt(summary.foreground_ratio['mean'])} "
            f"(min {fmt(summary.foreground_ratio['min'])}, max {fmt(summary.foreground_ratio['max'])})",
        ),
        ("intensity", f"{fmt(summary.intensity['min'])} .. {fmt(summary.intensity['max'])}"),
    ]
    synthetic = summary.synthetic
    if synthetic:
        rows.append(
            (
                "generator",
                f"{synthetic.get('generator')} (seed {synthetic.get('seed')}, "
                f"blend {synthetic.get('blend')}, level {synthetic.get('level') or '–'})",
            )
        )
    console.print(table("Dataset", ("property", "value"), rows, justify_numbers=False))
    if cases:
        console.print(
            table(
                "Cases",
                ("case", "shape", "spacing", "foreground ratio"),
                [
                    (c["name"], "x".join(map(str, c["shape"])), " x ".join(map(str, c["spacing"])),
                     c["foreground_ratio"])
                    for c in summary.cases
                ],
            )
        )


def _span(values: dict[str, list]) -> str:
    if not values:
        return "mixed dimensionality"
    low = " x ".join(fmt(v) for v in values["min"])
    high = " x ".join(fmt(v) for v in values["max"])
    return low if low == high else f"{low} .. {high}"


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
