"""Seeded texture families for the synthetic complexity-graded data (2D and 3D).

Each family maps ``(shape, rng)`` to a float32 field with zero mean and unit variance, so two
textures differ in structure, not in brightness: a network must read texture to separate them,
which is what the skip-connection study grades.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

TextureFn = Callable[[tuple[int, ...], np.random.Generator], np.ndarray]


def _standardise(field: np.ndarray) -> np.ndarray:
    field = field.astype(np.float64)
    std = field.std()
    return ((field - field.mean()) / (std if std > 1e-12 else 1.0)).astype(np.float32)


def fractal_noise(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """1/f^beta noise: white noise shaped in Fourier space; beta in [1.2, 2.6] sets roughness."""
    beta = rng.uniform(1.2, 2.6)
    freqs = np.meshgrid(*[np.fft.fftfreq(n) for n in shape], indexing="ij", sparse=True)
    radius = np.sqrt(sum(f**2 for f in freqs))
    radius.flat[0] = 1.0
    spectrum = np.fft.fftn(rng.standard_normal(shape)) / radius ** (beta / 2.0)
    spectrum.flat[0] = 0.0
    return _standardise(np.fft.ifftn(spectrum).real)


def stripes(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Oriented sinusoidal stripes (a Gabor carrier) with a wobble and a little noise."""
    period = rng.uniform(4.0, 12.0)
    direction = rng.standard_normal(len(shape))
    direction /= np.linalg.norm(direction)
    grids = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")
    phase = sum(d * g for d, g in zip(direction, grids, strict=True))
    wobble = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=6.0)
    wobble *= 3.0 / (np.abs(wobble).max() + 1e-12)
    field = np.sin(2 * np.pi * (phase + wobble) / period)
    return _standardise(field + 0.15 * rng.standard_normal(shape))


def cellular(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Worley-style cells: distance to the nearest of random seed points."""
    cell = rng.uniform(5.0, 12.0)
    n_points = max(4, int(np.prod(shape) / cell ** len(shape)))
    seeds = np.ones(shape, dtype=bool)
    index = tuple(rng.integers(0, n, size=n_points) for n in shape)
    seeds[index] = False
    distance = ndimage.distance_transform_edt(seeds)
    return _standardise(distance + 0.1 * rng.standard_normal(shape))


def grains(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Sparse bright grains of random size on a smooth floor (like speckled tissue)."""
    density = rng.uniform(0.02, 0.08)
    size = rng.uniform(0.6, 1.6)
    spots = (rng.random(shape) < density).astype(np.float64)
    field = ndimage.gaussian_filter(spots, sigma=size)
    floor = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=4.0)
    return _standardise(field / (field.std() + 1e-12) + 0.3 * floor)


def photo(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """A random crop of a real texture photograph shipped with scikit-image (2D only)."""
    if len(shape) != 2:
        raise ValueError("the photo texture family is 2D only")
    from skimage import data as skdata

    name = ("brick", "grass", "gravel")[int(rng.integers(0, 3))]
    picture = getattr(skdata, name)().astype(np.float64)
    picture = np.rot90(picture, k=int(rng.integers(0, 4)))
    if any(s > p for s, p in zip(shape, picture.shape, strict=True)):
        reps = [int(np.ceil(s / p)) for s, p in zip(shape, picture.shape, strict=True)]
        picture = np.tile(picture, reps)
    top = int(rng.integers(0, picture.shape[0] - shape[0] + 1))
    left = int(rng.integers(0, picture.shape[1] - shape[1] + 1))
    return _standardise(picture[top : top + shape[0], left : left + shape[1]])


TEXTURE_FAMILIES: dict[str, TextureFn] = {
    "fractal": fractal_noise,
    "stripes": stripes,
    "cellular": cellular,
    "grains": grains,
    "photo": photo,
}
PROCEDURAL_FAMILIES = ("fractal", "stripes", "cellular", "grains")


def make_texture(family: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Draw one texture of ``family``; unknown families raise a ``KeyError`` listing the valid."""
    if family not in TEXTURE_FAMILIES:
        raise KeyError(f"unknown texture family {family!r} (valid: {', '.join(TEXTURE_FAMILIES)})")
    return TEXTURE_FAMILIES[family](tuple(int(s) for s in shape), rng)
