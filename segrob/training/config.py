"""What a training run is asked to do, the settings it resolves to, what it reports and returns.

A :class:`TrainConfig` is the request: what the user gave (``None`` means "not given").
:func:`segrob.training.prepare.resolve_settings` turns it, once, into :class:`TrainSettings`:
every default filled, the paper size and the registry's fixed-size rule applied, the device
chosen. The loop, the run folder's ``config.json`` and a resumed run all read those settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from segrob.errors import UsageError
from segrob.tiling import DEFAULT_OVERLAP
from segrob.training.checkpoint import RunConfig

#: Defaults, chosen so every U-Net variant reaches validation Dice >= 0.9 on segrob's LOW
#: complexity 2D data (100 cases): measured 0.93-0.96 at 64x64 (~25-45 s on one CPU thread) and
#: >= 0.93 at 128x128 (~3 min). Flips and quarter turns matter: without them U-Net stays ~0.86.
#: ``None`` entries depend on the data (see :func:`segrob.training.prepare.resolve_settings`).
DEFAULTS: dict[str, Any] = {
    "arch": "unet",
    "epochs": 50,
    "lr": 3e-3,
    "batch_size": None,
    "weight_decay": 1e-4,
    "seed": 0,
    "val_fraction": 0.2,
    "patch_size": None,
    "pos_ratio": 0.5,
    "samples_per_epoch": None,
    "options": {},
    "normalization": {"method": "zscore"},
    "augment": True,
    "warmup_fraction": 0.05,
    "val_overlap": DEFAULT_OVERLAP,  # as the audit tiles: validation Dice = clean audit Dice
}
#: Batch size per dimensionality (a 3D patch costs far more than a 2D image).
DEFAULT_BATCH = {2: 8, 3: 2}
#: Default 3D patch edge when ``--patch`` is not given (capped by the volume size).
DEFAULT_PATCH_3D = 64

#: Settings that a resumed run must keep (changing them would change the result).
FIXED_ON_RESUME = ("arch", "data", "epochs", "lr", "batch_size", "weight_decay", "seed",
                   "val_fraction", "patch_size", "pos_ratio", "samples_per_epoch", "options",
                   "normalization", "augment")
#: ``config.json`` ``train`` keys that come from the settings, in the order they are written.
RECORDED = ("epochs", "lr", "batch_size", "weight_decay", "seed", "val_fraction", "pos_ratio",
            "samples_per_epoch", "warmup_fraction", "val_overlap", "augment")


@dataclass(frozen=True)
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
        paper_size: start from the registry's paper-sized options (``options`` override them).
        normalization: intensity normalisation spec (default z-score).
        augment: random flips and quarter turns of each training sample (default on).
        threads: CPU threads for torch while training (``None``: torch's choice).
        device: ``auto``, ``cpu`` or ``cuda``.
        overwrite: replace a non-empty ``out``. resume: continue the run in ``out``.
        allow_outside: let ``data``'s case files resolve outside its folder.
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
    paper_size: bool = False
    normalization: dict[str, Any] | None = None
    augment: bool | None = None
    threads: int | None = None
    device: str = "auto"
    overwrite: bool = False
    resume: bool = False
    allow_outside: bool = False

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if isinstance(self.patch_size, tuple):
            data["patch_size"] = list(self.patch_size)
        return data

    def given(self, arch: str) -> dict[str, Any]:
        """The resume-fixed settings given explicitly (not ``None``) for a model ``arch``,
        with ``paper_size`` spelled out as the options it stands for."""
        from segrob.models import get_spec

        out = {f.name: getattr(self, f.name) for f in fields(self)
               if f.name in FIXED_ON_RESUME and getattr(self, f.name) is not None}
        if self.paper_size:
            out["options"] = {**get_spec(arch).paper_options, **(self.options or {})}
        return out

    def check(self) -> TrainConfig:
        """Refuse values that can never work, before any file is touched."""
        if self.out is None:
            raise UsageError("--out is required (the run folder to write)")
        if self.resume and self.overwrite:
            raise UsageError("--resume and --overwrite contradict each other; choose one")
        if not self.resume and self.data is None:
            raise UsageError("--data is required (a dataset folder)")
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"--threads must be at least 1, got {self.threads}")
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
                raise UsageError(f"--{name.replace('_', '-')} must be {rule}, got {value}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise UsageError(f"--device must be auto, cpu or cuda, got {self.device!r}")
        return self


@dataclass(frozen=True)
class TrainSettings:
    """A request resolved against its data: every value the run uses, nothing left open.

    Attributes:
        arch: registry name. data: the dataset folder, resolved.
        input_size: the spatial size the model sees in training (the patch or the image size).
        patch_size: training patch per axis, or ``None`` for whole images.
        options: the options passed to ``create_model`` (``img_size`` filled for fixed-size
            models). normalization: the intensity normalisation spec.
        device: ``cpu`` or ``cuda`` (chosen); device_requested: as asked (``auto`` too).
        threads: CPU threads for torch, or ``None`` for torch's choice.
        The rest are the optimisation and sampling settings of :class:`TrainConfig`, plus
        ``warmup_fraction`` (share of steps warming up) and ``val_overlap`` (sliding window).
    """

    arch: str
    data: str
    input_size: tuple[int, ...]
    epochs: int
    lr: float
    batch_size: int
    weight_decay: float
    seed: int
    val_fraction: float
    patch_size: tuple[int, ...] | None
    pos_ratio: float
    samples_per_epoch: int
    warmup_fraction: float
    val_overlap: float
    augment: bool
    options: Mapping[str, Any]
    normalization: Mapping[str, Any]
    device: str
    device_requested: str
    threads: int | None = None

    def __post_init__(self) -> None:
        for name in ("options", "normalization"):
            object.__setattr__(self, name, _ReadOnlyDict(getattr(self, name)))

    @property
    def spatial_dims(self) -> int:
        return len(self.input_size)

    @property
    def steps_per_epoch(self) -> int:
        return -(-self.samples_per_epoch // self.batch_size)

    def train_record(self) -> dict[str, Any]:
        """The ``train`` section of ``config.json``."""
        return {key: getattr(self, key) for key in RECORDED} | {
            "loss": "dice+ce", "optimizer": "adamw", "schedule": "cosine (per step)",
            "device": self.device, "device_requested": self.device_requested,
        }


class _ReadOnlyDict(dict):
    """A dict that refuses edits (settings are resolved once), yet copies, pickles and
    serialises as a dict."""

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("resolved training settings are read-only; resolve a new request")

    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse

    def __reduce__(self) -> tuple:
        return type(self), (dict(self),)


def stored_request(run: RunConfig) -> dict[str, Any]:
    """What a stored run was resolved to, as a request (keys of :data:`DEFAULTS` and ``data``);
    a key an older run lacks is left out."""
    train = run.train
    stored = {key: train.get(key) for key in RECORDED} | {
        "arch": run.arch,
        "data": run.data.get("path"),
        "patch_size": run.patch_size,
        "options": run.options,
        "normalization": run.normalization,
    }
    return {key: value for key, value in stored.items() if value is not None}


def conflicts_on_resume(config: TrainConfig, settings: TrainSettings) -> list[str]:
    """Given settings that differ from the resumed run's, as ``name: given vs stored``."""
    problems = []
    for name, value in config.given(settings.arch).items():
        old = getattr(settings, name)
        if name == "data":
            same = Path(str(value)).resolve() == Path(str(old)).resolve()
        elif name == "patch_size":
            value = [value] * settings.spatial_dims if isinstance(value, int) else list(value)
            old = list(old) if old is not None else None
            same = old == value
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
