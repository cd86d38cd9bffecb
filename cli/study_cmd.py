"""``segrob study skip`` and ``segrob study context``: the seed papers' studies, resumable."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import typer

from .legacy import accepting
from .options import (
    Archs,
    Device,
    Epochs,
    Json,
    Out,
    Size,
    TestCases,
    TrainCases,
    complexity_levels,
    one_of,
    suite_or_none,
    whole_numbers,
)
from .output import Output, console, fmt, handles_errors, info, table
from .ray_option import RayAddress, ray_address

study_app = typer.Typer(help="Reproduce the skip-connection and context/FBR studies.", no_args_is_help=True)


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _ints(text: str, option: str) -> tuple[int, ...]:
    from segrob.errors import UsageError

    try:
        return tuple(int(part) for part in _names(text))
    except ValueError:
        raise UsageError(f"{option} takes comma-separated integers, got {text!r}") from None


def skip_table(result: dict):
    rows = [
        (row["level"], row["arch"], _pm(row, "in_domain"), *(_pm(row, key) for key in SHIFT_KEYS),
         _pm(row, "shift_rr"))
        for row in result["table"]
    ]
    protocol = result.get("protocol", "segrob")
    capacity = result.get("capacity", "matched")
    return table(
        f"Skip study ({protocol} protocol, {capacity} capacity): mean Dice on unseen test cases "
        "(mean ± sd over seeds)",
        ("complexity", "architecture", "in-domain", "easier (blur 3)", "easiest (blur 7)",
         "harder (speckle .1)", "hardest (speckle .3)", "shift rR"),
        rows,
    )


SHIFT_KEYS = ("easier", "easiest", "harder", "hardest")


def matrix_table(result: dict):
    levels = list(result["config"]["levels"])
    rows = [(row["arch"], row["train"], *(fmt(row[level]) for level in levels))
            for row in result.get("matrix", [])]
    return table("Out-of-domain: clean Dice, trained at one level, tested at each",
                 ("architecture", "trained at", *(f"tested at {level}" for level in levels)), rows)


def _pm(row: dict, key: str) -> str:
    value, spread = row.get(key), row.get(f"{key}_std")
    if value is None:
        return "–"
    return f"{value:.3f}" + (f" ± {spread:.3f}" if spread is not None else "")


@study_app.command("skip", cls=accepting(ray_address))
@handles_errors
def skip(
    out: Out = ...,
    levels: str = typer.Option("low,medium,high", "--levels", parser=complexity_levels,
                               help="Complexity levels."),
    archs: Archs = "unet,noskip,attention,gated",
    seeds: str = typer.Option("0", "--seeds", parser=whole_numbers(0), help="Training seeds, e.g. 0,1,2."),
    n_train: TrainCases = None,
    n_test: TestCases = None,
    size: Size = None,
    epochs: Epochs = None,
    shift_suite: str = typer.Option("shift", "--shift-suite", parser=suite_or_none,
                                    help="Extra suite to audit ('' for none)."),
    protocol: str = typer.Option(
        "segrob", "--protocol", metavar="segrob|paper", parser=one_of(lambda: ("segrob", "paper")),
        help="segrob: 60 training cases, 64 px, 20 epochs, a texture pair and mask per case; paper: "
             "Kamath et al.'s (80 cases, 256 px, 100 epochs, batch 8, one texture pair, one mask set, "
             "the out-of-domain matrix). Given values override either."),
    capacity: str = typer.Option(
        None, "--capacity", metavar="matched|paper", parser=one_of(lambda: ("matched", "paper")),
        help="matched: every architecture at segrob's widths; paper: attention at 3.3x the U-Net's "
             "parameters, as in the paper (default: the protocol's)."),
    device: Device = "auto",
    as_json: Json = False,
    ray: RayAddress = None,
) -> None:
    """Train, export and audit each architecture at each complexity level (Kamath et al. 2023).

    --out is the study folder, reused: finished steps are skipped; --json prints study.json.
    """
    from segrob.studies.skip import SkipStudyConfig, run_skip_study

    config = SkipStudyConfig.build(
        protocol, out=out, levels=_names(levels), archs=_names(archs), seeds=_ints(seeds, "--seeds"),
        n_train=n_train, n_test=n_test, size=size, epochs=epochs, shift_suite=shift_suite or None,
        capacity=capacity, device=device,
    )
    with _cells(ray) as engine:
        result = run_skip_study(config, notify=info, engine=engine)
    Output(as_json=as_json).result(result, lambda result: _skip_view(result, out))


@contextmanager
def _cells(address: str | None):
    """None: the study runs here; else its cells run as Ray tasks (``--ray [ADDRESS]``)."""
    if address is None:
        yield None
        return
    from segrob.ray_engine import RayCells, connect

    with connect(address) as ray:
        yield RayCells(ray)


def _skip_view(result: dict, out: Path) -> None:
    console.print(skip_table(result))
    if result.get("matrix"):
        console.print(matrix_table(result))
    console.print(f"every number: {out / 'study.json'}; audits: {out / 'audits'}")


@study_app.command("context", cls=accepting(ray_address))
@handles_errors
def context(
    out: Out = ...,
    patches: str = typer.Option("32,48,64", "--patches", parser=whole_numbers(16, multiple_of=16),
                                help="Training patch sizes (multiples of 16, at most --size)."),
    archs: Archs = "unet,attention,unetr",
    seeds: str = typer.Option("0", "--seeds", parser=whole_numbers(0), help="Training seeds, e.g. 0,1,2."),
    n_train: TrainCases = 16,
    n_test: TestCases = 8,
    size: Size = 64,
    epochs: Epochs = 10,
    device: Device = "auto",
    as_json: Json = False,
    ray: RayAddress = None,
) -> None:
    """Patch size (context) vs foreground ratio in 3D (Kamath et al. 2022).

    --out is the study folder, reused: finished steps are skipped; --json prints study.json.
    """
    from segrob.errors import UsageError
    from segrob.studies.context import ContextStudyConfig, run_context_study

    if max(_ints(patches, "--patches")) > size:
        raise UsageError(f"--patches must be at most --size ({size}), got {patches!r}")

    config = ContextStudyConfig(
        out=out, patches=_ints(patches, "--patches"), archs=_names(archs), seeds=_ints(seeds, "--seeds"),
        n_train=n_train, n_test=n_test, size=size, epochs=epochs, device=device,
    )
    with _cells(ray) as engine:
        result = run_context_study(config, notify=info, engine=engine)
    Output(as_json=as_json).result(result, lambda result: _context_view(result, out))


def _context_view(result: dict, out: Path) -> None:
    rows = [
        (row["patch"], row["arch"], fmt(row["dice_same_fbr"]), fmt(row["dice_smaller_fbr"]),
         fmt(row["dice_larger_fbr"]), _fbr(row["train_fbr_p5_p95"]))
        for row in result["table"]
    ]
    console.print(table(
        "Context study: Dice on unseen volumes",
        ("patch", "architecture", "same foreground share", "smaller share", "larger share",
         "training FBR p5-p95"),
        rows,
    ))
    console.print(f"every number: {out / 'study.json'}")


def _fbr(span: list | None) -> str:
    if not span or span[0] is None:
        return "–"
    return f"{span[0]:.3f}-{span[1]:.3f}"


def register(app: typer.Typer) -> None:
    app.add_typer(study_app, name="study")
