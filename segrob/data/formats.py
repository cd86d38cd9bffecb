"""Readers and writers for NIfTI, TIFF and NumPy files.

Every reader returns ``(array, spacing)`` with the array as stored and spacing in mm per
axis (or ``None`` when the file has none). Any failure to parse becomes a
:class:`~segrob.errors.SegrobError` naming the file.
"""

from __future__ import annotations

import gzip
import io
import json
import re
from pathlib import Path

import numpy as np

from segrob.errors import SegrobError, first_line

NIFTI_SUFFIXES = (".nii.gz", ".nii")
TIFF_SUFFIXES = (".tif", ".tiff")
NUMPY_SUFFIXES = (".npy", ".npz")
IMAGE_SUFFIXES = NIFTI_SUFFIXES + TIFF_SUFFIXES + NUMPY_SUFFIXES

# TIFF ResolutionUnit -> millimetres per unit.
_TIFF_UNIT_MM = {2: 25.4, 3: 10.0}


def split_suffix(path: str | Path) -> tuple[str, str]:
    """Split ``name.nii.gz`` into ``("name", ".nii.gz")``; unknown suffixes give ``""``."""
    name = Path(path).name
    for suffix in IMAGE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)], suffix
    return name, ""


def is_image_file(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and split_suffix(path)[1] != ""


def read_array(path: str | Path) -> tuple[np.ndarray, tuple[float, ...] | None]:
    """Read an array and its spacing from any supported file."""
    path = Path(path)
    if not path.is_file():
        raise SegrobError(f"{path}: file not found")
    suffix = split_suffix(path)[1].lower()
    try:
        if suffix in NIFTI_SUFFIXES:
            return _read_nifti(path)
        if suffix in TIFF_SUFFIXES:
            return _read_tiff(path)
        if suffix in NUMPY_SUFFIXES:
            return _read_numpy(path)
    except SegrobError:
        raise
    except Exception as error:  # every parser failure is a bad file, told in one line
        kind = {".npy": "NumPy", ".npz": "NumPy"}.get(suffix, "TIFF" if "tif" in suffix else "NIfTI")
        raise SegrobError(f"{path}: cannot read {kind} file ({parser_reason(error)})") from None
    raise SegrobError(f"{path}: unsupported file type (use one of {', '.join(IMAGE_SUFFIXES)})")


# Parsers quote what they found ("not a TIFF file b'root:x:0'"): never echo a file's bytes.
_QUOTED = re.compile(r"""b?'[^']*'|b?"[^"]*"|\\x[0-9a-fA-F]{2}|0x[0-9a-fA-F]+""")


def read_json_object(path: Path) -> dict:
    """A small JSON file that must hold an object (``dataset.json``, ``segrob.json``); ``{}`` when
    the file is absent. A broken file is one line naming it, never its content."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise SegrobError(f"{path}: not valid JSON ({parser_reason(error)})") from None
    if not isinstance(data, dict):
        raise SegrobError(f"{path}: expected a JSON object")
    return data


def parser_reason(error: BaseException) -> str:
    """Why a parser failed, in one line that never repeats the file's content."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    # Quoted content goes before the cut, so a cut quote never leaks what it held.
    text = _QUOTED.sub("...", first_line(error))
    if not text.isascii() or not text.isprintable():
        return type(error).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def _read_nifti(path: Path) -> tuple[np.ndarray, tuple[float, ...]]:
    import nibabel as nib

    image = nib.load(str(path))
    data = np.asarray(image.dataobj)
    zooms = tuple(float(z) for z in image.header.get_zooms()[: min(3, data.ndim)])
    # 2D images are often stored as (X, Y, 1) volumes; keep them 2D.
    if data.ndim == 3 and data.shape[2] == 1:
        data = data[:, :, 0]
        zooms = zooms[:2]
    elif data.ndim == 4 and data.shape[2] == 1:
        data = data[:, :, 0, :]
        zooms = zooms[:2]
    return data, zooms


def _read_tiff(path: Path) -> tuple[np.ndarray, tuple[float, ...] | None]:
    import tifffile

    with tifffile.TiffFile(str(path)) as tif:
        data = tif.asarray()
        page = tif.pages[0]
        tags = page.tags
        spacing: tuple[float, ...] | None = None
        if "XResolution" in tags and "YResolution" in tags:
            unit = int(tags["ResolutionUnit"].value) if "ResolutionUnit" in tags else 1
            mm_per_unit = _TIFF_UNIT_MM.get(unit)
            if mm_per_unit is not None:
                x_num, x_den = tags["XResolution"].value
                y_num, y_den = tags["YResolution"].value
                if x_num and y_num:
                    spacing = (mm_per_unit * y_den / y_num, mm_per_unit * x_den / x_num)
        imagej = tif.imagej_metadata or {}
        if spacing is not None and data.ndim >= 3 and "spacing" in imagej:
            spacing = (float(imagej["spacing"]), *spacing)
    return data, spacing


def _read_numpy(path: Path) -> tuple[np.ndarray, tuple[float, ...] | None]:
    if path.suffix.lower() == ".npy":
        return np.load(path, allow_pickle=False), None
    with np.load(path, allow_pickle=False) as archive:
        keys = list(archive.keys())
        key = "image" if "image" in keys else ("label" if "label" in keys else keys[0])
        spacing = tuple(float(s) for s in archive["spacing"]) if "spacing" in keys else None
        return archive[key], spacing


def write_array(path: str | Path, array: np.ndarray, spacing: tuple[float, ...]) -> Path:
    """Write ``array`` (spatial axes last, channels first if any) with its spacing.

    NIfTI and TIFF writes are byte-for-byte deterministic: no timestamps are stored.
    """
    path = Path(path)
    suffix = split_suffix(path)[1].lower()
    if suffix in NIFTI_SUFFIXES:
        _write_nifti(path, array, spacing)
    elif suffix in TIFF_SUFFIXES:
        _write_tiff(path, array, spacing)
    elif suffix == ".npy":
        np.save(path, array, allow_pickle=False)
    elif suffix == ".npz":
        with open(path, "wb") as handle:
            np.savez_compressed(handle, image=array, spacing=np.asarray(spacing, dtype=np.float64))
    else:
        raise SegrobError(f"{path}: unsupported file type (use one of {', '.join(IMAGE_SUFFIXES)})")
    return path


def _write_nifti(path: Path, array: np.ndarray, spacing: tuple[float, ...]) -> None:
    import nibabel as nib

    spatial = len(spacing)
    # NIfTI keeps channels as the last axis (as MSD does): (X, Y, Z, C).
    data = np.moveaxis(array, 0, -1) if array.ndim > spatial else array
    affine = np.diag([*spacing, *([1.0] * (3 - spatial)), 1.0]).astype(np.float64)
    image = nib.Nifti1Image(np.ascontiguousarray(data), affine)
    image.header.set_zooms(tuple(spacing) + (1.0,) * (data.ndim - spatial))
    image.header.set_xyzt_units("mm")
    raw = image.to_bytes()
    if path.name.lower().endswith(".gz"):
        buffer = io.BytesIO()
        with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, filename="") as handle:
            handle.write(raw)
        raw = buffer.getvalue()
    path.write_bytes(raw)


def _write_tiff(path: Path, array: np.ndarray, spacing: tuple[float, ...]) -> None:
    import tifffile

    pixels_per_cm = (10.0 / spacing[-1], 10.0 / spacing[-2])
    if len(spacing) == 3:
        tifffile.imwrite(
            path,
            array,
            imagej=True,
            resolution=pixels_per_cm,
            resolutionunit="CENTIMETER",
            metadata={"spacing": spacing[0], "unit": "mm", "axes": "ZYX" if array.ndim == 3 else "CZYX"},
        )
    else:
        rgb = array.ndim == 3 and array.shape[-1] in (3, 4)
        tifffile.imwrite(path, array, resolution=pixels_per_cm, resolutionunit="CENTIMETER",
                         photometric="rgb" if rgb else "minisblack")
