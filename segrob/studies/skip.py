"""The skip-connection study (Kamath et al., MICCAI 2023) on segrob's synthetic data.

For each complexity level: generate training data and an unseen test set; for each architecture
and seed: train, export to ONNX, audit on the test set under the ``texture`` suite (the paper's
easier and harder shifts) and a shift suite. The result is a table like the paper's Table 1 —
in-domain, easier and harder Dice per level and architecture — and every number as JSON.
Every step is skipped when its output exists, so a study resumes where it stopped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
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

EASIER = "texture_blur_background"
HARDER = "texture_speckle"
TEST_SEED_OFFSET = 1000


@dataclass(frozen=True)
class SkipStudyConfig:
    """What the study runs. Small defaults keep a full study to minutes on a laptop CPU."""

    out: Path
    levels: tuple[str, ...] = ("low", "medium", "high")
    archs: tuple[str, ...] = ("unet", "noskip", "attention", "gated")
    seeds: tuple[int, ...] = (0,)
    n_train: int = 60
    n_test: int = 20
    size: int = 64
    epochs: int = 20
    shift_suite: str | None = "shift"
    channels: tuple[int, ...] | None = None
    device: str = "auto"

    def check(self) -> SkipStudyConfig:
        for level in self.levels:
            blend_for(level, None)
        unknown = [a for a in self.archs if a not in MODELS]
        if unknown:
            raise SegrobError(f"unknown architecture {unknown[0]!r} (valid: {', '.join(MODELS)})")
        if not self.levels or not self.archs or not self.seeds:
            raise SegrobError("a study needs at least one level, architecture and seed")
        if self.n_train < 4 or self.n_test < 2:
            raise SegrobError("a study needs at least 4 training and 2 test cases per level")
        return self

    def to_dict(self) -> dict:
        data = asdict(self)
        data["out"] = str(self.out)
        return data


@dataclass
class StudyCell:
    level: str
    arch: str
    seed: int
    in_domain: float | None
    easier: float | None
    harder: float | None
    shift_rr: float | None
    shift_dice: float | None
    val_dice: float | None
    reports: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _mean_dice(report, perturbation: str) -> float | None:
    values = [c.mean("dice") for c in report.summary.cells
              if c.perturbation == perturbation and c.mean("dice") is not None]
    return float(np.mean(values)) if values else None


def run_skip_study(config: SkipStudyConfig, *, notify: Callable[[str], None] | None = None,
                   engine: LocalCells | None = None) -> dict:
    """Run (or resume) the study and return, and write, ``study.json`` with every number.

    ``engine`` runs the cells: here by default, or as Ray tasks (:class:`segrob.ray_engine.RayCells`).
    """
    from segrob.training import TrainConfig

    config = config.check()
    out = Path(config.out)
    settings = config.to_dict()
    settings.pop("out")
    claim_folder(out, json.loads(json.dumps(settings)))
    engine = engine or LocalCells()
    todo: list[tuple[str, str, int, Path, TrainCell]] = []
    for level in config.levels:
        blend, _ = blend_for(level, None)
        train_dir = ensure_synthetic(
            out / "data" / f"{level}-train",
            SynthConfig(dims=2, n=config.n_train, size=config.size, blend=blend, level=level, seed=0),
            notify,
        )
        test_dir = ensure_synthetic(
            out / "data" / f"{level}-test",
            SynthConfig(dims=2, n=config.n_test, size=config.size, blend=blend, level=level,
                        seed=TEST_SEED_OFFSET),
            notify,
        )
        for arch in config.archs:
            for seed in config.seeds:
                name = f"{level}-{arch}-s{seed}"
                options = {"channels": list(config.channels)} if config.channels else None
                request = TrainConfig(data=str(train_dir), out=str(out / "runs" / name), arch=arch,
                                      epochs=config.epochs, seed=seed, options=options, device=config.device)
                cell = TrainCell(name, out / "runs" / name, out / "models" / f"{name}.onnx", request)
                todo.append((level, arch, seed, test_dir, cell))
    runs = engine.train([cell for *_, cell in todo], notify)
    cells = [_audited_cell(config, out, level, arch, seed, test_dir, cell, runs[cell.name], engine, notify)
             for level, arch, seed, test_dir, cell in todo]
    result = {"study": "skip", "config": config.to_dict(), "cells": [c.to_dict() for c in cells],
              "table": summarise_cells(cells)}
    write_json_atomic(out / "study.json", result)
    return result


def _audited_cell(config: SkipStudyConfig, out: Path, level: str, arch: str, seed: int, test_dir: Path,
                  cell: TrainCell, run: dict, engine: LocalCells, notify) -> StudyCell:
    """Audit one trained cell under the texture (and shift) suite and gather its numbers."""
    name, model = cell.name, cell.model_path
    texture = ensure_audited(model, test_dir, "texture", out / "audits" / f"{name}-texture.json",
                             seed=seed, device=config.device, notify=notify, engine=engine.audit_engine)
    shift = None
    if config.shift_suite:
        shift = ensure_audited(model, test_dir, config.shift_suite,
                               out / "audits" / f"{name}-{config.shift_suite}.json",
                               seed=seed, device=config.device, notify=notify, engine=engine.audit_engine)
    return StudyCell(
        level=level, arch=arch, seed=seed,
        in_domain=texture.summary.clean.mean("dice"),
        easier=_mean_dice(texture, EASIER),
        harder=_mean_dice(texture, HARDER),
        shift_rr=shift.summary.suite.relative_robustness if shift else None,
        shift_dice=shift.summary.suite.mean_dice if shift else None,
        val_dice=(run.get("best") or {}).get("val_dice"),
        reports={"texture": str(out / "audits" / f"{name}-texture.json")},
    )


def summarise_cells(cells: list[StudyCell]) -> list[dict]:
    """Mean and standard deviation over seeds for every (level, architecture)."""
    rows = []
    keys = dict.fromkeys((c.level, c.arch) for c in cells)
    for level, arch in keys:
        group = [c for c in cells if c.level == level and c.arch == arch]
        row = {"level": level, "arch": arch, "seeds": len(group)}
        for metric in ("in_domain", "easier", "harder", "shift_rr", "val_dice"):
            values = [getattr(c, metric) for c in group if getattr(c, metric) is not None]
            row[metric] = float(np.mean(values)) if values else None
            row[f"{metric}_std"] = float(np.std(values)) if len(values) > 1 else None
        rows.append(row)
    return rows
