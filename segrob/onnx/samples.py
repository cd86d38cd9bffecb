"""Inputs for parity and INT8 calibration: a run's own cases, else segrob's synthetic data.

Parity is measured on held-out inputs (the run's validation cases) and INT8 is calibrated on
training cases, each normalised exactly as in training and deployment
(:func:`segrob.data.normalize.normalize`) and fitted to a size the network accepts: centre-cropped
to the model's fixed size or training patch, zero-padded at the end up to its size multiple
(zero is the normalised mean). Only the region holding the image is compared.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segrob.data.normalize import normalize
from segrob.errors import SegrobError

SYNTH_SIZE = {2: 64, 3: 32}


@dataclass(frozen=True)
class SizeRules:
    """The spatial sizes a model accepts (from the model or its ONNX metadata)."""

    spatial_dims: int
    size_multiple: int = 1
    min_size: int = 1
    fixed_size: tuple[int, ...] | None = None
    window: tuple[int, ...] | None = None

    @classmethod
    def from_model(cls, model: Any, *, window: Sequence[int] | None = None) -> SizeRules:
        fixed = getattr(model, "fixed_size", None)
        return cls(
            spatial_dims=int(model.spatial_dims),
            size_multiple=int(getattr(model, "size_multiple", 1)),
            min_size=int(getattr(model, "min_size", 1)),
            fixed_size=tuple(int(s) for s in fixed) if fixed is not None else None,
            window=tuple(int(w) for w in window) if window else None,
        )

    def target(self, shape: Sequence[int]) -> tuple[int, ...]:
        """The accepted size closest to ``shape``: the fixed size, else ``shape`` capped by the
        window and rounded up to the size multiple (at least ``min_size``)."""
        if self.fixed_size is not None:
            return tuple(self.fixed_size)
        out = []
        for axis, size in enumerate(shape):
            if self.window is not None:
                size = min(size, self.window[axis])
            multiple = max(1, self.size_multiple)
            out.append(max(self.min_size, -(-size // multiple) * multiple))
        return tuple(out)


@dataclass
class Sample:
    """One fitted input: ``image (C, *target)`` normalised, ``label`` cropped to ``region``."""

    name: str
    image: np.ndarray
    label: np.ndarray | None
    region: tuple[slice, ...]


def fit_case(
    name: str, image: np.ndarray, label: np.ndarray | None, rules: SizeRules,
    normalization: dict[str, Any],
) -> Sample:
    """Normalise ``image (C, *spatial)`` and fit it to ``rules`` (crop centre, pad end)."""
    import torch

    if image.ndim != rules.spatial_dims + 1:
        raise SegrobError(
            f"case {name}: {image.ndim - 1}D image for a {rules.spatial_dims}D model"
        )
    x = normalize(torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None],
                  normalization)[0].numpy()
    shape = x.shape[1:]
    target = rules.target(shape)
    crop = tuple(
        slice((s - t) // 2, (s - t) // 2 + t) if s > t else slice(0, s)
        for s, t in zip(shape, target, strict=True)
    )
    x = x[(slice(None), *crop)]
    lbl = label[crop] if label is not None else None
    kept = x.shape[1:]
    pads = [(0, 0)] + [(0, t - k) for k, t in zip(kept, target, strict=True)]
    fitted = np.pad(x, pads) if any(p[1] for p in pads) else x
    region = tuple(slice(0, k) for k in kept)
    return Sample(name, np.ascontiguousarray(fitted, dtype=np.float32), lbl, region)


def run_samples(
    config: dict[str, Any],
    rules: SizeRules,
    *,
    split: str,
    max_cases: int,
) -> tuple[list[Sample], str] | None:
    """Up to ``max_cases`` cases of the run's data folder: ``val`` (held out) or ``train``.

    Returns ``None`` when the data folder is gone or unreadable, or has no such cases (the
    caller falls back to synthetic inputs and says so).
    """
    from segrob.data import load_dataset

    data = config.get("data") or {}
    path = data.get("path")
    if not path or not Path(path).exists():
        return None
    try:
        # Case files outside the folder are read only where training was allowed to read them.
        dataset = load_dataset(path, allow_outside=bool(data.get("allow_outside")))
        held_out = set(data.get("val_cases") or [])
        names = [n for n in dataset.names if (n in held_out) == (split == "val")]
        if not names:
            return None
        samples = []
        for name in names[:max_cases]:
            case = dataset.case(name)
            samples.append(fit_case(name, case.image, case.label, rules, _norm(config)))
    except SegrobError:
        return None
    kind = "validation" if split == "val" else "training"
    return samples, f"{len(samples)} {kind} case(s) of {path}"


def synthetic_samples(
    rules: SizeRules,
    *,
    in_channels: int,
    normalization: dict[str, Any],
    n: int,
    seed: int = 1234,
) -> tuple[list[Sample], str]:
    """``n`` cases of segrob's synthetic generator (medium complexity), channels repeated."""
    from segrob.data.synth import SynthConfig, generate

    dims = rules.spatial_dims
    size = SYNTH_SIZE[dims]
    if rules.fixed_size is not None:
        size = max(rules.fixed_size)
    config = SynthConfig(dims=dims, n=n, size=max(16, size), level="medium", seed=seed).check()
    samples = []
    for case in generate(config):
        image = np.repeat(case.image[:1], in_channels, axis=0)
        samples.append(fit_case(case.name, image, case.label, rules, normalization))
    return samples, f"{len(samples)} synthetic case(s) (segrob generator, seed {seed})"


