"""The skip-connection study (Kamath et al., MICCAI 2023) on segrob's synthetic data.

For each complexity level: generate training data and an unseen test set; for each architecture
and seed: train, export to ONNX, audit on the test set under the ``texture`` suite (the paper's
easier/easiest background blur and harder/hardest speckle, each reported on its own) and a shift
suite. The result is a table like the paper's Table 1 and every number as JSON. Every step is
skipped when its output exists, so a study resumes where it stopped.

Two protocols. ``segrob`` (the default): every case draws its own texture pair and mask, a
short budget, capacity-matched models (which asks "does the skip help at equal size?").
``paper``: the setting of the authors' code (amithjkamath/to_skip_or_not, train/2d_*.py,
data/generate-textures-*.py): one fixed texture pair cropped at random, one mask set shared by
every blend level, 70 training + 10 validation images, batch 8, 100 epochs (900 steps), Adam
at 1e-3, intensities scaled to [0, 1], and every model also tested on every other level's test
set (the out-of-domain matrix: train at blend a, test at blend b). ``capacity`` is separate:
``matched`` keeps segrob's widths for every architecture; ``paper`` gives the attention U-Net
about 3.3 times the U-Net's parameters, as MONAI's ``AttentionUnet`` has against the
``UNet(num_res_units=0)`` the authors trained (both at channels 16-256).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from segrob.data.blend import blend_for
from segrob.data.synth import SynthConfig
from segrob.errors import SegrobError
from segrob.io_utils import write_json_atomic
from segrob.models.registry import MODELS
from segrob.models.unet import DEFAULT_CHANNELS, PAPER_CHANNELS
from segrob.studies.pipeline import (
    LocalCells,
    TrainCell,
    claim_folder,
    ensure_audited,
    ensure_synthetic,
)

EASIER = "texture_blur_background"
HARDER = "texture_speckle"
#: The paper's four shifts: (perturbation, severity) in segrob's ``texture`` suite.
SHIFTS = {"easier": (EASIER, 1), "easiest": (EASIER, 2), "harder": (HARDER, 1), "hardest": (HARDER, 2)}
TEST_SEED_OFFSET = 1000
PROTOCOLS = ("segrob", "paper")
UNET_FAMILY = ("unet", "noskip", "attention", "gated")
#: What a protocol sets when the user does not.
PROTOCOL_SET = ("n_train", "n_test", "size", "epochs", "capacity")
CAPACITIES = ("matched", "paper")
#: Parameters of MONAI's AttentionUnet over its UNet(num_res_units=0), both 1 -> 1 channel at
#: channels (16, 32, 64, 128, 256), strides 2: 2,184,453 / 661,201, counted from MONAI's block
#: definitions (two 3x3 convolutions per attention-U-Net block, one per U-Net level).
PAPER_ATTENTION_RATIO = 2_184_453 / 661_201
#: The paper protocol's fixed texture pair (its code uses one pair of texture images throughout).
PAPER_TEXTURE_PAIR = ("cellular", "fractal")
#: The authors' split of 100 images per blend level: 70 train, 10 validation, 20 test.
PAPER_TRAIN = {"n_train": 80, "n_test": 20, "epochs": 100, "batch_size": 8, "lr": 1e-3,
               "val_fraction": 0.125, "samples_per_epoch": 70}


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
    protocol: str = "segrob"
    capacity: str = "matched"

    @classmethod
    def paper(cls, out: Path, **changes) -> SkipStudyConfig:
        """The paper's protocol and capacities; ``changes`` override (a smaller size, fewer epochs)."""
        values = {k: v for k, v in PAPER_TRAIN.items() if k in ("n_train", "n_test", "epochs")}
        values |= {"protocol": "paper", "capacity": "paper", "size": 256}
        return cls(out=out, **(values | changes))

    @classmethod
    def build(cls, protocol: str = "segrob", **given) -> SkipStudyConfig:
        """``protocol``'s defaults (``paper``: the paper's budget, size and capacities) with the
        ``given`` values on top; ``None`` for a protocol-set value means "not given"."""
        given = {k: v for k, v in given.items() if v is not None or k not in PROTOCOL_SET}
        if protocol == "paper":
            return cls.paper(**given)
        return cls(protocol=protocol, **given)

    def check(self) -> SkipStudyConfig:
        if self.protocol not in PROTOCOLS:
            raise SegrobError(f"unknown protocol {self.protocol!r} (valid: {', '.join(PROTOCOLS)})")
        if self.capacity not in CAPACITIES:
            raise SegrobError(f"unknown capacity {self.capacity!r} (valid: {', '.join(CAPACITIES)})")
        if self.capacity == "paper" and self.channels:
            raise SegrobError("--capacity paper sets every architecture's widths; drop the channels")
        if self.capacity == "paper" and set(self.archs) - set(UNET_FAMILY):
            other = sorted(set(self.archs) - set(UNET_FAMILY))[0]
            raise SegrobError(
                f"--capacity paper sizes the U-Net family ({', '.join(UNET_FAMILY)}), not {other}")
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

    def settings(self) -> dict:
        """What a study folder is claimed with; the defaults of options added later are left
        out, so folders made before them still resume."""
        data = json.loads(json.dumps(self.to_dict()))
        data.pop("out")
        for key, default in (("protocol", "segrob"), ("capacity", "matched")):
            if data.get(key) == default:
                data.pop(key)
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
    easiest: float | None = None
    hardest: float | None = None
    cross: dict[str, float | None] = field(default_factory=dict)
    reports: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _mean_dice(report, perturbation: str, severity: int) -> float | None:
    values = [c.mean("dice") for c in report.summary.cells
              if c.perturbation == perturbation and c.severity == severity and c.mean("dice") is not None]
    return float(np.mean(values)) if values else None


