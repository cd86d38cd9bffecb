"""What a training run is asked to do, what it reports while running, and what it returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from segrob.errors import SegrobError
from segrob.tiling import DEFAULT_OVERLAP
from segrob.training.checkpoint import RunConfig

#: Defaults, chosen so every U-Net variant reaches validation Dice >= 0.9 on segrob's LOW
#: complexity 2D data (100 cases): measured 0.93-0.96 at 64x64 (~25-45 s on one CPU thread) and
#: >= 0.93 at 128x128 (~3 min). Flips and quarter turns matter: without them U-Net stays ~0.86.
DEFAULTS: dict[str, Any] = {
    "arch": "unet",
    "epochs": 50,
    "lr": 3e-3,
    "weight_decay": 1e-4,
    "seed": 0,
    "val_fraction": 0.2,
    "pos_ratio": 0.5,
    "warmup_fraction": 0.05,
    "val_overlap": DEFAULT_OVERLAP,  # as the audit tiles: validation Dice = clean audit Dice
    "augment": True,
}
#: Batch size per dimensionality (a 3D patch costs far more than a 2D image).
DEFAULT_BATCH = {2: 8, 3: 2}
#: Default 3D patch edge when ``--patch`` is not given (capped by the volume size).
DEFAULT_PATCH_3D = 64

#: Settings that a resumed run must keep (changing them would change the result).
FIXED_ON_RESUME = ("arch", "data", "epochs", "lr", "batch_size", "weight_decay", "seed",
                   "val_fraction", "patch_size", "pos_ratio", "samples_per_epoch", "options",
                   "normalization", "augment")


@dataclass
class TrainConfig:
    """A training request. ``None`` means "not given": defaults fill it, or on ``resume`` the
    stored run's value (a given value that differs from the stored one is refused).

    Attributes:
        data: dataset folder (any layout ``segrob.data.load_dataset`` reads).
        out: run folder to write.
        arch: registry name (default ``unet``).
        epochs, lr, batch_size, weight_decay, seed: optimisation (AdamW, cosine schedule).
        val_fraction: share of cases held out for validation, chosen by the seed.
        patch_size: train on patches of this size (int or per axis); ``None``: whole images
            in 2D, ``min(64, volume)`` patches in 3D.
        pos_ratio: share of patches centred on a foreground voxel.
        samples_per_epoch: patches per epoch (default: twice the training cases).
        options: model options for ``create_model``.
        normalization: intensity normalisation spec (default z-score).
        augment: random flips and quarter turns of each training sample (default on).
        device: ``auto``, ``cpu`` or ``cuda``.
        overwrite: replace a non-empty ``out``. resume: continue the run in ``out``.
    """

    data: str | None = None
    out: str | None = None
    arch: str | None = None
    epochs: int | None = None
    lr: float | None = None
    batch_size: int | None = None
    weight_decay: float | None = None
    seed: int | None = None
    val_fraction: float | None = None
    patch_size: int | tuple[int, ...] | None = None
    pos_ratio: float | None = None
    samples_per_epoch: int | None = None
    options: dict[str, Any] | None = None
    normalization: dict[str, Any] | None = None
    augment: bool | None = None
    device: str = "auto"
    overwrite: bool = False
    resume: bool = False

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if isinstance(self.patch_size, tuple):
            data["patch_size"] = list(self.patch_size)
        return data

    def given(self) -> dict[str, Any]:
        """The settings given explicitly (not ``None``), as stored in a run config."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in FIXED_ON_RESUME and value is not None:
                out[f.name] = value
        return out

    def check(self) -> TrainConfig:
        """Refuse values that can never work, before any file is touched."""
        if self.out is None:
            raise SegrobError("--out is required (the run folder to write)")
        if self.resume and self.overwrite:
            raise SegrobError("--resume and --overwrite contradict each other; choose one")
        if not self.resume and self.data is None:
            raise SegrobError("--data is required (a dataset folder)")
        checks = (
            ("epochs", self.epochs, lambda v: v >= 1, "at least 1"),
            ("lr", self.lr, lambda v: v > 0, "positive"),
            ("batch_size", self.batch_size, lambda v: v >= 1, "at least 1"),
            ("weight_decay", self.weight_decay, lambda v: v >= 0, "non-negative"),
            ("val_fraction", self.val_fraction, lambda v: 0 <= v < 1, "in [0, 1)"),
            ("pos_ratio", self.pos_ratio, lambda v: 0 <= v <= 1, "in [0, 1]"),
            ("samples_per_epoch", self.samples_per_epoch, lambda v: v >= 1, "at least 1"),
        )
        for name, value, ok, rule in checks:
            if value is not None and not ok(value):
                raise SegrobError(f"--{name.replace('_', '-')} must be {rule}, got {value}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise SegrobError(f"--device must be auto, cpu or cuda, got {self.device!r}")
        return self


def stored_request(run: RunConfig) -> dict[str, Any]:
    """The resume-fixed settings of a stored run, in :class:`TrainConfig` terms."""
    train = run.train
    return {
        "arch": run.arch,
        "data": run.data.get("path"),
        "epochs": train.get("epochs"),
        "lr": train.get("lr"),
        "batch_size": train.get("batch_size"),
        "weight_decay": train.get("weight_decay"),
        "seed": train.get("seed"),
        "val_fraction": train.get("val_fraction"),
        "patch_size": run.patch_size,
        "pos_ratio": train.get("pos_ratio"),
        "samples_per_epoch": train.get("samples_per_epoch"),
        "options": run.options,
        "normalization": run.normalization,
        "augment": train.get("augment"),
    }


def conflicts_on_resume(config: TrainConfig, run: RunConfig) -> list[str]:
    """Given settings that differ from the run being resumed, as ``name: given vs stored``."""
    stored = stored_request(run)
    problems = []
    for name, value in config.given().items():
        old = stored.get(name)
        if name == "data":
            same = Path(str(value)).resolve() == Path(str(old)).resolve()
        elif name == "patch_size":
            spatial = run.spatial_dims
            value = [value] * spatial if isinstance(value, int) else list(value)
            same = old is not None and list(old) == value
        elif name == "options":
            same = all(old.get(k) == (list(v) if isinstance(v, tuple) else v)
                       for k, v in value.items())
        else:
            same = value == old
        if not same:
            problems.append(f"{name}: given {value!r}, run has {old!r}")
    return problems


@dataclass
class TrainProgress:
    """What the loop reports to its ``progress`` callback.

    ``kind`` is ``start`` (before the first step), ``step`` (after each optimiser step),
    ``epoch`` (after validation and checkpointing) or ``done``.
    """

    kind: str
    epoch: int
    epochs: int
    step: int = 0
    steps: int = 0
    loss: float | None = None
    val_dice: float | None = None
    best_val_dice: float | None = None
    lr: float | None = None
    seconds: float = 0.0
    message: str = ""


@dataclass
class TrainResult:
    """The outcome of :func:`segrob.training.train`."""

    run_dir: str
    config: RunConfig
    device: str
    epochs_run: int
    resumed_from: int | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def best_epoch(self) -> int | None:
        return self.config.best.get("epoch")

    @property
    def best_val_dice(self) -> float | None:
        return self.config.best.get("val_dice")

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_dir": self.run_dir,
            "arch": self.config.arch,
            "device": self.device,
            "epochs_run": self.epochs_run,
            "resumed_from": self.resumed_from,
            "seconds": round(self.seconds, 3),
            "best": dict(self.config.best),
            "fbr_range": self.config.fbr_range,
            "notes": list(self.notes),
            "config": self.config.to_dict(),
        }
