"""Training data in memory: loaded, checked, normalised once, and split by the seed."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from segrob.data import load_dataset
from segrob.data.normalize import check_normalization, normalize
from segrob.errors import SegrobError


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

    @property
    def n_cases(self) -> int:
        return len(self.train_names) + len(self.val_names)

    @property
    def shapes(self) -> set[tuple[int, ...]]:
        return {tuple(img.shape[1:]) for img in self.train_images + self.val_images}

    def describe(self) -> dict[str, Any]:
        """The ``data`` section of ``config.json``."""
        return {"path": self.path, "n_cases": self.n_cases, "kind": self.kind,
                "metadata": self.metadata, "val_cases": list(self.val_names)}


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
) -> TrainingData:
    """Read every case of ``path``, check it can train one model, normalise and split it.

    Raises:
        SegrobError: an unlabelled case, mixed 2D/3D cases or channel counts, or too few cases.
    """
    spec = check_normalization(normalization)
    dataset = load_dataset(path)
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
