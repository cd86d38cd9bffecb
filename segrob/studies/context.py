"""The context vs foreground-ratio study (Kamath et al., MedNeurIPS 2022) on synthetic volumes.

For each patch size and architecture: train on 3D volumes whose foreground fills a given share
(the training patches' foreground ratio, FBR, is recorded), export, and measure Dice on unseen
volumes of the same foreground share (inside the training FBR range) and on volumes whose
foreground is smaller and, separately, larger (outside it on either side; the paper's test
volumes fell on both sides of the training range). The paper's findings: bigger patches (more
context) help every model more than a higher FBR does, and U-Net holds up outside the training
FBR range while attention U-Net and UNETR fall.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from segrob.data.blend import blend_for
from segrob.data.synth import SynthConfig
from segrob.errors import SegrobError
from segrob.io_utils import write_json_atomic
from segrob.models.registry import MODELS
from segrob.studies.pipeline import (
    LocalCells,
    TrainCell,
    claim_folder,
    ensure_audited,
    ensure_synthetic,
)

TEST_SEED_OFFSET = 1000
#: The audit file of each test set (``shifted``: the larger share, its name before both shifts).
AUDIT_NAMES = {"same": "same", "larger": "shifted", "smaller": "smaller"}


@dataclass(frozen=True)
class ContextStudyConfig:
    out: Path
    patches: tuple[int, ...] = (32, 48, 64)
    archs: tuple[str, ...] = ("unet", "attention", "unetr")
    seeds: tuple[int, ...] = (0,)
    n_train: int = 16
    n_test: int = 8
    size: int = 64
    epochs: int = 10
    level: str = "low"
    fg_fraction: tuple[float, float] = (0.04, 0.12)
    fg_fraction_shifted: tuple[float, float] = (0.25, 0.4)
    fg_fraction_smaller: tuple[float, float] = (0.01, 0.025)
    pos_ratio: float = 0.5
    device: str = "auto"

    def check(self) -> ContextStudyConfig:
        blend_for(self.level, None)
        unknown = [a for a in self.archs if a not in MODELS]
        if unknown:
            raise SegrobError(f"unknown architecture {unknown[0]!r} (valid: {', '.join(MODELS)})")
        bad = [p for p in self.patches if p < 16 or p > self.size or p % 16]
        if bad:
            raise SegrobError(
                f"patch size {bad[0]} does not work: patches must be multiples of 16 between 16 "
                f"and the volume size {self.size}"
            )
        if not self.patches or not self.archs or not self.seeds:
            raise SegrobError("a study needs at least one patch size, architecture and seed")
        if not self.fg_fraction_smaller[1] < self.fg_fraction[0] <= self.fg_fraction[1] < \
                self.fg_fraction_shifted[0]:
            raise SegrobError(
                f"the shifted foreground shares must lie below and above the training share "
                f"{self.fg_fraction}: got {self.fg_fraction_smaller} and {self.fg_fraction_shifted}"
            )
        return self

    def to_dict(self) -> dict:
        data = asdict(self)
        data["out"] = str(self.out)
        return data

    def settings(self) -> dict:
        """What a study folder is claimed with; the smaller shift's default is left out, so
        folders made before it resume (and gain the smaller shift)."""
        data = json.loads(json.dumps(self.to_dict()))
        data.pop("out")
        if tuple(data["fg_fraction_smaller"]) == ContextStudyConfig.fg_fraction_smaller:
            data.pop("fg_fraction_smaller")
        return data


def run_context_study(config: ContextStudyConfig, *, notify: Callable[[str], None] | None = None,
                      engine: LocalCells | None = None) -> dict:
    """Run (or resume) the study; returns and writes ``study.json``. ``engine``: as in the skip study."""
    config = config.check()
    out = Path(config.out)
    claim_folder(out, config.settings())
    blend, level = blend_for(config.level, None)

    def volumes(name: str, n: int, fraction: tuple[float, float], seed: int) -> Path:
        return ensure_synthetic(out / "data" / name, SynthConfig(
            dims=3, n=n, size=config.size, blend=blend, level=level, seed=seed, fg_fraction=fraction,
        ), notify)

    train_dir = volumes("train", config.n_train, config.fg_fraction, 0)
    n_test = config.n_test
    tests = {
        "same": volumes("test-same-fbr", n_test, config.fg_fraction, TEST_SEED_OFFSET),
        # The folder keeps its first name so that studies made before the smaller shift resume.
        "larger": volumes("test-shifted-fbr", n_test, config.fg_fraction_shifted, TEST_SEED_OFFSET + 1),
        "smaller": volumes("test-smaller-fbr", n_test, config.fg_fraction_smaller, TEST_SEED_OFFSET + 2),
    }
    engine = engine or LocalCells()
    todo = [(patch, arch, seed, _train_cell(config, out, patch, arch, seed, train_dir))
            for patch in config.patches for arch in config.archs for seed in config.seeds]
    runs = engine.train([cell for *_, cell in todo], notify)
    cells = [_audited_cell(config, out, patch, arch, seed, cell, runs[cell.name], tests, engine, notify)
             for patch, arch, seed, cell in todo]
    result = {"study": "context", "config": config.to_dict(), "cells": cells,
              "table": summarise_context(cells, config)}
    write_json_atomic(out / "study.json", result)
    return result


def _train_cell(config: ContextStudyConfig, out: Path, patch: int, arch: str, seed: int,
                train_dir: Path) -> TrainCell:
    from segrob.training import TrainConfig

    name = f"p{patch}-{arch}-s{seed}"
    run_dir = out / "runs" / name
    request = TrainConfig(
        data=str(train_dir), out=str(run_dir), arch=arch, epochs=config.epochs, seed=seed,
        patch_size=patch, pos_ratio=config.pos_ratio, device=config.device,
    )
    return TrainCell(name, run_dir, out / "models" / f"{name}.onnx", request)


def summarise_context(cells: list[dict], config: ContextStudyConfig) -> list[dict]:
    """Mean over seeds per (patch, architecture), with the training FBR's p5-p95."""
    table = []
    for patch in config.patches:
        for arch in config.archs:
            group = [c for c in cells if c["patch"] == patch and c["arch"] == arch]
            row = {"patch": patch, "arch": arch}
            for key in ("dice_same_fbr", "dice_smaller_fbr", "dice_larger_fbr", "val_dice"):
                values = [c[key] for c in group if c[key] is not None]
                row[key] = float(np.mean(values)) if values else None
            fbr = [c["train_fbr"] for c in group if c["train_fbr"]]
            row["train_fbr_p5_p95"] = [fbr[0].get("p5"), fbr[0].get("p95")] if fbr else None
            table.append(row)
    return table


def _audited_cell(config: ContextStudyConfig, out: Path, patch: int, arch: str, seed: int, cell: TrainCell,
                  run: dict, tests: dict[str, Path], engine: LocalCells, notify) -> dict:
    """Audit one trained cell on the same, larger and smaller foreground shares."""
    reports = {
        key: ensure_audited(cell.model_path, folder, "clean",
                            out / "audits" / f"{cell.name}-{AUDIT_NAMES[key]}.json",
                            seed=seed, device=config.device, notify=notify, engine=engine.audit_engine)
        for key, folder in tests.items()
    }
    return {
        "patch": patch, "arch": arch, "seed": seed,
        "train_fbr": run.get("fbr_range"),
        "val_dice": (run.get("best") or {}).get("val_dice"),
        **{f"dice_{key}_fbr": report.summary.clean.mean("dice") for key, report in reports.items()},
        "larger_outside_range": _outside(reports["larger"]),
        "smaller_outside_range": _outside(reports["smaller"]),
    }


def _outside(report) -> int | None:
    """How many of the report's cases lie outside the model's training FBR range."""
    fbr = report.summary.fbr
    return fbr.outside.n_cases if fbr else None
