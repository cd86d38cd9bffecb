"""``segrob data synth`` and ``segrob data info``."""

from __future__ import annotations

from pathlib import Path

import typer

from .legacy import accepting, positional_data
from .options import (
    AllowOutside,
    Cases,
    Complexity,
    Data,
    Dims,
    Json,
    Out,
    Overwrite,
    Seed,
    Size,
    fraction,
    min_max,
    synth_format,
    texture_families,
)
from .output import Output, console, fmt, handles_errors, table

data_app = typer.Typer(help="Generate synthetic datasets and inspect any dataset.", no_args_is_help=True)


@data_app.command("synth")
@handles_errors
def synth(
    out: Out = ...,
    dims: Dims = 2,
    complexity: Complexity = None,
    blend: float = typer.Option(
        None, "--blend", parser=fraction(upper_open=True),
        help="Explicit blend in [0, 1): share of background texture in the foreground.",
    ),
    n: Cases = 100,
    size: Size = 128,
    seed: Seed = 0,
    families: str = typer.Option(
        None, "--families", parser=texture_families,
        help="Comma-separated texture families (default: all for the dims).",
    ),
    fg_fraction: str = typer.Option(
        "0.08,0.3", "--fg-fraction", parser=min_max,
        help="Foreground share of each case as MIN,MAX (0 < MIN <= MAX < 0.9).",
    ),
    fmt_name: str = typer.Option(
        None, "--format", parser=synth_format, help="tiff (2D default), nifti (3D default) or npy."
    ),
    overwrite: Overwrite = False,
    as_json: Json = False,
) -> None:
    """Write a synthetic, complexity-graded dataset (images/ + labels/ + segrob.json).

    Without --complexity or --blend the level is medium; --json prints the dataset's segrob.json.
    """
    from segrob.data.blend import blend_for
    from segrob.data.synth import SynthConfig, write_synthetic
    from segrob.errors import SegrobError, UsageError
    from segrob.io_utils import atomic_output_dir

    if complexity is not None and blend is not None:
        raise UsageError("give --complexity or --blend, not both")
    blend_value, level = blend_for(complexity, blend)
    try:
        config = SynthConfig(
            dims=dims, n=n, size=size, blend=blend_value, level=level, seed=seed,
            families=tuple(f.strip() for f in families.split(",")) if families else (),
            fg_fraction=_pair(fg_fraction, "--fg-fraction"),
            fmt=fmt_name or ("tiff" if dims == 2 else "nifti"),
        ).check()
    except SegrobError as error:  # every setting is an option: a bad one is a usage error
        raise UsageError(str(error)) from None
    output = Output(as_json=as_json)
    with atomic_output_dir(out, overwrite=overwrite) as staging, output.progress("synth", config.n) as bar:
        metadata = write_synthetic(config, staging, progress=lambda done, _total: bar(done))
    output.result(metadata, lambda written: _synth_view(written, config, out))


def _synth_view(metadata: dict, config, out: Path) -> None:
    level = config.level
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


@data_app.command("info", cls=accepting(positional_data))
@handles_errors
def info(
    data: Data = ...,
    as_json: Json = False,
    cases: bool = typer.Option(False, "--cases", help="List every case."),
    allow_outside: AllowOutside = False,
) -> None:
    """Summarise a dataset: cases, shapes, spacing, label values, foreground ratio."""
    from segrob.data import load_dataset
    from segrob.data.info import describe_dataset

    dataset = load_dataset(data, allow_outside=allow_outside)
    output = Output(as_json=as_json)
    with output.progress("reading", len(dataset)) as bar:
        summary = describe_dataset(dataset, progress=bar)
    output.result(summary, lambda described: _info_view(described, cases))


def _info_view(summary, cases: bool) -> None:
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
