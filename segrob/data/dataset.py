"""A lazy dataset: cases are read from disk one at a time, when asked for."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from segrob.data.case import Case
from segrob.data.formats import read_array, read_json_object
from segrob.data.layouts import CaseFiles, Layout, discover
from segrob.errors import SegrobError

SEGROB_METADATA_FILE = "segrob.json"
#: Voxel spacings accepted from a file's header, in mm: 10 nm (microscopy) to 10 m.
SPACING_RANGE_MM = (1e-5, 1e4)


class Dataset:
    """The cases of a dataset folder, loaded lazily and validated on load.

    ``len(ds)``, ``ds[i]``, ``ds.case(name)`` and iteration each read only what they return,
    so a 500-case NIfTI dataset never sits in memory at once.
    """

    def __init__(self, layout: Layout):
        self.layout = layout
        self._files = {c.name: c for c in layout.cases}

    @property
    def root(self) -> Path:
        return self.layout.root

    @property
    def kind(self) -> str:
        return self.layout.kind

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.layout.cases]

    @property
    def metadata(self) -> dict:
        """``segrob.json`` written by segrob's generators, or ``{}`` for other datasets."""
        return read_json_object(self.root / SEGROB_METADATA_FILE)

    def __len__(self) -> int:
        return len(self.layout.cases)

    def __getitem__(self, index: int) -> Case:
        return load_case(self.layout.cases[index])

    def __iter__(self) -> Iterator[Case]:
        for files in self.layout.cases:
            yield load_case(files)

    def case(self, name: str) -> Case:
        if name not in self._files:
            raise SegrobError(f"{self.root}: no case named {name!r}")
        return load_case(self._files[name])

    def subset(self, names: list[str]) -> Dataset:
        """A dataset over the named cases only (same layout and root)."""
        missing = [n for n in names if n not in self._files]
        if missing:
            raise SegrobError(f"{self.root}: no case named {missing[0]!r}")
        cases = tuple(self._files[n] for n in names)
        return Dataset(Layout(self.layout.kind, self.root, cases, self.layout.description))


def load_dataset(path: str | Path, *, allow_outside: bool = False) -> Dataset:
    """Open a dataset folder of any supported layout (see :mod:`segrob.data.layouts`).

    ``allow_outside`` lets case files resolve outside the folder (by default that is refused).
    """
    return Dataset(discover(path, allow_outside=allow_outside))


def load_case(files: CaseFiles) -> Case:
    """Read and validate one case: channels first, integer labels, finite values."""
    label = spacing = None
    if files.label is not None:
        raw_label, spacing = read_array(files.label)
        label = _as_label(raw_label, files.label)
    channels = []
    for path in files.images:
        array, image_spacing = read_array(path)
        spacing = spacing or image_spacing
        channels.append(_channels_first(array, label, path))
    image = np.concatenate(channels, axis=0) if len(channels) > 1 else channels[0]
    if label is not None and image.shape[1:] != label.shape:
        raise SegrobError(
            f"{files.images[0]}: image shape {image.shape[1:]} does not match label shape "
            f"{label.shape} ({files.label})"
        )
    if image.ndim - 1 not in (2, 3):
        raise SegrobError(f"{files.images[0]}: expected a 2D or 3D image, got shape {image.shape}")
    if not np.isfinite(image).all():
        bad = int(np.size(image) - np.count_nonzero(np.isfinite(image)))
        raise SegrobError(f"{files.images[0]}: image has {bad} NaN or Inf voxel(s)")
    spacing = _spacing(spacing, image.ndim - 1, files.label or files.images[0])
    source = {"image": str(files.images[0])}
    if files.label is not None:
        source["label"] = str(files.label)
    return Case(name=files.name, image=image, label=label, spacing=spacing, source=source)


def _spacing(stored: tuple[float, ...] | None, spatial: int, path: Path) -> tuple[float, ...]:
    """The stored voxel spacing in mm, or 1 mm per axis when the file stores none.

    A stored spacing outside a physical range would make every distance metric meaningless,
    so it is refused rather than replaced.
    """
    if not stored:
        return (1.0,) * spatial
    spacing = tuple(float(s) for s in stored)[-spatial:]
    if len(spacing) != spatial:
        return (1.0,) * spatial
    low, high = SPACING_RANGE_MM
    if any(not np.isfinite(s) or not low <= s <= high for s in spacing):
        shown = ", ".join(f"{s:g}" for s in spacing)
        raise SegrobError(f"{path}: voxel spacing ({shown}) mm is outside {low:g}..{high:g} mm")
    return spacing


def _as_label(array: np.ndarray, path: Path) -> np.ndarray:
    if array.ndim not in (2, 3):
        raise SegrobError(f"{path}: label must be a 2D or 3D map, got shape {array.shape}")
    if np.issubdtype(array.dtype, np.integer) or array.dtype == bool:
        values = array
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all() or not np.array_equal(array, np.round(array)):
            raise SegrobError(f"{path}: label values are not integers (labels must be class ids)")
        values = array
    else:
        raise SegrobError(f"{path}: label has unsupported type {array.dtype}")
    if values.size and values.min() < 0:
        raise SegrobError(f"{path}: label has negative values (labels must be class ids >= 0)")
    return np.ascontiguousarray(values, dtype=np.int32)


def _channels_first(array: np.ndarray, label: np.ndarray | None, path: Path) -> np.ndarray:
    """Bring an image to ``(C, *spatial)``, using the label's shape to tell channels apart."""
    array = np.asarray(array)
    if label is not None:
        if array.shape == label.shape:
            out = array[None]
        elif array.ndim == label.ndim + 1 and array.shape[1:] == label.shape:
            out = array
        elif array.ndim == label.ndim + 1 and array.shape[:-1] == label.shape:
            out = np.moveaxis(array, -1, 0)
        else:
            raise SegrobError(
                f"{path}: image shape {array.shape} does not match label shape {label.shape}"
            )
    elif array.ndim == 3 and array.shape[-1] in (3, 4) and array.shape[0] > 4:
        out = np.moveaxis(array, -1, 0)  # an RGB(A) picture
    else:
        out = array[None]
    if not (np.issubdtype(out.dtype, np.number) or out.dtype == bool):
        raise SegrobError(f"{path}: image has unsupported type {out.dtype}")
    return np.ascontiguousarray(out, dtype=np.float32)
