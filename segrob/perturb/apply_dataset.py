"""Apply perturbations to a dataset's cases (for `segrob perturb`): write them, or a contact sheet."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from segrob.data.dataset import Dataset
from segrob.data.formats import split_suffix, write_array
from segrob.perturb.base import apply_perturbation
from segrob.perturb.seeding import derive_seed
from segrob.perturb.suites import SuiteEntry


def perturb_dataset(
    dataset: Dataset,
    entries: list[SuiteEntry],
    folder: Path,
    *,
    seed: int = 0,
    limit: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[dict]:
    """Write every (case, perturbation, severity) as ``images/`` + ``labels/`` into ``folder``.

    Output names are ``<case>__<perturbation>_s<severity>``; the seed of each is derived as in
    the audit, so ``segrob perturb`` shows exactly what an audit with the same seed applies.
    """
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "labels").mkdir(parents=True, exist_ok=True)
    applied = []
    names = dataset.names[:limit] if limit else dataset.names
    for index, name in enumerate(names):
        case = dataset.case(name)
        suffix = split_suffix(case.source.get("image", ""))[1] or ".nii.gz"
        image = torch.from_numpy(case.image)[None]
        label = torch.from_numpy(case.label)[None] if case.label is not None else None
        for entry in entries:
            for severity in entry.severities:
                case_seed = derive_seed(seed, case.name, entry.perturbation, severity)
                out, out_label, record = apply_perturbation(
                    entry.perturbation, image, label, severity=severity, seed=case_seed
                )
                stem = f"{case.name}__{entry.perturbation}_s{severity}"
                array = out[0].numpy()
                write_array(folder / "images" / f"{stem}{suffix}", array[0] if array.shape[0] == 1 else array,
                            case.spacing)
                if out_label is not None:
                    write_array(folder / "labels" / f"{stem}{suffix}",
                                out_label[0].numpy().astype(np.int32 if suffix == ".npy" else np.uint8),
                                case.spacing)
                applied.append({"case": case.name, "output": stem, **record.to_dict()})
        if progress is not None:
            progress(index + 1)
    return applied


def contact_sheet(
    dataset: Dataset, entries: list[SuiteEntry], *, seed: int = 0, case_index: int = 0, tile: int = 128
) -> tuple[np.ndarray, list[str]]:
    """A grey uint8 grid: one row per perturbation, columns severity 0..5 (3D: middle slice)."""
    case = dataset[case_index]
    image = torch.from_numpy(case.image)[None]
    label = torch.from_numpy(case.label)[None] if case.label is not None else None
    rows, names = [], []
    columns = 1 + max(max(e.severities) for e in entries)
    for entry in entries:
        row = []
        for severity in range(columns):
            if severity and severity not in entry.severities:
                row.append(np.zeros((tile, tile), np.float32))
                continue
            case_seed = derive_seed(seed, case.name, entry.perturbation, severity)
            out = apply_perturbation(entry.perturbation, image, label, severity=severity, seed=case_seed)[0]
            row.append(_tile(out[0, 0].numpy(), tile))
        rows.append(np.concatenate(row, axis=1))
        names.append(entry.perturbation)
    grid = np.concatenate(rows, axis=0)
    low, high = np.percentile(grid, [0.5, 99.5])
    scaled = np.clip((grid - low) / max(high - low, 1e-6), 0, 1)
    return (scaled * 255).astype(np.uint8), names


def _tile(array: np.ndarray, tile: int) -> np.ndarray:
    if array.ndim == 3:
        axis = int(np.argmax(array.shape))
        array = np.take(array, array.shape[axis] // 2, axis=axis)
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None, None]
    resized = torch.nn.functional.interpolate(tensor, size=(tile, tile), mode="bilinear", align_corners=False)
    return resized[0, 0].numpy()


def save_contact_sheet(grid: np.ndarray, names: list[str], path: Path, *, tile: int = 128) -> None:
    """Write the grid as a PNG with a label column naming each row and a header of severities."""
    from PIL import Image, ImageDraw

    label_width, header = 170, 18
    canvas = Image.new("L", (grid.shape[1] + label_width, grid.shape[0] + header), color=255)
    canvas.paste(Image.fromarray(grid), (label_width, header))
    draw = ImageDraw.Draw(canvas)
    for column in range(grid.shape[1] // tile):
        heading = "clean" if column == 0 else f"severity {column}"
        draw.text((label_width + column * tile + 4, 3), heading, fill=0)
    for row, name in enumerate(names):
        draw.text((4, header + row * tile + tile // 2 - 6), name, fill=0)
    canvas.save(path, format="PNG")