def parity_samples(
    model: Any, config: dict[str, Any], rules: SizeRules, normalization: dict[str, Any],
    n_cases: int, notes: list[str],
) -> tuple[list[Any], str, bool]:
    """Parity inputs: held-out cases, else training cases, else synthetic ones (noted).

    The flag says whether the inputs are the run's own (so their labels mean something).
    """
    found = run_samples(config, rules, split="val", max_cases=n_cases)
    if found is None and config:
        found = run_samples(config, rules, split="train", max_cases=n_cases)
        if found is not None:
            notes.append("the run has no held-out cases: parity used training cases")
    if found is not None:
        return found[0], found[1], True
    if config:
        notes.append("the run's data folder is not readable here: parity used synthetic inputs")
    samples, described = synthetic_samples(
        rules, in_channels=int(model.in_channels), normalization=normalization,
        n=min(n_cases, 4),
    )
    return samples, described, False


def calibration_samples(
    model: Any, config: dict[str, Any], rules: SizeRules, normalization: dict[str, Any],
    n_cases: int, notes: list[str],
) -> tuple[list[Any], str]:
    """INT8 calibration inputs: the run's training cases, else synthetic ones (noted)."""
    found = run_samples(config, rules, split="train", max_cases=n_cases)
    if found is not None:
        return found
    notes.append("INT8 calibrated on synthetic inputs (no training cases readable)")
    return synthetic_samples(rules, in_channels=int(model.in_channels),
                             normalization=normalization, n=min(n_cases, 8), seed=4321)


def stack_groups(samples: Sequence[Sample], batch_size: int) -> list[tuple[list[int], np.ndarray]]:
    """Batches of equal-shaped samples: ``(indices, (B, C, *spatial) array)``."""
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for index, sample in enumerate(samples):
        by_shape.setdefault(sample.image.shape, []).append(index)
    batches = []
    for indices in by_shape.values():
        for first in range(0, len(indices), batch_size):
            chunk = indices[first : first + batch_size]
            batches.append((chunk, np.stack([samples[i].image for i in chunk])))
    return batches


def _norm(config: dict[str, Any]) -> dict[str, Any]:
    return dict(config.get("normalization") or {"method": "zscore"})
