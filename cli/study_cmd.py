"""``segrob study skip`` and ``segrob study context``: the seed papers' studies, resumable."""

from __future__ import annotations

from pathlib import Path

import typer

from .output import console, emit_json, fmt, handles_errors, info, table

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
        (row["level"], row["arch"], _pm(row, "in_domain"), _pm(row, "easier"), _pm(row, "harder"),
         _pm(row, "shift_rr"))
        for row in result["table"]
    ]
    return table(
        "Skip study: mean Dice on unseen test cases (mean ± sd over seeds)",
        ("complexity", "architecture", "in-domain", "easier (bg blur)", "harder (speckle)", "shift rR"),
        rows,
    )


def _pm(row: dict, key: str) -> str:
    value, spread = row.get(key), row.get(f"{key}_std")
    if value is None:
        return "–"
    return f"{value:.3f}" + (f" ± {spread:.3f}" if spread is not None else "")


@study_app.command("skip")
@handles_errors
def skip(
    out: Path = typer.Option(..., "--out", help="Study folder (reused: finished steps are skipped)."),
    levels: str = typer.Option("low,medium,high", "--levels", help="Complexity levels."),
    archs: str = typer.Option("unet,noskip,attention,gated", "--archs", help="Architectures."),
    seeds: str = typer.Option("0", "--seeds", help="Training seeds, e.g. 0,1,2."),
    n_train: int = typer.Option(60, "--n-train", help="Training cases per level."),
    n_test: int = typer.Option(20, "--n-test", help="Unseen test cases per level."),
    size: int = typer.Option(64, "--size", help="Image size."),
    epochs: int = typer.Option(20, "--epochs", help="Training epochs per model."),
    shift_suite: str = typer.Option("shift", "--shift-suite", help="Extra suite to audit ('' for none)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda (training)."),
    as_json: bool = typer.Option(False, "--json", help="Print study.json on stdout."),
) -> None:
    """Train, export and audit each architecture at each complexity level (Kamath et al. 2023)."""
    from segrob.studies.skip import SkipStudyConfig, run_skip_study

    config = SkipStudyConfig(
        out=out, levels=_names(levels), archs=_names(archs), seeds=_ints(seeds, "--seeds"),
        n_train=n_train, n_test=n_test, size=size, epochs=epochs, shift_suite=shift_suite or None,
        device=device,
    )
    result = run_skip_study(config, notify=info)
    if as_json:
        emit_json(result)
        return
    console.print(skip_table(result))
    console.print(f"every number: {out / 'study.json'}; audits: {out / 'audits'}")


@study_app.command("context")
@handles_errors
def context(
    out: Path = typer.Option(..., "--out", help="Study folder (reused: finished steps are skipped)."),
    patches: str = typer.Option("32,48,64", "--patches", help="Training patch sizes (multiples of 16)."),
    archs: str = typer.Option("unet,attention,unetr", "--archs", help="Architectures."),
    seeds: str = typer.Option("0", "--seeds", help="Training seeds."),
    n_train: int = typer.Option(16, "--n-train", help="Training volumes."),
    n_test: int = typer.Option(8, "--n-test", help="Test volumes per foreground setting."),
    size: int = typer.Option(64, "--size", help="Volume edge length."),
    epochs: int = typer.Option(10, "--epochs", help="Training epochs per model."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda (training)."),
    as_json: bool = typer.Option(False, "--json", help="Print study.json on stdout."),
) -> None:
    """Patch size (context) vs foreground ratio in 3D (Kamath et al. 2022)."""
    from segrob.studies.context import ContextStudyConfig, run_context_study

    config = ContextStudyConfig(
        out=out, patches=_ints(patches, "--patches"), archs=_names(archs), seeds=_ints(seeds, "--seeds"),
        n_train=n_train, n_test=n_test, size=size, epochs=epochs, device=device,
    )
    result = run_context_study(config, notify=info)
    if as_json:
        emit_json(result)
        return
    rows = [
        (row["patch"], row["arch"], fmt(row["dice_same_fbr"]), fmt(row["dice_shifted_fbr"]),
         _fbr(row["train_fbr_p5_p95"]))
        for row in result["table"]
    ]
    console.print(table(
        "Context study: Dice on unseen volumes",
        ("patch", "architecture", "same foreground share", "shifted foreground share", "training FBR p5-p95"),
        rows,
    ))
    console.print(f"every number: {out / 'study.json'}")


def _fbr(span: list | None) -> str:
    if not span or span[0] is None:
        return "–"
    return f"{span[0]:.3f}-{span[1]:.3f}"


def register(app: typer.Typer) -> None:
    app.add_typer(study_app, name="study")
