"""Before training: the data loaded, checked, normalised and split by the seed, and the request
resolved against it into :class:`~segrob.training.config.TrainSettings`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from segrob.data import load_dataset
from segrob.data.normalize import check_normalization, normalize
from segrob.errors import SegrobError
from segrob.models.layers import as_tuple
from segrob.provenance import package_versions
from segrob.training.checkpoint import RunConfig
from segrob.training.config import (
    DEFAULT_BATCH,
    DEFAULT_PATCH_3D,
    DEFAULTS,
    TrainConfig,
    TrainSettings,
    stored_request,
)


@dataclass
class TrainingData:
    """Normalised images and labels of the training and validation cases."""

    path: str
    kind: str
    metadata: dict[str, Any]
    spatial_dims: int
    in_channels: int
    out_channels: int
    train_names: list[str]
    val_names: list[str]
    train_images: list[np.ndarray] = field(repr=False)
    train_labels: list[np.ndarray] = field(repr=False)
    val_images: list[np.ndarray] = field(repr=False)
    val_labels: list[np.ndarray] = field(repr=False)
    #: The case files were allowed to resolve outside ``path`` (``--allow-outside``).
    allow_outside: bool = False

    @property
    def n_cases(self) -> int:
        return len(self.train_names) + len(self.val_names)

    @property
    def shapes(self) -> set[tuple[int, ...]]:
        return {tuple(img.shape[1:]) for img in self.train_images + self.val_images}

    def describe(self) -> dict[str, Any]:
        """The ``data`` section of ``config.json`` (``allow_outside`` only when it was asked, so
        the export reads the cases again the way training was allowed to)."""
        described = {"path": self.path, "n_cases": self.n_cases, "kind": self.kind,
                     "metadata": self.metadata, "val_cases": list(self.val_names)}
        return {**described, "allow_outside": True} if self.allow_outside else described


def split_cases(names: list[str], *, seed: int, val_fraction: float) -> tuple[list, list]:
    """Deterministic train/validation split by case name.

    Names are sorted, permuted with ``seed``, and the first ``round(n * val_fraction)`` (at
    least one when ``val_fraction > 0``, never all) are held out; both lists come back sorted.
    """
    ordered = sorted(names)
    n = len(ordered)
    n_val = 0
    if val_fraction > 0 and n >= 2:
        n_val = min(n - 1, max(1, round(n * val_fraction)))
    order = np.random.default_rng([seed, 0x7A1]).permutation(n)
    val = sorted(ordered[i] for i in order[:n_val])
    train = sorted(ordered[i] for i in order[n_val:])
    return train, val


def load_training_data(
    path: str | Path,
    *,
    seed: int,
    val_fraction: float,
    normalization: dict[str, Any],
    allow_outside: bool = False,
) -> TrainingData:
    """Read every case of ``path``, check it can train one model, normalise and split it.

    Raises:
        SegrobError: an unlabelled case, mixed 2D/3D cases or channel counts, or too few cases.
    """
    spec = check_normalization(normalization)
    dataset = load_dataset(path, allow_outside=allow_outside)
    names = dataset.names
    if len(names) < 2 and val_fraction > 0:
        raise SegrobError(
            f"{path}: {len(names)} case(s); training with validation needs at least 2 "
            "(or pass --val-fraction 0)"
        )
    train_names, val_names = split_cases(names, seed=seed, val_fraction=val_fraction)
    images: dict[str, np.ndarray] = {}
    labels: dict[str, np.ndarray] = {}
    first = None
    for case in dataset:
        if case.label is None:
            raise SegrobError(f"{case.source.get('image', case.name)}: case has no label map")
        signature = (case.spatial_dims, case.in_channels)
        if first is None:
            first = (signature, case.name)
        elif signature != first[0]:
            raise SegrobError(
                f"{path}: case {case.name} is {case.spatial_dims}D with {case.in_channels} "
                f"channel(s) but {first[1]} is {first[0][0]}D with {first[0][1]}; one model "
                "needs one kind of input"
            )
        tensor = torch.from_numpy(np.ascontiguousarray(case.image))[None]
        images[case.name] = normalize(tensor, spec)[0].numpy()
        labels[case.name] = case.label
    assert first is not None
    spatial_dims, in_channels = first[0]
    out_channels = _count_classes(labels, path)
    return TrainingData(
        path=str(Path(path).resolve()),
        kind=dataset.kind,
        metadata=dataset.metadata,
        spatial_dims=spatial_dims,
        in_channels=in_channels,
        out_channels=out_channels,
        train_names=train_names,
        val_names=val_names,
        train_images=[images[n] for n in train_names],
        train_labels=[labels[n] for n in train_names],
        val_images=[images[n] for n in val_names],
        val_labels=[labels[n] for n in val_names],
        allow_outside=allow_outside,
    )


def _count_classes(labels: dict[str, np.ndarray], path: str | Path) -> int:
    """Classes incl. background: ``max label + 1``, at least 2; refuses 0/255-style masks."""
    values: set[int] = set()
    for label in labels.values():
        values.update(int(v) for v in np.unique(label))
    top = max(values)
    if top > 1 and len(values) <= 2:
        raise SegrobError(
            f"{path}: labels only hold the values {sorted(values)}; class ids must be 0..K-1 "
            f"(a binary mask saved as 0/{top}? store it as 0/1)"
        )
    if top >= 256:
        raise SegrobError(f"{path}: label value {top} would mean {top + 1} classes; labels must "
                          "be class ids 0..K-1")
    return max(2, top + 1)


def resolve_device(requested: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without CUDA is an error."""
    if requested == "cpu":
        return torch.device("cpu")
    available = torch.cuda.is_available()
    if requested == "cuda":
        if not available:
            why = "torch was built without CUDA" if torch.version.cuda is None else "no GPU found"
            raise SegrobError(f"--device cuda: CUDA is not available ({why}); use --device cpu")
        return torch.device("cuda")
    if requested == "auto":
        return torch.device("cuda" if available else "cpu")
    raise SegrobError(f"--device must be auto, cpu or cuda, got {requested!r}")


