"""The training loop: Dice + CE, AdamW, a stepped cosine schedule, validation, checkpoints.

Randomness is drawn per epoch from ``(seed, epoch)`` (case order, patches) and the model is
initialised from ``seed``, so a run is reproducible on CPU and a resumed run continues exactly
where the interrupted one stopped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from segrob.errors import SegrobError
from segrob.io_utils import atomic_output_dir, check_output_dir
from segrob.models.layers import as_tuple
from segrob.models.sizes import input_size_problem
from segrob.provenance import package_versions
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
    DEFAULT_BATCH,
    DEFAULT_PATCH_3D,
    DEFAULTS,
    TrainConfig,
    TrainProgress,
    TrainResult,
    conflicts_on_resume,
    stored_request,
)
from segrob.training.inference import predict_logits
from segrob.training.losses import DiceCELoss, case_dice
from segrob.training.prepare import TrainingData, load_training_data, resolve_device
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
    fbr: list[float] | None = None
    history: list[dict[str, Any]] | None = None


def train(config: TrainConfig, *, progress: Progress | None = None) -> TrainResult:
    """Train ``config.arch`` on ``config.data`` and write the run folder ``config.out``.

    Everything is checked (dataset, model, sizes, output folder) before the folder is created;
    then ``config.json``, ``model.pt`` and ``last.pt`` are replaced atomically after every epoch.

    Raises:
        SegrobError: bad settings, an unusable dataset, a size the model cannot take, a
            non-empty ``out`` without ``overwrite``/``resume``, or a broken run to resume.
    """
    config.check()
    out = Path(str(config.out))
    notes: list[str] = []
    run: RunConfig | None = None
    if config.resume:
        run = read_run_config(out)
        if not (out / LAST_FILE).is_file():
            raise SegrobError(
                f"{out}: no {LAST_FILE} to resume from (the run stopped before its first epoch "
                "ended); start again with --overwrite"
            )
        conflicts = conflicts_on_resume(config, run)
        if conflicts:
            raise SegrobError(
                f"--resume keeps the run's settings; drop the options that differ ({conflicts[0]})"
            )
        request = {k: v for k, v in stored_request(run).items() if v is not None}
    else:
        check_output_dir(out, overwrite=config.overwrite)
        request = {k: v for k, v in config.given().items()}
    settings = {**DEFAULTS, **request}
    device = resolve_device(config.device)

    data = load_training_data(
        settings["data"], seed=settings["seed"], val_fraction=settings["val_fraction"],
        normalization=settings.get("normalization") or {"method": "zscore"},
    )
    dims = data.spatial_dims
    patch = _patch_size(settings.get("patch_size"), data)
    input_size = patch or next(iter(data.shapes))
    options = dict(settings.get("options") or {})
    if settings["arch"] == "unetr":
        options.setdefault("img_size", list(input_size))
    settings["batch_size"] = settings.get("batch_size") or DEFAULT_BATCH[dims]
    n_train = len(data.train_names)
    settings["samples_per_epoch"] = settings.get("samples_per_epoch") or (
        n_train if patch is None else max(settings["batch_size"], 2 * n_train)
    )

    torch.manual_seed(settings["seed"])
    fresh = RunConfig(
        arch=settings["arch"], spatial_dims=dims, in_channels=data.in_channels,
        out_channels=data.out_channels, options=options,
        normalization=settings.get("normalization") or {"method": "zscore"},
        patch_size=list(patch) if patch else None,
        data=data.describe(), versions=package_versions("torch", "numpy", "python"),
    )
    if run is not None:
        _check_resumable(run, fresh)
    model = build_model(fresh)
    fresh.options = dict(model.options)
    problem = input_size_problem(model, input_size)
    if problem:
        hint = "" if patch else " (or pass --patch with a size that works)"
        raise SegrobError(f"{settings['arch']} cannot train on {data.path}: {problem}{hint}")
    fresh.train = {
        key: settings[key] for key in ("epochs", "lr", "batch_size", "weight_decay", "seed",
                                       "val_fraction", "pos_ratio", "samples_per_epoch",
                                       "warmup_fraction", "val_overlap", "augment")
    } | {"loss": "dice+ce", "optimizer": "adamw", "schedule": "cosine (per step)",
         "device": device.type, "device_requested": config.device}

    if device.type == "cuda":
        # Reproducible GPU runs: no autotuned (run-dependent) convolution algorithms.
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    model.to(device)
    steps_per_epoch = math.ceil(settings["samples_per_epoch"] / settings["batch_size"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings["lr"],
                                  weight_decay=settings["weight_decay"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _cosine(settings["epochs"] * steps_per_epoch, settings["warmup_fraction"])
    )
    state = _State(fbr=[], history=fresh.history)
    if run is not None:
        last = load_torch(out / LAST_FILE)
        state = _restore(last, model, optimizer, scheduler, run, out / LAST_FILE)
        # last.pt, not config.json, is the reference: it is written first after each epoch.
        state.history = fresh.history = list(state.history or [])
        fresh.best = {"epoch": state.best_epoch, "val_dice": state.best_dice}
        fresh.fbr_range = fbr_range(state.fbr or [])
        fresh.status = "complete" if state.epoch >= settings["epochs"] else "running"
        if state.epoch >= settings["epochs"]:
            notes.append(f"run already complete ({state.epoch} epochs); nothing to do")
    else:
        with atomic_output_dir(out, overwrite=config.overwrite) as staging:
            write_run_config(staging, fresh)
    resumed_from = state.epoch if run is not None else None

    sampler = None
    if patch is not None:
        sampler = PatchSampler(data.train_images, data.train_labels, patch,
                               pos_ratio=settings["pos_ratio"], seed=settings["seed"])
    loss_fn = DiceCELoss()
    started = time.perf_counter()
    epochs_run = 0
    emit = progress or (lambda event: None)
    emit(TrainProgress("start", state.epoch, settings["epochs"], steps=steps_per_epoch,
                       best_val_dice=state.best_dice))
    for epoch in range(state.epoch + 1, settings["epochs"] + 1):
        tic = time.perf_counter()
        loss = _train_epoch(model, optimizer, scheduler, loss_fn, data, sampler, settings,
                            epoch, steps_per_epoch, device, state, emit)
        dice = _validate(model, data, patch, settings["val_overlap"], device)
        improved = dice is None or state.best_dice is None or dice > state.best_dice
        if improved:
            state.best_epoch, state.best_dice = epoch, dice
            save_torch_atomic(_cpu_state(model), out / MODEL_FILE)
        state.epoch = epoch
        seconds = time.perf_counter() - tic
        fresh.history.append({"epoch": epoch, "loss": loss, "val_dice": dice,
                              "lr": optimizer.param_groups[0]["lr"], "seconds": round(seconds, 3)})
        fresh.best = {"epoch": state.best_epoch, "val_dice": state.best_dice}
        fresh.fbr_range = fbr_range(state.fbr or [])
        fresh.status = "complete" if epoch == settings["epochs"] else "running"
        save_torch_atomic(_last(model, optimizer, scheduler, state), out / LAST_FILE)
        write_run_config(out, fresh)
        epochs_run += 1
        emit(TrainProgress("epoch", epoch, settings["epochs"], steps_per_epoch, steps_per_epoch,
                           loss=loss, val_dice=dice, best_val_dice=state.best_dice,
                           lr=optimizer.param_groups[0]["lr"], seconds=seconds))
    if fresh.status != "complete" and state.epoch >= settings["epochs"]:
        fresh.status = "complete"
        write_run_config(out, fresh)
    emit(TrainProgress("done", state.epoch, settings["epochs"], best_val_dice=state.best_dice,
                       seconds=time.perf_counter() - started))
    return TrainResult(run_dir=str(out), config=fresh, device=device.type, epochs_run=epochs_run,
                       resumed_from=resumed_from, seconds=time.perf_counter() - started,
                       notes=notes)


def _patch_size(value: Any, data: TrainingData) -> tuple[int, ...] | None:
    dims = data.spatial_dims
    if value is not None:
        return as_tuple(value if isinstance(value, int) else [int(v) for v in value], dims,
                        "--patch")
    if dims == 2:
        if len(data.shapes) > 1:
            sizes = ", ".join("x".join(map(str, s)) for s in sorted(data.shapes)[:3])
            raise SegrobError(
                f"{data.path}: images differ in size ({sizes}, ...); whole-image training needs "
                "one size, pass --patch N to train on patches"
            )
        return None
    smallest = np.min(np.array(sorted(data.shapes)), axis=0)
    # A multiple of 16 fits every default model (U-Net: 8, UNETR: its 16-voxel patches).
    return tuple(int(max(16, min(DEFAULT_PATCH_3D, s) // 16 * 16)) for s in smallest)


def _check_resumable(run: RunConfig, fresh: RunConfig) -> None:
    for key in ("spatial_dims", "in_channels", "out_channels"):
        if getattr(run, key) != getattr(fresh, key):
            raise SegrobError(
                f"cannot resume: the run has {key} {getattr(run, key)} but the dataset "
                f"{fresh.data['path']} now gives {getattr(fresh, key)}"
            )


def _cosine(total_steps: int, warmup_fraction: float) -> Callable[[int], float]:
    """LR factor per step: linear warm-up, then ``0.01 + 0.99 * (1 + cos(pi * t)) / 2``."""
    warmup = max(1, round(warmup_fraction * total_steps)) if warmup_fraction > 0 else 0

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * t))

    return factor


def _train_epoch(model, optimizer, scheduler, loss_fn, data, sampler, settings, epoch,
                 steps, device, state, emit) -> float:
    """One epoch of optimiser steps; returns the mean loss and records patch FBRs."""
    model.train()
    rng = np.random.default_rng([settings["seed"], epoch])
    n, batch_size = settings["samples_per_epoch"], settings["batch_size"]
    if sampler is None:
        pool = len(data.train_images)
        order = np.concatenate([rng.permutation(pool) for _ in range(-(-n // pool))])[:n]
        items = [(data.train_images[i], data.train_labels[i]) for i in order.tolist()]
    else:
        items = [sampler.cut(r) for r in sampler.plan(n, rng)]
    if settings["augment"]:
        items = [augment_dihedral(img, lbl, rng) for img, lbl in items]
    losses = []
    for step in range(steps):
        chunk = items[step * batch_size:(step + 1) * batch_size]
        state.fbr.extend(foreground_ratio(lbl) for _, lbl in chunk)
        x = torch.from_numpy(np.stack([img for img, _ in chunk])).to(device)
        y = torch.from_numpy(np.stack([lbl for _, lbl in chunk]).astype(np.int64)).to(device)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(float(loss.detach()))
        emit(TrainProgress("step", epoch, settings["epochs"], step + 1, steps, loss=losses[-1],
                           best_val_dice=state.best_dice, lr=optimizer.param_groups[0]["lr"]))
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


def _last(model, optimizer, scheduler, state: _State) -> dict[str, Any]:
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return {
        "format": LAST_FORMAT,
        "epoch": state.epoch,
        "model": _cpu_state(model),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "best": {"epoch": state.best_epoch, "val_dice": state.best_dice},
        "fbr": torch.tensor(state.fbr or [], dtype=torch.float64),
        "history": [dict(h) for h in state.history or []],
        "rng": rng,
    }


def _restore(last: Any, model, optimizer, scheduler, run: RunConfig, path: Path) -> _State:
    if not isinstance(last, dict) or last.get("format") != LAST_FORMAT:
        raise SegrobError(f"{path}: not a segrob resume checkpoint")
    load_state(model, last.get("model"), arch=run.arch, source=str(path))
    try:
        optimizer.load_state_dict(last["optimizer"])
        scheduler.load_state_dict(last["scheduler"])
        torch.set_rng_state(last["rng"]["torch"])
        if "cuda" in last["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(last["rng"]["cuda"])
        best = last["best"]
        return _State(epoch=int(last["epoch"]), best_epoch=best["epoch"],
                      best_dice=best["val_dice"], fbr=last["fbr"].tolist(),
                      history=[dict(h) for h in last["history"]])
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise SegrobError(f"{path}: damaged resume checkpoint ({error})") from error
