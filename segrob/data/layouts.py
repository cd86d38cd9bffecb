"""Find the (image files, label file) pairs of a dataset folder, whatever its layout.

Supported layouts, tried in this order:

* ``msd``: Medical Segmentation Decathlon, ``dataset.json`` with a ``training`` list of
  ``{"image": ..., "label": ...}`` (multi-channel images are 4D NIfTI).
* ``nnunet``: nnU-Net v2 raw, ``imagesTr/<case>_<XXXX><ending>`` (one file per channel),
  ``labelsTr/<case><ending>``, ``dataset.json`` with ``channel_names`` and ``file_ending``.
* ``images-labels``: ``images/`` and ``labels/`` with files matched by name (segrob's own).

Every case file must resolve (symbolic links followed) inside the dataset folder unless the
caller passes ``allow_outside=True``; a broken or looping link is an error, never a quietly
dropped case.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from segrob.data.formats import is_image_file, read_json_object, split_suffix
from segrob.errors import SegrobError

_CHANNEL_SUFFIX = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


@dataclass(frozen=True)
class CaseFiles:
    """Where one case lives on disk: one file per channel group, and its label file."""

    name: str
    images: tuple[Path, ...]
    label: Path | None


@dataclass(frozen=True)
class Layout:
    """A discovered dataset: its kind, root, cases and any ``dataset.json`` content."""

    kind: str
    root: Path
    cases: tuple[CaseFiles, ...]
    description: dict

    @property
    def labels(self) -> DatasetLabels:
        return dataset_labels(self.description, self.root / "dataset.json")


@dataclass(frozen=True)
class DatasetLabels:
    """The label values a ``dataset.json`` declares, with their names, and the nnU-Net ``ignore``
    label (voxels left out of scoring). Empty when the dataset declares none."""

    names: dict[int, str]
    ignore: int | None = None

    def to_dict(self) -> dict:
        return {"names": {str(k): v for k, v in self.names.items()}, "ignore": self.ignore}


def dataset_labels(description: dict, source: Path | str = "dataset.json") -> DatasetLabels:
    """Read ``labels``: MSD writes ``{"0": "background", "1": "liver"}`` (value -> name), nnU-Net
    v2 ``{"background": 0, "liver": 1, "ignore": 3}`` (name -> value; a list is a region of
    several values, which has no single value to name)."""
    labels = description.get("labels")
    if labels is None:
        return DatasetLabels({})
    if not isinstance(labels, dict):
        raise SegrobError(f"{source}: labels must be an object such as {{\"0\": \"background\"}}")
    names: dict[int, str] = {}
    ignore = None
    for key, value in labels.items():
        if isinstance(value, str) and str(key).lstrip("-").isdigit():
            names[int(key)] = value
        elif isinstance(value, int) and not isinstance(value, bool):
            if key == "ignore":
                ignore = value
            else:
                names[value] = str(key)
        elif not isinstance(value, list):
            raise SegrobError(f"{source}: label {key!r}: expected a label value or a name, got {value!r}")
    return DatasetLabels(dict(sorted(names.items())), ignore)


def discover(root: str | Path, *, allow_outside: bool = False) -> Layout:
    """Detect the layout of ``root`` and list its cases, sorted by name.

    Raises:
        SegrobError: the folder is missing, of no known layout, empty, an image has no label,
            or a case file lies outside ``root`` (without ``allow_outside``) or is a broken link.
    """
    root = Path(root)
    if not root.exists():
        raise SegrobError(f"{root}: folder not found")
    if not root.is_dir():
        raise SegrobError(f"{root}: not a folder (a dataset is a folder of images and labels)")
    description = _read_description(root)
    if isinstance(description.get("training"), list) and description["training"]:
        cases = _msd_cases(root, description)
        kind = "msd"
    elif (root / "imagesTr").is_dir():
        cases = _nnunet_cases(root, description)
        kind = "nnunet"
    elif (root / "images").is_dir():
        cases = _images_labels_cases(root)
        kind = "images-labels"
    else:
        raise SegrobError(
            f"{root}: no dataset found (expected images/ + labels/, nnU-Net imagesTr/ + labelsTr/,"
            " or an MSD dataset.json)"
        )
    if not cases:
        raise SegrobError(f"{root}: dataset is empty (no image files found)")
    dataset_labels(description, root / "dataset.json")  # a malformed labels entry fails here
    if not allow_outside:
        for case in cases:
            for path in (*case.images, case.label):
                _check_inside(path, root)
    return Layout(kind=kind, root=root, cases=tuple(cases), description=description)


def _check_inside(path: Path | None, root: Path) -> None:
    if path is None:
        return
    resolved, base = path.resolve(), root.resolve()
    if resolved != base and base not in resolved.parents:
        raise SegrobError(
            f"{path}: lies outside the dataset folder {root} (resolves to {resolved}); segrob reads"
            " only files inside the dataset unless reading outside it is allowed explicitly"
        )


def _read_description(root: Path) -> dict:
    return read_json_object(root / "dataset.json")


def _label_for(labels_dir: Path, name: str, image: Path, *, required: bool) -> Path | None:
    if labels_dir.is_dir():
        for candidate in sorted(labels_dir.iterdir()):
            if is_image_file(candidate) and split_suffix(candidate)[0] == name:
                return candidate
    if required:
        raise SegrobError(f"{image}: image has no label (expected {labels_dir}/{name}.*)")
    return None


def _images_labels_cases(root: Path) -> list[CaseFiles]:
    labels_dir = root / "labels"
    labels = {split_suffix(p)[0]: p for p in _image_files(labels_dir)} if labels_dir.is_dir() else {}
    cases = []
    for image in _image_files(root / "images"):
        name = split_suffix(image)[0]
        if name not in labels:
            raise SegrobError(f"{image}: image has no label (expected {labels_dir}/{name}.*)")
        cases.append(CaseFiles(name=name, images=(image,), label=labels[name]))
    return cases


def _nnunet_cases(root: Path, description: dict) -> list[CaseFiles]:
    source = root / "dataset.json"
    ending = description.get("file_ending")
    channels = description.get("channel_names") or description.get("modality") or {}
    if ending is not None and not isinstance(ending, str):
        raise SegrobError(f"{source}: file_ending must be a string such as \".nii.gz\"")
    if not isinstance(channels, dict):
        raise SegrobError(f"{source}: channel_names must be an object such as {{\"0\": \"CT\"}}")
    grouped: dict[str, dict[int, Path]] = {}
    others: set[str] = set()
    for image in _image_files(root / "imagesTr"):
        stem, suffix = split_suffix(image)
        if ending and suffix != ending:
            others.add(suffix)
            continue
        match = _CHANNEL_SUFFIX.match(stem)
        if match is None:
            raise SegrobError(
                f"{image}: nnU-Net image names end in a channel suffix such as _0000"
            )
        grouped.setdefault(match["case"], {})[int(match["channel"])] = image
    if not grouped and others:
        raise SegrobError(f"{source}: file_ending {ending!r} matches no file in imagesTr (the images"
                          f" there end in {', '.join(sorted(others))})")
    labels = {split_suffix(p)[0]: p for p in _image_files(root / "labelsTr")}
    cases = []
    for name in sorted(grouped):
        files = grouped[name]
        expected = len(channels) or len(files)
        missing = [c for c in range(expected) if c not in files]
        if missing:
            raise SegrobError(f"{root / 'imagesTr'}: case {name} lacks channel file(s) {missing}")
        if name not in labels:
            raise SegrobError(
                f"{files[0]}: image has no label (expected {root / 'labelsTr'}/{name}{ending or '.*'})"
            )
        cases.append(CaseFiles(name=name, images=tuple(files[c] for c in sorted(files)),
                               label=labels[name]))
    return cases


def _msd_cases(root: Path, description: dict) -> list[CaseFiles]:
    cases = []
    source = root / "dataset.json"
    for index, entry in enumerate(description["training"]):
        if not isinstance(entry, dict) or "image" not in entry:
            raise SegrobError(f"{source}: training entry {index} has no 'image'")
        for key in ("image", "label"):
            if key in entry and not (isinstance(entry[key], str) and entry[key].strip()):
                raise SegrobError(f"{source}: training entry {index}: {key!r} must be a file path"
                                  f" (a non-empty string), got {type(entry[key]).__name__}")
        image = _listed_file(root, entry["image"], "file")
        label = entry.get("label")
        if label is None:
            raise SegrobError(f"{image}: image has no label in dataset.json")
        label_path = _listed_file(root, label, "label")
        cases.append(CaseFiles(name=split_suffix(image)[0], images=(image,), label=label_path))
    return sorted(cases, key=lambda c: c.name)


def _listed_file(root: Path, entry: str, what: str) -> Path:
    path = root / entry
    _check_link(path)
    if not path.is_file():
        raise SegrobError(f"{path}: {what} listed in dataset.json not found")
    return path


def _check_link(path: Path) -> None:
    if path.is_symlink() and not path.exists():
        raise SegrobError(f"{path}: broken or looping symbolic link")


def _image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    for entry in folder.iterdir():
        if split_suffix(entry)[1] and not entry.name.startswith("."):
            _check_link(entry)
    return sorted(p for p in folder.iterdir() if is_image_file(p))
