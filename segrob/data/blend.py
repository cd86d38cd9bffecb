"""The complexity knob: how much the foreground texture is mixed with the background's."""

from __future__ import annotations

import numpy as np

from segrob.errors import SegrobError

# Blend per named level. Calibrated so the measured texture distance (segrob.data.complexity)
# separates the levels clearly on segrob's generator; see benchmarks/calibrate_complexity.py.
COMPLEXITY_LEVELS: dict[str, float] = {"low": 0.1, "medium": 0.5, "high": 0.8}


def blend_for(level: str | None, blend: float | None) -> tuple[float, str | None]:
    """Resolve ``--complexity`` / ``--blend`` to a blend value and its level name (if any)."""
    if blend is not None:
        if not 0.0 <= blend < 1.0:
            raise SegrobError(f"blend must be in [0, 1), got {blend}")
        named = [name for name, value in COMPLEXITY_LEVELS.items() if value == blend]
        return float(blend), (named[0] if named else None)
    level = level or "medium"
    if level not in COMPLEXITY_LEVELS:
        raise SegrobError(
            f"unknown complexity level {level!r} (valid: {', '.join(COMPLEXITY_LEVELS)})"
        )
    return COMPLEXITY_LEVELS[level], level


def blend_textures(
    foreground: np.ndarray, background: np.ndarray, mask: np.ndarray, blend: float
) -> np.ndarray:
    """Inside the mask ``(1 - blend) * T_fg + blend * T_bg``, outside ``T_bg``.

    The mixture inside is rescaled to unit variance (two independent unit-variance textures
    mixed lose contrast), so that only texture, never the local contrast, tells the regions
    apart. At ``blend -> 1`` the foreground becomes background and the task impossible.
    """
    mixed = (1.0 - blend) * foreground + blend * background
    mixed /= np.sqrt((1.0 - blend) ** 2 + blend**2)
    return np.where(mask, mixed, background).astype(np.float32)


def to_intensity(field: np.ndarray) -> np.ndarray:
    """Map a unit-variance field to image intensities in [0, 1] (mean .5, std .15, clipped)."""
    return np.clip(0.5 + 0.15 * field, 0.0, 1.0).astype(np.float32)
