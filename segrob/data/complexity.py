"""Task complexity as texture distance (Kamath et al., MICCAI 2023).

``TD = KL(h_fg || h_bg)`` in bits, where ``h_fg`` and ``h_bg`` are density histograms of
uniform local binary pattern codes (radius 3, 24 points) over the foreground and background,
summed over the bins that are non-zero in both. Large TD: the foreground texture stands apart
and the task is easy; TD near 0: the task is hard.

``resize=256`` measures as the authors' code does (to_skip_or_not, data/utils.py): every image
(every slice in 3D) resized to 256 x 256 with anti-aliasing and its label bilinearly, foreground
where the resized label is above 0, before the LBP. Only then does TD equal theirs; natively
(``resize=None``, the default) small images read higher. Each setting has its own thresholds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

import numpy as np

from segrob.data.case import Case
from segrob.errors import SegrobError

LBP_RADIUS = 3
LBP_POINTS = 24
N_CODES = LBP_POINTS + 2  # uniform patterns 0..P, plus one bin for all non-uniform ones
# Texture distance (bits) separating the levels per resize setting; calibrated on segrob's
# generator at 128 px at the blends of segrob.data.blend.COMPLEXITY_LEVELS
# (benchmarks/calibrate_complexity.py): at 256 the geometric means of the medians at
# neighbouring level blends (.27 and .06 bits). Resizing does not make TD size-free: 64 px
# images upsampled to 256 read about half their 128 px value.
THRESHOLDS_BY_RESIZE: dict[int | None, dict[str, float]] = {
    None: {"low": 0.3, "medium": 0.08},
    256: {"low": 0.27, "medium": 0.06},
}
LEVEL_THRESHOLDS = THRESHOLDS_BY_RESIZE[None]
RESIZES = tuple(r for r in THRESHOLDS_BY_RESIZE if r is not None)
MIN_REGION_PIXELS = 16
# Below this many foreground pixels per case the LBP histogram is noisy and TD reads high
# (at 64 px a high-complexity case measures about twice its 128 px value).
RELIABLE_FOREGROUND_PIXELS = 1500


@dataclass(frozen=True)
class CaseComplexity:
    """Texture distance of one case; ``None`` when it has no foreground or no background."""

    name: str
    texture_distance: float | None
    foreground_ratio: float
    level: str | None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ComplexityReport:
    """Per-case texture distances, their distribution and the dataset's level."""

    cases: tuple[CaseComplexity, ...]
    summary: dict[str, float | None]
    level: str | None
    thresholds: dict[str, float] = field(default_factory=lambda: dict(LEVEL_THRESHOLDS))
    skipped: int = 0
    warnings: tuple[str, ...] = ()
    resize: int | None = None

    @property
    def method(self) -> str:
        size = (f"each image (3D: slice) resized to {self.resize} x {self.resize} first, as the authors' "
                "code does" if self.resize else "at the images' own size")
        return (f"KL(fg || bg) in bits of uniform LBP histograms (R={LBP_RADIUS}, P={LBP_POINTS}), "
                f"{size}; 3D: codes pooled over slices along the longest axis")

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "resize": self.resize,
            "level": self.level,
            "thresholds_bits": {
                "low": f"TD >= {self.thresholds['low']}",
                "medium": f"{self.thresholds['medium']} <= TD < {self.thresholds['low']}",
                "high": f"TD < {self.thresholds['medium']}",
            },
            "summary": self.summary,
            "skipped": self.skipped,
            "warnings": list(self.warnings),
            "cases": [c.to_dict() for c in self.cases],
        }


def thresholds_for(resize: int | None) -> dict[str, float]:
    """The level thresholds (bits) calibrated for ``resize``; other sizes are refused."""
    if resize not in THRESHOLDS_BY_RESIZE:
        valid = ", ".join(str(r) for r in RESIZES)
        raise SegrobError(f"--resize takes {valid} (a size with calibrated thresholds), got {resize}")
    return THRESHOLDS_BY_RESIZE[resize]


def complexity_level(texture_distance: float | None, resize: int | None = None) -> str | None:
    """Map a texture distance (bits), measured with ``resize``, to ``low``/``medium``/``high``."""
    if texture_distance is None or not np.isfinite(texture_distance):
        return None
    thresholds = thresholds_for(resize)
    if texture_distance >= thresholds["low"]:
        return "low"
    if texture_distance >= thresholds["medium"]:
        return "medium"
    return "high"