@functools.lru_cache(maxsize=8)
def _parameters(arch: str, channels: tuple[int, ...]) -> int:
    from segrob.models.info import count_parameters
    from segrob.models.registry import create_model

    model = create_model(arch, spatial_dims=2, in_channels=1, out_channels=2, channels=list(channels))
    return count_parameters(model)


def paper_capacity(arch: str) -> tuple[int, ...]:
    """Widths for ``--capacity paper``: attention at the paper's 16-256; every other member of
    the family narrowed until the attention U-Net has PAPER_ATTENTION_RATIO times its parameters."""
    if arch == "attention":
        return PAPER_CHANNELS
    target = _parameters("attention", PAPER_CHANNELS) / PAPER_ATTENTION_RATIO
    low, high = 0.2, 1.0
    for _ in range(20):  # bisection on a common width factor; parameters grow with width
        middle = (low + high) / 2
        low, high = (middle, high) if _parameters("unet", _scaled(middle)) < target else (low, middle)
    return _scaled((low + high) / 2)


def _scaled(factor: float) -> tuple[int, ...]:
    return tuple(max(2, round(c * factor)) for c in PAPER_CHANNELS)


def model_options(config: SkipStudyConfig, arch: str) -> dict | None:
    if config.capacity == "paper":
        return {"channels": list(paper_capacity(arch))}
    return {"channels": list(config.channels)} if config.channels else None


def _datasets(config: SkipStudyConfig, out: Path, level: str, notify) -> tuple[Path, Path]:
    blend, _ = blend_for(level, None)
    base = SynthConfig(dims=2, size=config.size, blend=blend, level=level)
    if config.protocol == "paper":
        # One texture pair (one sheet per family) and one mask set for every level: only the
        # blend changes between the datasets, as in the authors' generator.
        base = replace(base, texture_pair=PAPER_TEXTURE_PAIR, texture_seed=0)
        train = replace(base, n=config.n_train, seed=0, mask_seed=0)
        test = replace(base, n=config.n_test, seed=TEST_SEED_OFFSET, mask_seed=TEST_SEED_OFFSET)
    else:
        train = replace(base, n=config.n_train, seed=0)
        test = replace(base, n=config.n_test, seed=TEST_SEED_OFFSET)
    return (ensure_synthetic(out / "data" / f"{level}-train", train, notify),
            ensure_synthetic(out / "data" / f"{level}-test", test, notify))


def train_request(config: SkipStudyConfig, train_dir: Path, run_dir: Path, arch: str, seed: int):
    from segrob.training import TrainConfig

    request = TrainConfig(data=str(train_dir), out=str(run_dir), arch=arch, epochs=config.epochs,
                          seed=seed, options=model_options(config, arch), device=config.device)
    if config.protocol != "paper":
        return request
    settings = {k: v for k, v in PAPER_TRAIN.items() if k in ("batch_size", "lr", "val_fraction")}
    # 70 of the 80 cases train (the rest validate): one pass over them per epoch, as the paper.
    samples = max(1, round(config.n_train * (1 - PAPER_TRAIN["val_fraction"])))
    return replace(request, **settings, samples_per_epoch=samples,
                   normalization={"method": "robust-minmax"})


