"""Patch sampling with an explicit positive ratio, and the foreground ratio (FBR) it yields.

A *positive* patch is centred on a foreground voxel (label > 0), a *negative* one on a
background voxel, as MONAI's ``RandCropByPosNegLabel``: with ``pos_ratio = r`` exactly
``round(r * n)`` of an epoch's ``n`` patches are positive. The FBR of a patch is
``#foreground voxels / #patch voxels``; the training loop records it for every patch, so the
checkpoint knows the FBR range its model was trained on (Kamath et al., MedNeurIPS 2022).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segrob.errors import SegrobError

# Candidate centres kept per case and kind: enough for variety, bounded memory on big volumes.
_MAX_CANDIDATES = 4096


@dataclass(frozen=True)
class PatchRequest:
    """One patch to cut: case index, start corner and whether it was drawn as positive."""

    case: int
    start: tuple[int, ...]
    positive: bool


def pad_to(array: np.ndarray, shape: tuple[int, ...], value: float) -> np.ndarray:
    """Pad the trailing axes of ``array`` at the end up to ``shape`` (no-op when large enough)."""
    spatial = array.shape[-len(shape):]
    extra = [max(0, s - a) for s, a in zip(shape, spatial, strict=True)]
    if not any(extra):
        return array
    widths = [(0, 0)] * (array.ndim - len(shape)) + [(0, e) for e in extra]
    return np.pad(array, widths, mode="constant", constant_values=value)


class PatchSampler:
    """Cuts ``patch_size`` patches from in-memory cases.

    Args:
        images: normalised images ``(C, *spatial)``, one per case.
        labels: label maps ``(*spatial)``.
        patch_size: patch edge per axis; cases smaller than it are padded (image with its
            minimum, label with background).
        pos_ratio: share of patches centred on a foreground voxel, in [0, 1].
        seed: draws the candidate centres of each case.
    """

    def __init__(
        self,
        images: list[np.ndarray],
        labels: list[np.ndarray],
        patch_size: tuple[int, ...],
        *,
        pos_ratio: float,
        seed: int,
    ):
        if not 0.0 <= pos_ratio <= 1.0:
            raise SegrobError(f"--pos-ratio must be in [0, 1], got {pos_ratio}")
        self.patch_size = tuple(int(p) for p in patch_size)
        self.pos_ratio = float(pos_ratio)
        self.images = [
            pad_to(img, self.patch_size, float(img.min()) if img.size else 0.0) for img in images
        ]
        self.labels = [pad_to(lbl, self.patch_size, 0) for lbl in labels]
        rng = np.random.default_rng([seed, 0x5A3])
        self._positive = [self._candidates(lbl > 0, rng) for lbl in self.labels]
        self._negative = [self._candidates(lbl == 0, rng) for lbl in self.labels]

    @staticmethod
    def _candidates(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        flat = np.flatnonzero(mask)
        if flat.size > _MAX_CANDIDATES:
            flat = np.sort(rng.choice(flat, _MAX_CANDIDATES, replace=False))
        return flat

    def plan(
        self, n: int, rng: np.random.Generator, cases: list[int] | None = None
    ) -> list[PatchRequest]:
        """Draw ``n`` patches: cases cycle in a shuffled order, ``round(pos_ratio * n)`` positive.

        A positive request on a case without foreground (or negative on one without background)
        falls back to a uniformly random centre.
        """
        pool = list(range(len(self.images))) if cases is None else list(cases)
        order = np.concatenate([rng.permutation(pool) for _ in range(-(-n // len(pool)))])[:n]
        n_pos = round(self.pos_ratio * n)
        positive = np.zeros(n, dtype=bool)
        positive[rng.permutation(n)[:n_pos]] = True
        requests = []
        for case, pos in zip(order.tolist(), positive.tolist(), strict=True):
            candidates = (self._positive if pos else self._negative)[case]
            shape = self.labels[case].shape
            if candidates.size:
                centre = np.unravel_index(int(candidates[rng.integers(candidates.size)]), shape)
            else:
                centre = tuple(int(rng.integers(s)) for s in shape)
            start = tuple(
                int(min(max(c - p // 2, 0), s - p))
                for c, p, s in zip(centre, self.patch_size, shape, strict=True)
            )
            requests.append(PatchRequest(case=case, start=start, positive=pos))
        return requests

    def cut(self, request: PatchRequest) -> tuple[np.ndarray, np.ndarray]:
        """The image ``(C, *patch)`` and label ``(*patch)`` of ``request``."""
        window = tuple(
            slice(s, s + p) for s, p in zip(request.start, self.patch_size, strict=True)
        )
        return self.images[request.case][(slice(None), *window)], self.labels[request.case][window]


def augment_dihedral(
    image: np.ndarray, label: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A random flip per spatial axis and a random quarter turn (square planes only).

    These maps are exact on the voxel grid (no interpolation), so labels stay labels and the
    foreground ratio is unchanged.
    """
    dims = label.ndim
    for axis in range(dims):
        if rng.random() < 0.5:
            image, label = np.flip(image, axis + 1), np.flip(label, axis)
    axes = tuple(int(a) for a in rng.choice(dims, 2, replace=False)) if dims > 2 else (0, 1)
    turns = int(rng.integers(4))
    if turns and label.shape[axes[0]] == label.shape[axes[1]]:
        image = np.rot90(image, turns, axes=(axes[0] + 1, axes[1] + 1))
        label = np.rot90(label, turns, axes=axes)
    return np.ascontiguousarray(image), np.ascontiguousarray(label)


def foreground_ratio(label: np.ndarray) -> float:
    """FBR of one patch: ``#(label > 0) / #voxels``."""
    return float(np.count_nonzero(label)) / float(label.size) if label.size else 0.0


def fbr_range(values: list[float] | np.ndarray) -> dict[str, float] | None:
    """``min``, ``max``, ``p5``, ``p95``, ``mean`` and ``n`` of recorded FBRs (``None`` if none)."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return None
    return {
        "min": round(float(array.min()), 6),
        "max": round(float(array.max()), 6),
        "p5": round(float(np.percentile(array, 5)), 6),
        "p95": round(float(np.percentile(array, 95)), 6),
        "mean": round(float(array.mean()), 6),
        "n": int(array.size),
    }
