"""The training loop: Dice + CE, AdamW, a stepped cosine schedule, validation, checkpoints.

Randomness is drawn per epoch from ``(seed, epoch)`` (case order, patches) and the model is
initialised from ``seed``, so a run is reproducible on CPU and a resumed run continues exactly
where the interrupted one stopped.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from segrob.errors import SegrobError
from segrob.io_utils import atomic_output_dir, check_output_dir, foreign_files, read_marker
from segrob.models.sizes import input_size_problem
from segrob.training.checkpoint import (
    LAST_FILE,
    LAST_FORMAT,
    MODEL_FILE,
    RunConfig,
    build_model,
    load_state,
    load_torch,
    read_run_config,
    save_torch_atomic,
    write_run_config,
)
from segrob.training.config import (
    TrainConfig,
    TrainProgress,
    TrainResult,
    TrainSettings,
    conflicts_on_resume,
)
from segrob.training.inference import predict_logits
from segrob.training.losses import DiceCELoss, case_dice
from segrob.training.prepare import TrainingData, new_run_config, resolve_settings, torch_threads
from segrob.training.sampling import (
    PatchSampler,
    augment_dihedral,
    fbr_range,
    foreground_ratio,
)

Progress = Callable[[TrainProgress], None]


@dataclass
class _State:
    """What changes while training and goes into ``last.pt``."""

    epoch: int = 0
    best_epoch: int | None = None
    best_dice: float | None = None
    fbr: list[float] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Context:
    """What every epoch works with."""

    settings: TrainSettings
    data: TrainingData
    model: nn.Module
    device: torch.device
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    sampler: PatchSampler | None
    emit: Progress
    state: _State = field(default_factory=_State)
    loss_fn: nn.Module = field(default_factory=DiceCELoss)


def train(config: TrainConfig, *, progress: Progress | None = None) -> TrainResult:
    """Train ``config.arch`` on ``config.data`` and write the run folder ``config.out``.

    The request is resolved once into :class:`~segrob.training.config.TrainSettings` (on
    ``resume``: the stored run's). Everything is checked (dataset, model, sizes, output folder)
    before the folder is created; then ``config.json``, ``model.pt`` and ``last.pt`` are
    replaced atomically after every epoch. ``config.threads`` holds only while training.

    Raises:
        SegrobError: bad settings, an unusable dataset, a size the model cannot take, a
            non-empty ``out`` without ``overwrite``/``resume``, or a broken run to resume.
    """
    config.check()
    out = Path(str(config.out))
    with torch_threads(config.threads):
        stored = _run_to_resume(config, out)
        settings, data = resolve_settings(config, stored)
        if stored is not None:
            _refuse_changes(config, settings, stored, data)
        run, model = _new_model(settings, data)
        ctx = _context(settings, data, model, progress or (lambda event: None))
        notes = _begin(ctx, run, stored, out, overwrite=config.overwrite)
        resumed_from = ctx.state.epoch if stored is not None else None
        started = time.perf_counter()
        ctx.emit(TrainProgress("start", ctx.state.epoch, settings.epochs,
                               steps=settings.steps_per_epoch, best_val_dice=ctx.state.best_dice))
        epochs = range(ctx.state.epoch + 1, settings.epochs + 1)
        try:
            for epoch in epochs:
                _run_epoch(ctx, run, out, epoch)
        except BaseException:
            if stored is None:
                _drop_unresumable(out)
            raise
        ctx.emit(TrainProgress("done", ctx.state.epoch, settings.epochs,
                               best_val_dice=ctx.state.best_dice,
                               seconds=time.perf_counter() - started))
    return TrainResult(run_dir=str(out), config=run, device=settings.device,
                       epochs_run=len(epochs), resumed_from=resumed_from,
                       seconds=time.perf_counter() - started, notes=notes)


def _drop_unresumable(out: Path) -> None:
    """Remove a new run folder that failed before its first checkpoint (a full disk, Ctrl-C).

    Without last.pt it cannot be resumed, and a folder holding only config.json would look like
    a run; so it goes, unless someone put files of their own in it meanwhile.
    """
    if (out / LAST_FILE).is_file() or read_marker(out) is None or foreign_files(out):
        return
    shutil.rmtree(out, ignore_errors=True)


def _run_to_resume(config: TrainConfig, out: Path) -> RunConfig | None:
    """The stored run ``config`` resumes, or ``None`` once ``out`` is known to be writable."""
    if not config.resume:
        check_output_dir(out, overwrite=config.overwrite, inputs=(config.data,))
        return None
    run = read_run_config(out)
    if not (out / LAST_FILE).is_file():
        raise SegrobError(
            f"{out}: no {LAST_FILE} to resume from (the run stopped before its first epoch "
            "ended); start again with --overwrite"
        )
    return run


def _refuse_changes(config: TrainConfig, settings: TrainSettings, stored: RunConfig,
                    data: TrainingData) -> None:
    """A resumed run keeps its settings, and its dataset must still give the same model."""
    conflicts = conflicts_on_resume(config, settings)
    if conflicts:
        raise SegrobError(
            f"--resume keeps the run's settings; drop the options that differ ({conflicts[0]})"
        )
    for key in ("spatial_dims", "in_channels", "out_channels"):
        if getattr(stored, key) != getattr(data, key):
            raise SegrobError(
                f"cannot resume: the run has {key} {getattr(stored, key)} but the dataset "
                f"{data.path} now gives {getattr(data, key)}"
            )


def _new_model(settings: TrainSettings, data: TrainingData) -> tuple[RunConfig, nn.Module]:
    """The run's config and its freshly initialised model (from the seed), size-checked."""
    torch.manual_seed(settings.seed)
    run = new_run_config(settings, data)
    model = build_model(run)
    run.options = dict(model.options)
    problem = input_size_problem(model, settings.input_size)
    if problem:
        hint = "" if settings.patch_size else " (or pass --patch with a size that works)"
        raise SegrobError(f"{settings.arch} cannot train on {data.path}: {problem}{hint}")
    return run, model


def _context(settings: TrainSettings, data: TrainingData, model: nn.Module,
             emit: Progress) -> _Context:
    device = torch.device(settings.device)
    if device.type == "cuda":
        # Reproducible GPU runs: no autotuned (run-dependent) convolution algorithms.
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr,
                                  weight_decay=settings.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _cosine(settings.epochs * settings.steps_per_epoch, settings.warmup_fraction)
    )
    sampler = None
    if settings.patch_size is not None:
        sampler = PatchSampler(data.train_images, data.train_labels, settings.patch_size,
                               pos_ratio=settings.pos_ratio, seed=settings.seed)
    return _Context(settings, data, model, device, optimizer, scheduler, sampler, emit)