def run_skip_study(config: SkipStudyConfig, *, notify: Callable[[str], None] | None = None,
                   engine: LocalCells | None = None) -> dict:
    """Run (or resume) the study and return, and write, ``study.json`` with every number.

    ``engine`` runs the cells: here by default, or as Ray tasks (:class:`segrob.ray_engine.RayCells`).
    """
    config = config.check()
    out = Path(config.out)
    claim_folder(out, config.settings())
    engine = engine or LocalCells()
    tests: dict[str, Path] = {}
    todo: list[tuple[str, str, int, TrainCell]] = []
    for level in config.levels:
        train_dir, tests[level] = _datasets(config, out, level, notify)
        for arch in config.archs:
            for seed in config.seeds:
                name = f"{level}-{arch}-s{seed}"
                request = train_request(config, train_dir, out / "runs" / name, arch, seed)
                cell = TrainCell(name, out / "runs" / name, out / "models" / f"{name}.onnx", request)
                todo.append((level, arch, seed, cell))
    runs = engine.train([cell for *_, cell in todo], notify)
    cells = [_audited_cell(config, out, level, arch, seed, tests[level], cell, runs[cell.name], engine,
                           notify) for level, arch, seed, cell in todo]
    if config.protocol == "paper":
        for cell in cells:
            cell.cross = _cross_dice(config, out, cell, tests, notify, engine)
    result = {"study": "skip", "protocol": config.protocol, "capacity": config.capacity,
              "parameters": {a: _parameters(a, _widths(config, a)) for a in config.archs
                             if a in UNET_FAMILY},
              "config": config.to_dict(), "cells": [c.to_dict() for c in cells],
              "table": summarise_cells(cells)}
    if config.protocol == "paper":
        result["matrix"] = summarise_matrix(cells, config.levels)
    write_json_atomic(out / "study.json", result)
    return result


def _widths(config: SkipStudyConfig, arch: str) -> tuple[int, ...]:
    options = model_options(config, arch)
    return tuple(options["channels"]) if options else DEFAULT_CHANNELS


def _audited_cell(config: SkipStudyConfig, out: Path, level: str, arch: str, seed: int, test_dir: Path,
                  cell: TrainCell, run: dict, engine: LocalCells, notify) -> StudyCell:
    """Audit one trained cell under the texture (and shift) suite and gather its numbers."""
    name, model = cell.name, cell.model_path
    texture_path = out / "audits" / f"{name}-texture.json"
    texture = ensure_audited(model, test_dir, "texture", texture_path,
                             seed=seed, device=config.device, notify=notify, engine=engine.audit_engine)
    shift = None
    if config.shift_suite:
        shift = ensure_audited(model, test_dir, config.shift_suite,
                               out / "audits" / f"{name}-{config.shift_suite}.json",
                               seed=seed, device=config.device, notify=notify, engine=engine.audit_engine)
    shifts = {key: _mean_dice(texture, *where) for key, where in SHIFTS.items()}
    return StudyCell(
        level=level, arch=arch, seed=seed, in_domain=texture.summary.clean.mean("dice"),
        shift_rr=shift.summary.suite.relative_robustness if shift else None,
        shift_dice=shift.summary.suite.mean_dice if shift else None,
        val_dice=(run.get("best") or {}).get("val_dice"),
        reports={"texture": str(texture_path)}, **shifts,
    )


def _cross_dice(config, out: Path, cell: StudyCell, tests: dict[str, Path], notify,
                engine: LocalCells) -> dict:
    """Clean Dice of one model on every level's test set (its own level: the in-domain Dice)."""
    name = f"{cell.level}-{cell.arch}-s{cell.seed}"
    model = out / "models" / f"{name}.onnx"
    cross = {}
    for level, test_dir in tests.items():
        if level == cell.level:
            cross[level] = cell.in_domain
            continue
        report = ensure_audited(model, test_dir, "clean", out / "audits" / f"{name}-on-{level}.json",
                                seed=cell.seed, device=config.device, notify=notify,
                                engine=engine.audit_engine)
        cross[level] = report.summary.clean.mean("dice")
    return cross


def summarise_cells(cells: list[StudyCell]) -> list[dict]:
    """Mean and standard deviation over seeds for every (level, architecture)."""
    rows = []
    keys = dict.fromkeys((c.level, c.arch) for c in cells)
    for level, arch in keys:
        group = [c for c in cells if c.level == level and c.arch == arch]
        row = {"level": level, "arch": arch, "seeds": len(group)}
        for metric in ("in_domain", *SHIFTS, "shift_rr", "val_dice"):
            row.update(_mean_sd(metric, [getattr(c, metric) for c in group]))
        rows.append(row)
    return rows


def summarise_matrix(cells: list[StudyCell], levels: tuple[str, ...]) -> list[dict]:
    """The out-of-domain matrix: per (architecture, training level), the mean clean Dice over
    seeds on each level's test set."""
    rows = []
    for arch, train_level in dict.fromkeys((c.arch, c.level) for c in cells):
        group = [c for c in cells if c.arch == arch and c.level == train_level]
        row = {"arch": arch, "train": train_level, "seeds": len(group)}
        for level in levels:
            values = [c.cross.get(level) for c in group]
            row[level] = _mean_sd("dice", values)["dice"]
        rows.append(row)
    return rows


def _mean_sd(metric: str, values: list) -> dict:
    values = [v for v in values if v is not None]
    return {metric: float(np.mean(values)) if values else None,
            f"{metric}_std": float(np.std(values)) if len(values) > 1 else None}
