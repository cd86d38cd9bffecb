"""``segrob train``: train an architecture on a dataset into a run folder."""

from __future__ import annotations

import json
from typing import Any

import typer

from .options import (
    AllowOutside,
    BatchSize,
    Data,
    Device,
    Epochs,
    Json,
    Out,
    Overwrite,
    Seed,
    Threads,
    architecture,
    fraction,
    key_value,
    normalization_method,
    number,
    whole_number,
    whole_numbers,
)
from .output import Output, console, fmt, handles_errors, info, progress_bar, table


@handles_errors
def train(
    out: Out = ...,
    arch: str = typer.Option(
        None, "--arch", parser=architecture, help="Architecture (see `segrob models`; default unet)."
    ),
    data: Data = None,
    epochs: Epochs = None,
    lr: float = typer.Option(None, "--lr", parser=number(0.0, low_open=True),
                             help="Peak AdamW learning rate (> 0, default 3e-3)."),
    batch_size: BatchSize = None,
    seed: Seed = None,
    val_fraction: float = typer.Option(
        None, "--val-fraction", parser=fraction(upper_open=True),
        help="Share of cases held out for validation (default 0.2)."
    ),
    patch: str = typer.Option(
        None, "--patch", parser=whole_numbers(1, by_x=True),
        help="Train on patches: N or N,N[,N] (default: whole 2D images, 64^3 in 3D).",
    ),
    pos_ratio: float = typer.Option(
        None, "--pos-ratio", parser=fraction(upper_open=False),
        help="Share of patches centred on a foreground voxel (default 0.5)."
    ),
    samples_per_epoch: int = typer.Option(
        None, "--samples-per-epoch", parser=whole_number(1),
        help="Samples per epoch (default: the training cases, x2 for patches).",
    ),
    channels: str = typer.Option(None, "--channels", parser=whole_numbers(1, by_x=True),
                                 help="U-Net widths, e.g. 16,32,64,128."),
    option: list[str] = typer.Option(
        None, "--option", parser=key_value,
        help="Model option KEY=VALUE (JSON value), repeatable; e.g. hidden_size=768.",
    ),
    paper_size: bool = typer.Option(False, "--paper-size", help="Use the paper's model size."),
    norm: str = typer.Option(
        None, "--normalization", parser=normalization_method,
        help="Intensity normalisation: zscore (default), robust-minmax, none.",
    ),
    augment: bool = typer.Option(
        None, "--augment/--no-augment", help="Random flips and quarter turns (default on)."
    ),
    threads: Threads = None,
    device: Device = "auto",
    overwrite: Overwrite = False,
    resume: bool = typer.Option(False, "--resume", help="Continue the interrupted run in --out."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress or per-epoch lines on stderr."),
    as_json: Json = False,
    allow_outside: AllowOutside = False,
) -> None:
    """Train with Dice + CE, AdamW and a cosine schedule; keep the best validation checkpoint.

    --out is the run folder (config.json, model.pt, last.pt). Defaults: 50 epochs, seed 0, batch
    size 8 in 2D and 2 in 3D.
    """
    from segrob.training import TrainConfig
    from segrob.training import train as run_training

    options = _options(option or [])
    if channels is not None:
        options["channels"] = _ints(channels, "--channels")
    config = TrainConfig(
        data=str(data) if data is not None else None, out=str(out), arch=arch, epochs=epochs,
        lr=lr, batch_size=batch_size, seed=seed, val_fraction=val_fraction,
        patch_size=_patch(patch), pos_ratio=pos_ratio, samples_per_epoch=samples_per_epoch,
        options=options or None, paper_size=paper_size,
        normalization={"method": norm} if norm is not None else None, augment=augment,
        threads=threads, device=device, overwrite=overwrite, resume=resume,
        allow_outside=allow_outside,
    )
    display = _Display(quiet=quiet)
    try:
        result = run_training(config, progress=display)
    finally:
        display.close()
    Output(as_json=as_json).result(result, _view)


def _view(result: Any) -> None:
    console.print(_summary(result))
    for note in result.notes:
        info(note)


def _summary(result: Any) -> Any:
    run = result.config
    fbr = run.fbr_range
    rows = [
        ("run folder", result.run_dir),
        ("architecture", f"{run.arch} ({run.spatial_dims}D, {run.in_channels} -> "
                         f"{run.out_channels} channels)"),
        ("device", result.device),
        ("epochs", f"{len(run.history)} of {run.train.get('epochs')}" + _resumed(result)),
        ("best epoch", fmt(result.best_epoch)),
        ("best validation Dice", fmt(result.best_val_dice)),
        ("training FBR", "–" if not fbr else
         f"{fbr['min']:.3f}..{fbr['max']:.3f} (p5 {fbr['p5']:.3f}, p95 {fbr['p95']:.3f})"),
        ("time", f"{result.seconds:.1f} s"),
    ]
    return table("Training", ("item", "value"), rows, justify_numbers=False)


def _patch(text: str | None) -> int | tuple[int, ...] | None:
    """``--patch``: one edge for every axis, or one per axis."""
    if text is None:
        return None
    sizes = _ints(text, "--patch")
    return sizes[0] if len(sizes) == 1 else tuple(sizes)


def _resumed(result: Any) -> str:
    if result.resumed_from is None:
        return ""
    if result.epochs_run == 0:
        return " (already complete)"
    return f" (resumed after epoch {result.resumed_from})"


class _Display:
    """Progress bar over all steps plus one line per epoch, on stderr."""

    def __init__(self, *, quiet: bool):
        self.quiet = quiet
        self.bar: Any = None
        self.done = 0

    def __call__(self, event: Any) -> None:
        if self.quiet:
            return
        if event.kind == "start" and event.epoch < event.epochs:
            total = max(0, event.epochs - event.epoch) * event.steps
            self.bar = progress_bar("train", total).__enter__()
        elif event.kind == "step" and self.bar is not None:
            self.done += 1
            best = "" if event.best_val_dice is None else f" best Dice {event.best_val_dice:.3f}"
            self.bar(self.done, status=f"epoch {event.epoch}/{event.epochs} loss {event.loss:.3f}"
                                       f"{best}")
        elif event.kind == "epoch":
            dice = "–" if event.val_dice is None else f"{event.val_dice:.4f}"
            info(f"epoch {event.epoch}/{event.epochs}  loss {event.loss:.4f}  val Dice {dice}  "
                 f"lr {event.lr:.2e}  {event.seconds:.1f} s")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


def _ints(text: str, option: str) -> list[int]:
    from segrob.errors import UsageError

    try:
        values = [int(v) for v in text.replace("x", ",").split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{option} takes integers separated by commas, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise UsageError(f"{option} takes positive integers, got {text!r}")
    return values


def _options(items: list[str]) -> dict[str, Any]:
    from segrob.errors import UsageError

    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--option takes KEY=VALUE, got {item!r}")
        try:
            options[key.strip()] = json.loads(value)
        except ValueError:
            options[key.strip()] = value
    return options


def register(app: typer.Typer) -> None:
    app.command("train")(train)
