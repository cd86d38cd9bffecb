"""A contact sheet of what a suite does: rows = perturbations, columns = severity 0..5.

One case of the dataset, each cell drawn with the audit's per-case seed. 3D volumes show the
middle slice across their largest axis; three-channel images are shown in colour, others by
their first channel. Intensities share one robust scale over the whole sheet, so brightness and
contrast shifts stay visible.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from segrob.data.dataset import Dataset
from segrob.errors import SegrobError
from segrob.io_utils import check_output_file, write_output_file
from segrob.perturb.apply_dataset import perturb_case
from segrob.perturb.suites import Suite

TILE = 128
GAP = 4
LABEL_WIDTH = 180
HEADER = 20
SHEET_SOFTWARE = "segrob contact sheet"


def _view(image: torch.Tensor) -> np.ndarray:
    """``(C, *spatial)`` -> ``(H, W, K)`` float with K = 3 (RGB) or 1; 3D: the middle slice."""
    array = image.detach().float().cpu().numpy()
    array = array[:3] if array.shape[0] == 3 else array[:1]
    if array.ndim == 4:
        axis = 1 + int(np.argmax(array.shape[1:]))
        array = np.take(array, array.shape[axis] // 2, axis=axis)
    return np.moveaxis(array, 0, -1)


def _fit(view: np.ndarray, height: int, width: int) -> np.ndarray:
    tensor = torch.from_numpy(np.ascontiguousarray(np.moveaxis(view, -1, 0)))[None]
    resized = torch.nn.functional.interpolate(tensor, size=(height, width), mode="bilinear",
                                              align_corners=False)
    return np.moveaxis(resized[0].numpy(), 0, -1)


def contact_sheet(
    dataset: Dataset, suite: Suite, *, seed: int = 0, case_index: int = 0, tile: int = TILE
) -> tuple[np.ndarray, list[str], int]:
    """The sheet as a uint8 ``(rows x columns)`` grid of tiles with white gaps and blank cells.

    Returns:
        ``(grid (H, W, K), row names, number of severity columns)``; ``K`` is 1 or 3.
    """
    if not 0 <= case_index < len(dataset):
        raise SegrobError(f"case index {case_index} is out of range (0..{len(dataset) - 1})")
    if not suite.entries:
        raise SegrobError(f"suite {suite.name} has no perturbations to show")
    case = dataset[case_index]
    kept, _ = suite.for_spatial_dims(case.spatial_dims)
    if not kept.entries:
        raise SegrobError(f"no member of suite {suite.name} works on {case.spatial_dims}D images")
    columns = 1 + max(max(e.severities) for e in kept.entries)
    views = {}
    for row, entry in enumerate(kept.entries):
        for severity in (0, *entry.severities):
            out = perturb_case(case, entry.perturbation, severity, seed=seed)[0]
            views[row, severity] = _view(out[0])
    first = next(iter(views.values()))
    scale = tile / max(first.shape[:2])
    height, width = max(1, round(first.shape[0] * scale)), max(1, round(first.shape[1] * scale))
    channels = first.shape[2]
    grid = np.full((len(kept.entries) * (height + GAP), columns * (width + GAP), channels), np.nan,
                   np.float32)
    for (row, column), view in views.items():
        top, left = row * (height + GAP), column * (width + GAP)
        grid[top:top + height, left:left + width] = _fit(view, height, width)
    filled = grid[np.isfinite(grid)]
    low, high = np.percentile(filled, [0.5, 99.5]) if filled.size else (0.0, 1.0)
    scaled = np.clip((grid - low) / max(high - low, 1e-6), 0, 1) * 255
    # Gaps and severities a member does not run stay white.
    sheet = np.where(np.isfinite(scaled), scaled, 255).astype(np.uint8)
    return sheet, [e.perturbation for e in kept.entries], columns


def write_contact_sheet(
    dataset: Dataset, suite: Suite, path: str | Path, *, seed: int = 0, case_index: int = 0,
    overwrite: bool = False,
) -> list[str]:
    """Write the contact sheet of ``suite`` on one case as a PNG, atomically; returns the rows.

    A label column names each row and a header names each severity column. An existing
    ``path`` is replaced only with ``overwrite`` and only when it is a sheet segrob wrote.
    """
    from PIL import Image, ImageDraw, PngImagePlugin

    check_output_file(path, overwrite=overwrite, inputs=(dataset.root,), is_ours=is_contact_sheet)
    grid, names, columns = contact_sheet(dataset, suite, seed=seed, case_index=case_index)
    mode = "RGB" if grid.shape[2] == 3 else "L"
    white = (255, 255, 255) if mode == "RGB" else 255
    black = (0, 0, 0) if mode == "RGB" else 0
    canvas = Image.new(mode, (grid.shape[1] + LABEL_WIDTH, grid.shape[0] + HEADER), color=white)
    canvas.paste(Image.fromarray(grid if mode == "RGB" else grid[..., 0]), (LABEL_WIDTH, HEADER))
    draw = ImageDraw.Draw(canvas)
    cell_w = grid.shape[1] // columns
    cell_h = grid.shape[0] // len(names)
    for column in range(columns):
        heading = "clean" if column == 0 else f"severity {column}"
        draw.text((LABEL_WIDTH + column * cell_w + 4, 4), heading, fill=black)
    for row, name in enumerate(names):
        draw.text((6, HEADER + row * cell_h + cell_h // 2 - 6), name, fill=black)
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", SHEET_SOFTWARE)
    write_output_file(path, lambda staging: canvas.save(staging, format="PNG", pnginfo=info),
                      overwrite=overwrite, inputs=(dataset.root,), is_ours=is_contact_sheet)
    return names


def is_contact_sheet(path: Path) -> bool:
    """Whether ``path`` is a PNG contact sheet segrob wrote (it names segrob as its software)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.format == "PNG" and image.info.get("Software") == SHEET_SOFTWARE
    except Exception:  # any unreadable file is simply not ours
        return False