def _begin(ctx: _Context, run: RunConfig, stored: RunConfig | None, out: Path, *,
           overwrite: bool) -> list[str]:
    """Create the run folder, or restore the resumed run's state; returns notes."""
    if stored is None:
        ctx.state.history = run.history
        with atomic_output_dir(out, overwrite=overwrite, inputs=(ctx.settings.data,), kind="run",
                               later=(MODEL_FILE, LAST_FILE)) as staging:
            write_run_config(staging, run)
        return []
    ctx.state = _restore(load_torch(out / LAST_FILE), ctx, stored.arch, out / LAST_FILE)
    # last.pt, not config.json, is the reference: it is written first after each epoch.
    run.history = ctx.state.history
    _record_progress(run, ctx.state, ctx.settings.epochs)
    if ctx.state.epoch < ctx.settings.epochs:
        return []
    if stored.status != "complete":
        # Interrupted between last.pt and config.json after the final epoch.
        write_run_config(out, run)
    return [f"run already complete ({ctx.state.epoch} epochs); nothing to do"]


def _run_epoch(ctx: _Context, run: RunConfig, out: Path, epoch: int) -> None:
    """Train, validate, keep the best weights, and record the epoch in the run folder."""
    tic = time.perf_counter()
    loss = _train_epoch(ctx, epoch)
    dice = _validate(ctx.model, ctx.data, ctx.settings.patch_size, ctx.settings.val_overlap,
                     ctx.device)
    state = ctx.state
    if dice is None or state.best_dice is None or dice > state.best_dice:
        state.best_epoch, state.best_dice = epoch, dice
        save_torch_atomic(_cpu_state(ctx.model), out / MODEL_FILE)
    state.epoch = epoch
    seconds = time.perf_counter() - tic
    lr = ctx.optimizer.param_groups[0]["lr"]
    run.history.append({"epoch": epoch, "loss": loss, "val_dice": dice, "lr": lr,
                        "seconds": round(seconds, 3)})
    _record_progress(run, state, ctx.settings.epochs)
    save_torch_atomic(_last(ctx), out / LAST_FILE)
    write_run_config(out, run)
    steps = ctx.settings.steps_per_epoch
    ctx.emit(TrainProgress("epoch", epoch, ctx.settings.epochs, steps, steps, loss=loss,
                           val_dice=dice, best_val_dice=state.best_dice, lr=lr, seconds=seconds))


