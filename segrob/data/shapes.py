"""Random smooth foreground shapes: closed Bezier blobs in 2D, deformed ellipsoids in 3D."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def bezier_blob_2d(
    shape: tuple[int, int], rng: np.random.Generator, *, area_fraction: float
) -> np.ndarray:
    """Fill a closed curve of cubic Bezier segments through random points around a centre.

    Control points sit at sorted random angles with random radii; each segment's handles follow
    the tangent of its neighbours (Catmull-Rom), which keeps the curve smooth and simple.
    ``area_fraction`` sets the expected share of the image the blob covers.
    """
    from skimage.draw import polygon

    height, width = shape
    n_points = int(rng.integers(5, 9))
    radius = np.sqrt(area_fraction * height * width / np.pi)
    # Evenly spread angles with jitter: clustered points would make cusps and self-crossings.
    step = 2 * np.pi / n_points
    angles = np.arange(n_points) * step + rng.uniform(-0.3, 0.3, n_points) * step
    radii = radius * rng.uniform(0.65, 1.3, n_points)
    margin = radius * 1.35
    centre = np.array(
        [rng.uniform(margin, max(margin, height - margin)), rng.uniform(margin, max(margin, width - margin))]
    )
    points = centre + np.stack([radii * np.sin(angles), radii * np.cos(angles)], axis=1)
    prev_pts, next_pts = np.roll(points, 1, axis=0), np.roll(points, -1, axis=0)
    tangents = (next_pts - prev_pts) / 6.0
    t = np.linspace(0.0, 1.0, 24, endpoint=False)[:, None]
    curve = []
    for i in range(n_points):
        p0, p3 = points[i], points[(i + 1) % n_points]
        p1, p2 = p0 + tangents[i], p3 - tangents[(i + 1) % n_points]
        segment = (
            (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t**2 * p2 + t**3 * p3
        )
        curve.append(segment)
    outline = np.concatenate(curve)
    mask = np.zeros(shape, dtype=bool)
    rows, cols = polygon(outline[:, 0], outline[:, 1], shape=shape)
    mask[rows, cols] = True
    return mask


def blobs_3d(
    shape: tuple[int, int, int],
    rng: np.random.Generator,
    *,
    volume_fraction: float,
    n_blobs: int,
) -> np.ndarray:
    """Union of ``n_blobs`` randomly oriented ellipsoids with smoothly wobbling surfaces.

    Radii follow from ``volume_fraction``: each blob gets an equal share of the foreground
    volume, so the foreground ratio of the volume is close to the request (overlaps lower it).
    """
    grids = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij")
    coords = np.stack(grids, axis=-1)
    total = float(np.prod(shape))
    radius = (3.0 * volume_fraction * total / (4.0 * np.pi * n_blobs)) ** (1.0 / 3.0)
    wobble = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma=4.0)
    wobble *= 0.25 / (np.abs(wobble).max() + 1e-12)
    mask = np.zeros(shape, dtype=bool)
    for _ in range(n_blobs):
        axes = radius * rng.uniform(0.75, 1.3, 3)
        axes *= radius / np.prod(axes) ** (1.0 / 3.0)  # keep the volume of a sphere of `radius`
        rotation, _ = np.linalg.qr(rng.standard_normal((3, 3)))
        margin = np.minimum(axes.max() * 1.1, np.array(shape) / 2.0 - 1.0)
        centre = np.array([rng.uniform(m, n - m) for m, n in zip(margin, shape, strict=True)])
        local = (coords - centre) @ rotation
        distance = np.sqrt(((local / axes) ** 2).sum(axis=-1))
        mask |= distance + wobble < 1.0
    return mask