def resolve_settings(
    config: TrainConfig, stored: RunConfig | None = None
) -> tuple[TrainSettings, TrainingData]:
    """Resolve ``config`` against its data into the settings the run uses, and that data.

    What was not given comes from :data:`~segrob.training.config.DEFAULTS` or, on resume, from
    the ``stored`` run (given values are compared with it by the caller). ``paper_size`` becomes
    the registry's paper options, and a fixed-size model gets ``img_size`` = the input size.

    Raises:
        SegrobError: an unusable device or dataset, or a 2D dataset of mixed image sizes
            without a patch size.
    """
    from segrob.models import get_spec

    asked = _asked(config, stored)
    device = resolve_device(config.device)
    normalization = asked["normalization"] or DEFAULTS["normalization"]
    data = load_training_data(asked["data"], seed=asked["seed"], val_fraction=asked["val_fraction"],
                              normalization=normalization, allow_outside=config.allow_outside)
    patch = _patch_size(asked["patch_size"], data)
    input_size = patch or next(iter(data.shapes))
    options = dict(asked["options"] or {})
    if get_spec(asked["arch"]).fixed_size:
        options.setdefault("img_size", list(input_size))
    batch_size = asked["batch_size"] or DEFAULT_BATCH[data.spatial_dims]
    n_train = len(data.train_names)
    samples = asked["samples_per_epoch"] or (
        n_train if patch is None else max(batch_size, 2 * n_train)
    )
    settings = TrainSettings(
        arch=asked["arch"], data=data.path, input_size=tuple(input_size), epochs=asked["epochs"],
        lr=asked["lr"], batch_size=batch_size, weight_decay=asked["weight_decay"],
        seed=asked["seed"], val_fraction=asked["val_fraction"], patch_size=patch,
        pos_ratio=asked["pos_ratio"], samples_per_epoch=samples,
        warmup_fraction=asked["warmup_fraction"], val_overlap=asked["val_overlap"],
        augment=asked["augment"], options=options, normalization=normalization,
        device=device.type, device_requested=config.device, threads=config.threads,
    )
    return settings, data


def _asked(config: TrainConfig, stored: RunConfig | None) -> dict[str, Any]:
    """Defaults overlaid with what was given, or on resume with what the run stored."""
    if stored is None:
        chosen = config.given(config.arch or DEFAULTS["arch"])
    else:
        chosen = stored_request(stored)
        if "data" not in chosen:
            raise SegrobError("cannot resume: the run's config.json does not name its dataset")
    return {**DEFAULTS, **chosen}


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


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block on ``threads`` CPU threads (``None``: leave torch's setting) and restore
    the previous count afterwards, so one training run does not change the next one's."""
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def new_run_config(settings: TrainSettings, data: TrainingData) -> RunConfig:
    """The config of a run about to train with ``settings`` on ``data`` (no history yet;
    ``options`` are the requested ones until the model resolves them)."""
    return RunConfig(
        arch=settings.arch, spatial_dims=data.spatial_dims, in_channels=data.in_channels,
        out_channels=data.out_channels, options=dict(settings.options),
        normalization=dict(settings.normalization),
        patch_size=list(settings.patch_size) if settings.patch_size else None,
        train=settings.train_record(), data=data.describe(),
        versions=package_versions("torch", "numpy", "python"),
    )
