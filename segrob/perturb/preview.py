"""A contact sheet of what a suite does: rows = perturbations, columns = severity 0..5.

One case of the dataset, each cell drawn with the audit's per-case seed, its label drawn as a
contour (geometric members move it). 3D volumes show the slice through the largest extent of the
label (see :mod:`segrob.render.slices`); pixels keep the proportions of the voxel spacing.
Three-channel images are shown in colour, others by their first channel. Intensities share one
robust scale over the whole sheet, so brightness and contrast shifts stay visible.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segrob.data.dataset import Dataset
from segrob.errors import SegrobError
from segrob.io_utils import check_output_file, write_output_file
from segrob.perturb.apply_dataset import perturb_case
from segrob.perturb.suites import Suite
from segrob.render.slices import SliceView, choose_view

#: Inches of one tile's longer side.
TILE_INCHES = 1.4
#: The PNG's Software tag: how ``--overwrite`` recognises a sheet segrob wrote.
SHEET_SOFTWARE = "segrob contact sheet"


@dataclass(frozen=True)
class ContactSheet:
    """The drawn views: ``cells[(row, severity)] = (image (H, W, K), label (H, W))``."""

    names: list[str]
    columns: int
    view: SliceView
    cells: dict[tuple[int, int], tuple[np.ndarray, np.ndarray | None]]


def _view(array: np.ndarray, view: SliceView, *, channels: bool) -> np.ndarray:
    if channels:
        array = array[:3] if array.shape[0] == 3 else array[:1]
        return np.moveaxis(view.take(array), 0, -1)
    return view.take(array)


def contact_sheet(dataset: Dataset, suite: Suite, *, seed: int = 0, case_index: int = 0) -> ContactSheet:
    """Perturb one case with every member and severity of ``suite`` and take the views to draw."""
    if not 0 <= case_index < len(dataset):
        raise SegrobError(f"case index {case_index} is out of range (0..{len(dataset) - 1})")
    if not suite.entries:
        raise SegrobError(f"suite {suite.name} has no perturbations to show")
    case = dataset[case_index]
    kept, _ = suite.for_spatial_dims(case.spatial_dims)
    if not kept.entries:
        raise SegrobError(f"no member of suite {suite.name} works on {case.spatial_dims}D images")
    view = choose_view(case.image.shape[1:], case.spacing, case.label)
    cells = {}
    for row, entry in enumerate(kept.entries):
        for severity in (0, *entry.severities):
            image, label = perturb_case(case, entry.perturbation, severity, seed=seed)[:2]
            image = image[0].detach().float().cpu().numpy()
            label = None if label is None else label[0].detach().cpu().numpy()
            cells[row, severity] = (_view(image, view, channels=True),
                                    None if label is None else _view(label, view, channels=False))
    columns = 1 + max(max(e.severities) for e in kept.entries)
    return ContactSheet([e.perturbation for e in kept.entries], columns, view, cells)


def write_contact_sheet(
    dataset: Dataset, suite: Suite, path: str | Path, *, seed: int = 0, case_index: int = 0,
    overwrite: bool = False,
) -> list[str]:
    """Draw the contact sheet of ``suite`` on one case (matplotlib) and write a PNG atomically.

    An existing ``path`` is replaced only with ``overwrite`` and only when it is a sheet segrob
    wrote.
    """
    check_output_file(path, overwrite=overwrite, inputs=(dataset.root,), is_ours=is_contact_sheet)
    sheet = contact_sheet(dataset, suite, seed=seed, case_index=case_index)
    figure = _figure(sheet)
    write_output_file(
        path,
        lambda staging: figure.savefig(staging, format="png", dpi=100, metadata={"Software": SHEET_SOFTWARE}),
        overwrite=overwrite, inputs=(dataset.root,), is_ours=is_contact_sheet,
    )
    return sheet.names


def is_contact_sheet(path: Path) -> bool:
    """Whether ``path`` is a PNG contact sheet segrob wrote (it names segrob as its software)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.format == "PNG" and image.info.get("Software") == SHEET_SOFTWARE
    except Exception:  # any unreadable file is simply not ours
        return False


def _figure(sheet: ContactSheet):
    from matplotlib.figure import Figure

    from segrob.render.plots import LABEL_COLOUR

    first_image = next(iter(sheet.cells.values()))[0]
    height, width = first_image.shape[0] * sheet.view.aspect, first_image.shape[1]
    tile_w = TILE_INCHES * min(1.0, width / height)
    tile_h = TILE_INCHES * min(1.0, height / width)
    rows = len(sheet.names)
    figure = Figure(figsize=(1.6 + sheet.columns * (tile_w + 0.1), 0.4 + rows * (tile_h + 0.1)), dpi=100)
    axes = figure.subplots(rows, sheet.columns, squeeze=False,
                           gridspec_kw={"left": 1.6 / (1.6 + sheet.columns * (tile_w + 0.1)),
                                        "right": 0.99, "top": 1 - 0.3 / (0.4 + rows * (tile_h + 0.1)),
                                        "bottom": 0.01, "wspace": 0.05, "hspace": 0.05})
    values = np.concatenate([image.ravel() for image, _ in sheet.cells.values()])
    values = values[np.isfinite(values)]
    low, high = np.percentile(values, [0.5, 99.5]) if values.size else (0.0, 1.0)
    high = high if high > low else low + 1.0
    for (row, column), axis in np.ndenumerate(axes):
        axis.set_xticks([])
        axis.set_yticks([])
        if row == 0:
            axis.set_title("clean" if column == 0 else f"severity {column}", fontsize=8)
        if column == 0:
            axis.set_ylabel(sheet.names[row], fontsize=8, rotation=0, ha="right", va="center")
        if (row, column) not in sheet.cells:
            axis.set_frame_on(False)  # a severity that was not asked for stays blank
            continue
        image, label = sheet.cells[row, column]
        shown = np.clip((image - low) / (high - low), 0, 1)
        axis.imshow(shown if shown.shape[2] == 3 else shown[..., 0], cmap="gray", vmin=0, vmax=1,
                    aspect=sheet.view.aspect, interpolation="nearest")
        if label is not None and np.any(label):
            axis.contour((label > 0).astype(np.float32), levels=[0.5], colors=LABEL_COLOUR, linewidths=0.8)
    return figure