def lbp_histograms(
    image: np.ndarray, foreground: np.ndarray, resize: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Counts of uniform LBP codes over the foreground and the background of a 2D or 3D image.

    Multi-channel images are averaged over channels first. 3D images are read slice by slice
    along their longest axis and the counts pooled, so every slice adds its texture.
    ``resize``: each plane resized to ``resize`` x ``resize`` first (see the module docstring).
    """
    from skimage.feature import local_binary_pattern

    gray = image.mean(axis=0) if image.ndim == foreground.ndim + 1 else image
    gray = _to_uint8(gray)
    if gray.ndim == 2:
        slices = [(gray, foreground)]
    else:
        axis = int(np.argmax(gray.shape))
        slices = zip(np.moveaxis(gray, axis, 0), np.moveaxis(foreground, axis, 0), strict=True)
    fg_counts = np.zeros(N_CODES, dtype=np.int64)
    bg_counts = np.zeros(N_CODES, dtype=np.int64)
    for plane, mask in slices:
        if resize:
            plane, mask = _resized(plane, mask, resize)
        if not mask.any() or mask.all():
            continue
        codes = local_binary_pattern(plane, LBP_POINTS, LBP_RADIUS, method="uniform").astype(np.int64)
        fg_counts += np.bincount(codes[mask], minlength=N_CODES)
        bg_counts += np.bincount(codes[~mask], minlength=N_CODES)
    return fg_counts, bg_counts


def kl_bits(p_counts: np.ndarray, q_counts: np.ndarray) -> float:
    """``sum p log2(p / q)`` over bins non-zero in both, with ``p``, ``q`` as densities."""
    p = p_counts / p_counts.sum()
    q = q_counts / q_counts.sum()
    both = (p > 0) & (q > 0)
    return float(np.sum(p[both] * np.log2(p[both] / q[both])))


def _resized(plane: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    from skimage.transform import resize

    grey = resize(plane.astype(np.float64), (size, size), anti_aliasing=True, preserve_range=True)
    # The authors resize the label bilinearly and call every pixel above 0 foreground.
    label = resize(mask.astype(np.float64), (size, size), order=1, anti_aliasing=False)
    return np.round(np.clip(grey, 0, 255)).astype(np.uint8), label > 0


def texture_distance(image: np.ndarray, label: np.ndarray, resize: int | None = None) -> float | None:
    """Texture distance of one labelled image ``(C, *spatial)``; foreground is ``label > 0``.

    Returns ``None`` when the foreground or background has fewer than 16 pixels.
    """
    foreground = np.asarray(label) > 0
    fg_counts, bg_counts = lbp_histograms(np.asarray(image), foreground, resize)
    if fg_counts.sum() < MIN_REGION_PIXELS or bg_counts.sum() < MIN_REGION_PIXELS:
        return None
    return kl_bits(fg_counts, bg_counts)


def measure_complexity(
    cases: Iterable[Case], *, progress: Callable[[int], None] | None = None, resize: int | None = None
) -> ComplexityReport:
    """Texture distance of every case, its distribution and the level of the median.

    Cases without foreground or background are kept in the report with ``None`` and counted
    as skipped, never silently dropped. ``resize=256`` measures as the authors' code does.
    """
    thresholds_for(resize)
    results = []
    foreground_pixels = []
    for index, case in enumerate(cases):
        if case.label is None:
            td = None
        else:
            td = texture_distance(case.image, case.label, resize)
            foreground_pixels.append(int(np.count_nonzero(case.label)))
        results.append(
            CaseComplexity(
                name=case.name,
                texture_distance=None if td is None else round(td, 6),
                foreground_ratio=round(case.foreground_ratio, 6),
                level=complexity_level(td, resize),
            )
        )
        if progress is not None:
            progress(index + 1)
    values = np.array([r.texture_distance for r in results if r.texture_distance is not None])
    summary = _summary(values)
    warnings = []
    if not resize and foreground_pixels and np.median(foreground_pixels) < RELIABLE_FOREGROUND_PIXELS:
        warnings.append(
            f"median foreground is {int(np.median(foreground_pixels))} pixels (< "
            f"{RELIABLE_FOREGROUND_PIXELS}): texture distance reads high on small regions, so "
            "the level may read easier than it is (thresholds were calibrated at 128 px; "
            "--resize 256 measures every image at one size)"
        )
    return ComplexityReport(
        cases=tuple(results),
        summary=summary,
        level=complexity_level(summary["median"], resize),
        thresholds=dict(thresholds_for(resize)),
        skipped=len(results) - len(values),
        warnings=tuple(warnings),
        resize=resize,
    )


def _summary(values: np.ndarray) -> dict[str, float | None]:
    if values.size == 0:
        return dict.fromkeys(("n", "mean", "std", "min", "p5", "median", "p95", "max"))
    return {
        "n": int(values.size),
        "mean": round(float(values.mean()), 6),
        "std": round(float(values.std()), 6),
        "min": round(float(values.min()), 6),
        "p5": round(float(np.percentile(values, 5)), 6),
        "median": round(float(np.median(values)), 6),
        "p95": round(float(np.percentile(values, 95)), 6),
        "max": round(float(values.max()), 6),
    }


def _to_uint8(image: np.ndarray) -> np.ndarray:
    """Quantise to 0..255 over the 0.5-99.5 percentile range: LBP wants integer grey levels."""
    low, high = np.percentile(image, [0.5, 99.5])
    if high - low < 1e-12:
        return np.zeros(image.shape, dtype=np.uint8)
    scaled = (np.clip(image, low, high) - low) / (high - low) * 255.0
    return np.round(scaled).astype(np.uint8)
