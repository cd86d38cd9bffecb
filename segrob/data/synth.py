"""Synthetic, complexity-graded datasets, 2D and 3D: the more the foreground's texture is mixed
with the background's (the blend), the harder the task.

Every case draws from its own generator seeded by ``(seed, index)``, so a case does not depend
on how many others were made, and the same command writes the same bytes.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from segrob import __version__
from segrob.data.blend import blend_textures, to_intensity
from segrob.data.case import Case
from segrob.data.complexity import complexity_level, texture_distance
from segrob.data.formats import write_array
from segrob.data.shapes import bezier_blob_2d, blobs_3d
from segrob.data.textures import PROCEDURAL_FAMILIES, TEXTURE_FAMILIES, make_texture
from segrob.errors import SegrobError
from segrob.io_utils import write_json_atomic

# Real photographs (scikit-image ships three) exist in 2D only.
DEFAULT_FAMILIES = {2: (*PROCEDURAL_FAMILIES, "photo"), 3: PROCEDURAL_FAMILIES}

#: The texture distance recorded in segrob.json is measured at the authors' 256 px.
PAPER_RESIZE = 256

FORMATS = {"tiff": ".tif", "nifti": ".nii.gz", "npy": ".npy"}


@dataclass(frozen=True)
class SynthConfig:
    """What to generate. ``fg_fraction`` is the (min, max) foreground share of each image.

    Kamath et al. 2023's protocol (``segrob study skip --protocol paper``) is two options away:
    ``texture_pair`` (foreground, background) fixes one texture pair for every case, each case a
    random crop of one sheet per family drawn from ``texture_seed``; ``mask_seed`` draws the
    masks from their own generator, so datasets that differ only in ``blend`` share one mask set.
    """

    dims: int = 2
    n: int = 100
    size: int = 128
    blend: float = 0.5
    level: str | None = "medium"
    seed: int = 0
    families: tuple[str, ...] = ()
    fg_fraction: tuple[float, float] = (0.08, 0.3)
    n_blobs: tuple[int, int] = (1, 3)
    fmt: str = "tiff"
    spacing: tuple[float, ...] = field(default=())
    texture_pair: tuple[str, ...] = ()
    texture_seed: int = 0
    mask_seed: int | None = None

    def check(self) -> SynthConfig:
        if self.dims not in (2, 3):
            raise SegrobError(f"--dims must be 2 or 3, got {self.dims}")
        if self.n < 1:
            raise SegrobError(f"--n must be at least 1, got {self.n}")
        if not 16 <= self.size <= 1024:
            raise SegrobError(f"--size must be between 16 and 1024, got {self.size}")
        if not 0.0 <= self.blend < 1.0:
            raise SegrobError(f"blend must be in [0, 1), got {self.blend}")
        if self.texture_pair and not self.families:
            return _replace(self, families=tuple(self.texture_pair)).check()
        if not self.families:
            return _replace(self, families=DEFAULT_FAMILIES[self.dims]).check()
        if self.texture_pair and (len(self.texture_pair) != 2 or len(set(self.texture_pair)) != 2):
            raise SegrobError(f"texture_pair must name two different families, got {self.texture_pair}")
        unknown = [f for f in self.families if f not in TEXTURE_FAMILIES]
        if unknown:
            raise SegrobError(
                f"unknown texture family {unknown[0]!r} (valid: {', '.join(TEXTURE_FAMILIES)})"
            )
        if len(set(self.families)) < 2:
            raise SegrobError("need at least two texture families (foreground and background)")
        if self.dims == 3 and "photo" in self.families:
            raise SegrobError("the photo texture family is 2D only")
        low, high = self.fg_fraction
        if not 0.0 < low <= high < 0.9:
            raise SegrobError(f"--fg-fraction must satisfy 0 < min <= max < 0.9, got {low},{high}")
        if self.fmt not in FORMATS:
            raise SegrobError(f"unknown format {self.fmt!r} (valid: {', '.join(FORMATS)})")
        if self.dims == 3 and self.fmt == "tiff":
            return _replace(self, fmt="nifti")
        return self

    @property
    def voxel_spacing(self) -> tuple[float, ...]:
        return self.spacing or (1.0,) * self.dims


def _replace(config: SynthConfig, **changes: object) -> SynthConfig:
    values = asdict(config)
    values.update(changes)
    return SynthConfig(**values)  # type: ignore[arg-type]


def generate_case(config: SynthConfig, index: int) -> tuple[Case, dict]:
    """Make case ``index`` of ``config``; returns the case and what was drawn for it."""
    rng = np.random.default_rng([config.seed, index])
    shape = (config.size,) * config.dims
    if config.texture_pair:
        fg_family, bg_family = config.texture_pair
    else:
        fg_family, bg_family = rng.choice(np.array(config.families), size=2, replace=False).tolist()
    mask_rng = rng if config.mask_seed is None else np.random.default_rng([config.mask_seed, index])
    fraction = float(mask_rng.uniform(*config.fg_fraction))
    if config.dims == 2:
        mask = bezier_blob_2d(shape, mask_rng, area_fraction=fraction)  # type: ignore[arg-type]
    else:
        n_blobs = int(mask_rng.integers(config.n_blobs[0], config.n_blobs[1] + 1))
        mask = blobs_3d(shape, mask_rng, volume_fraction=fraction, n_blobs=n_blobs)  # type: ignore[arg-type]
    if config.texture_pair:
        foreground = _crop(_sheet(fg_family, config.dims, config.size, config.texture_seed, 0), shape, rng)
        background = _crop(_sheet(bg_family, config.dims, config.size, config.texture_seed, 1), shape, rng)
    else:
        foreground = make_texture(fg_family, shape, rng)
        background = make_texture(bg_family, shape, rng)
    image = to_intensity(blend_textures(foreground, background, mask, config.blend))
    case = Case(
        name=f"case_{index:04d}",
        image=image[None],
        label=mask.astype(np.int32),
        spacing=config.voxel_spacing,
    )
    drawn = {
        "name": case.name,
        "fg_family": fg_family,
        "bg_family": bg_family,
        "blend": config.blend,
        "foreground_ratio": round(case.foreground_ratio, 6),
    }
    return case, drawn


@functools.lru_cache(maxsize=4)
def _sheet(family: str, dims: int, size: int, seed: int, role: int) -> np.ndarray:
    """One texture twice the image's edge, the paper's fixed texture image, drawn once per seed."""
    sheet = make_texture(family, (2 * size,) * dims, np.random.default_rng([seed, role, 7919]))
    sheet.flags.writeable = False
    return sheet


def _crop(sheet: np.ndarray, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    corner = [int(rng.integers(0, s - e + 1)) for s, e in zip(sheet.shape, shape, strict=True)]
    window = tuple(slice(c, c + e) for c, e in zip(corner, shape, strict=True))
    return np.array(sheet[window], dtype=np.float32)


def generate(config: SynthConfig) -> list[Case]:
    """All cases of ``config`` in memory (for tests and small in-process runs)."""
    config = config.check()
    return [generate_case(config, i)[0] for i in range(config.n)]


def write_synthetic(config: SynthConfig, folder: Path, *, progress=None) -> dict:
    """Write ``config``'s cases to ``folder`` (images/ + labels/ + segrob.json); return the metadata.

    ``folder`` must exist and be empty; the CLI stages it with ``atomic_output_dir``.
    """
    config = config.check()
    suffix = FORMATS[config.fmt]
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "labels").mkdir(parents=True, exist_ok=True)
    drawn_cases, distances = [], []
    for index in range(config.n):
        case, drawn = generate_case(config, index)
        if config.dims == 2:
            distances.append(texture_distance(case.image, case.label, resize=PAPER_RESIZE))
        label_dtype = np.uint8 if config.fmt != "npy" else np.int32
        write_array(folder / "images" / f"{case.name}{suffix}", case.image[0], case.spacing)
        write_array(folder / "labels" / f"{case.name}{suffix}", case.label.astype(label_dtype), case.spacing)
        drawn_cases.append(drawn)
        if progress is not None:
            progress(index + 1, config.n)
    metadata = synthetic_metadata(config, drawn_cases)
    metadata["texture_distance"] = _distance_record(distances)
    write_json_atomic(folder / "segrob.json", metadata)
    return metadata


def _distance_record(distances: list[float | None]) -> dict | None:
    """The dataset's median texture distance, measured the authors' way (3D: not measured,
    LBP over every resized slice costs more than generating the volumes)."""
    known = [d for d in distances if d is not None]
    if not known:
        return None
    median = float(np.median(known))
    return {"median": round(median, 6), "resize": PAPER_RESIZE, "cases": len(known),
            "level": complexity_level(median, PAPER_RESIZE)}


def synthetic_metadata(config: SynthConfig, drawn_cases: list[dict]) -> dict:
    ratios = [c["foreground_ratio"] for c in drawn_cases]
    return {
        "generator": f"segrob.synth{config.dims}d",
        "segrob_version": __version__,
        "dims": config.dims,
        "n": config.n,
        "size": config.size,
        "seed": config.seed,
        "blend": config.blend,
        "level": config.level,
        "families": list(config.families),
        "fg_fraction": list(config.fg_fraction),
        "n_blobs": list(config.n_blobs) if config.dims == 3 else None,
        "format": config.fmt,
        "spacing": list(config.voxel_spacing),
        "texture_pair": list(config.texture_pair) or None,
        "texture_seed": config.texture_seed if config.texture_pair else None,
        "mask_seed": config.mask_seed,
        "foreground_ratio": {"min": min(ratios), "max": max(ratios),
                             "mean": round(float(np.mean(ratios)), 6)},
        "cases": drawn_cases,
    }