def _record_progress(run: RunConfig, state: _State, epochs: int) -> None:
    run.best = {"epoch": state.best_epoch, "val_dice": state.best_dice}
    run.fbr_range = fbr_range(state.fbr)
    run.status = "complete" if state.epoch >= epochs else "running"


def _cosine(total_steps: int, warmup_fraction: float) -> Callable[[int], float]:
    """LR factor per step: linear warm-up, then ``0.01 + 0.99 * (1 + cos(pi * t)) / 2``."""
    warmup = max(1, round(warmup_fraction * total_steps)) if warmup_fraction > 0 else 0

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * t))

    return factor


def _train_epoch(ctx: _Context, epoch: int) -> float:
    """One epoch of optimiser steps; returns the mean loss and records patch FBRs."""
    settings, data, state = ctx.settings, ctx.data, ctx.state
    ctx.model.train()
    rng = np.random.default_rng([settings.seed, epoch])
    n, batch_size = settings.samples_per_epoch, settings.batch_size
    if ctx.sampler is None:
        pool = len(data.train_images)
        order = np.concatenate([rng.permutation(pool) for _ in range(-(-n // pool))])[:n]
        items = [(data.train_images[i], data.train_labels[i]) for i in order.tolist()]
    else:
        items = [ctx.sampler.cut(r) for r in ctx.sampler.plan(n, rng)]
    if settings.augment:
        items = [augment_dihedral(img, lbl, rng) for img, lbl in items]
    losses = []
    steps = settings.steps_per_epoch
    for step in range(steps):
        chunk = items[step * batch_size:(step + 1) * batch_size]
        state.fbr.extend(foreground_ratio(lbl) for _, lbl in chunk)
        x = torch.from_numpy(np.stack([img for img, _ in chunk])).to(ctx.device)
        y = torch.from_numpy(np.stack([lbl for _, lbl in chunk]).astype(np.int64)).to(ctx.device)
        ctx.optimizer.zero_grad(set_to_none=True)
        loss = ctx.loss_fn(ctx.model(x), y)
        loss.backward()
        ctx.optimizer.step()
        ctx.scheduler.step()
        losses.append(float(loss.detach()))
        ctx.emit(TrainProgress("step", epoch, settings.epochs, step + 1, steps, loss=losses[-1],
                               best_val_dice=state.best_dice,
                               lr=ctx.optimizer.param_groups[0]["lr"]))
    return float(np.mean(losses))


def _validate(model: nn.Module, data: TrainingData, patch, overlap: float, device) -> float | None:
    """Mean over validation cases of the mean foreground Dice (``None`` without validation)."""
    if not data.val_images:
        return None
    model.eval()
    scores = []
    for image, label in zip(data.val_images, data.val_labels, strict=True):
        logits = predict_logits(model, torch.from_numpy(image).to(device), window=patch,
                                overlap=overlap)
        prediction = logits.argmax(0).cpu().numpy()
        scores.append(case_dice(prediction, label, data.out_channels))
    model.train()
    return float(np.mean(scores))


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _last(ctx: _Context) -> dict[str, Any]:
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    state = ctx.state
    return {
        "format": LAST_FORMAT,
        "epoch": state.epoch,
        "model": _cpu_state(ctx.model),
        "optimizer": ctx.optimizer.state_dict(),
        "scheduler": ctx.scheduler.state_dict(),
        "best": {"epoch": state.best_epoch, "val_dice": state.best_dice},
        "fbr": torch.tensor(state.fbr, dtype=torch.float64),
        "history": [dict(h) for h in state.history],
        "rng": rng,
    }


def _restore(last: Any, ctx: _Context, arch: str, path: Path) -> _State:
    if not isinstance(last, dict) or last.get("format") != LAST_FORMAT:
        raise SegrobError(f"{path}: not a segrob resume checkpoint")
    load_state(ctx.model, last.get("model"), arch=arch, source=str(path))
    try:
        ctx.optimizer.load_state_dict(last["optimizer"])
        ctx.scheduler.load_state_dict(last["scheduler"])
        torch.set_rng_state(last["rng"]["torch"])
        if "cuda" in last["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(last["rng"]["cuda"])
        best = last["best"]
        return _State(epoch=int(last["epoch"]), best_epoch=best["epoch"],
                      best_dice=best["val_dice"], fbr=last["fbr"].tolist(),
                      history=[dict(h) for h in last["history"]])
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise SegrobError(f"{path}: damaged resume checkpoint ({error})") from error
