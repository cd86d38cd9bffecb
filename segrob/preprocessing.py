"""What a model expects before its first layer: intensity scheme, voxel spacing, orientation and
channel order, as one typed spec.

segrob writes the spec into its own exports (``segrob.preprocessing``; the older
``segrob.normalization`` is its ``intensity`` part, so models exported before the spec existed
keep working); for any other model it comes from a TOML or JSON file or the audit's flags. The
audit applies it in deployment order: raw image -> perturbation -> orientation (per case, at
load) -> resampling to ``target_spacing`` -> intensity -> channel order -> model -> logits
resampled (linearly) back to the label's grid, where the prediction is scored.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from segrob.data.case import Case
from segrob.data.normalize import DEFAULT_NORMALIZATION, check_normalization
from segrob.errors import SegrobError, UsageError
from segrob.io_utils import file_errors

#: ``as-stored``: the arrays as the files hold them. ``ras``: NIfTI volumes turned to the closest
#: canonical (RAS+) axis order (nibabel's ``as_closest_canonical``); TIFF and NumPy files carry
#: no orientation and are used as stored.
ORIENTATIONS = ("as-stored", "ras")
#: Voxel spacings a spec may ask for, in mm (10 nm to 10 m, as the data readers accept).
SPACING_RANGE = (1e-5, 1e4)
KEYS = ("intensity", "target_spacing", "orientation", "channel_order")


@dataclass(frozen=True)
class PreprocessingSpec:
    """The preprocessing a model expects; every value is checked when the spec is built.

    Attributes:
        intensity: a :func:`~segrob.data.normalize.check_normalization` spec: ``{"method":
            "ct-window", "level": 40, "width": 400, "range": [0, 1]}`` and so on.
        target_spacing: mm per voxel along each spatial axis (array order) the model was
            trained at; ``None``: the images are fed at their own spacing.
        orientation: one of :data:`ORIENTATIONS`.
        channel_order: the input channels in the order the model takes them (a permutation of
            ``0..C-1``); ``None``: as stored.
    """

    intensity: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_NORMALIZATION))
    target_spacing: tuple[float, ...] | None = None
    orientation: str = "as-stored"
    channel_order: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "intensity", check_normalization(self.intensity))
        object.__setattr__(self, "target_spacing", _spacing(self.target_spacing))
        if self.orientation not in ORIENTATIONS:
            raise SegrobError(f"preprocessing: orientation {self.orientation!r} is not one of "
                              f"{', '.join(ORIENTATIONS)}")
        object.__setattr__(self, "channel_order", _channel_order(self.channel_order))

    def to_dict(self) -> dict[str, Any]:
        return {
            "intensity": dict(self.intensity),
            "target_spacing": list(self.target_spacing) if self.target_spacing else None,
            "orientation": self.orientation,
            "channel_order": list(self.channel_order) if self.channel_order else None,
        }

    @classmethod
    def from_dict(cls, data: Any) -> PreprocessingSpec:
        if not isinstance(data, dict):
            raise SegrobError(f"preprocessing must be an object with keys {', '.join(KEYS)}")
        unknown = sorted(set(data) - set(KEYS))
        if unknown:
            raise SegrobError(f"preprocessing: unknown key {unknown[0]!r} (valid: {', '.join(KEYS)})")
        intensity = data.get("intensity") or DEFAULT_NORMALIZATION
        if isinstance(intensity, str):
            intensity = {"method": intensity}
        return cls(intensity=dict(intensity), target_spacing=data.get("target_spacing"),
                   orientation=data.get("orientation") or "as-stored",
                   channel_order=data.get("channel_order"))

    def describe_intensity(self) -> str:
        """The intensity for people: ``ct-window (level 40, width 400, range [0, 1])``."""
        params = ", ".join(f"{k} {_plain(v)}" for k, v in self.intensity.items() if k != "method")
        return self.intensity["method"] + (f" ({params})" if params else "")

    def describe(self) -> str:
        """One line for people: ``ct-window (level 40, width 400, range [0, 1]); 1 x 1 x 3 mm``."""
        parts = [self.describe_intensity()]
        spacing = " x ".join(_plain(s) for s in self.target_spacing) + " mm" \
            if self.target_spacing else "own spacing"
        parts += [spacing, f"orientation {self.orientation}"]
        if self.channel_order:
            parts.append("channels " + ",".join(map(str, self.channel_order)))
        return "; ".join(parts)


def _plain(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_plain(v) for v in value) + "]"
    return str(value)


def _spacing(value: Any) -> tuple[float, ...] | None:
    if value is None:
        return None
    low, high = SPACING_RANGE
    if isinstance(value, list | tuple) and len(value) in (2, 3) and all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            and low <= v <= high for v in value):
        return tuple(float(v) for v in value)
    raise SegrobError(f"preprocessing: target_spacing must be 2 or 3 numbers in mm, each in "
                      f"[{low:g}, {high:g}], got {value!r}")


def _channel_order(value: Any) -> tuple[int, ...] | None:
    if value is None:
        return None
    if isinstance(value, list | tuple) and value and \
            all(isinstance(v, int) and not isinstance(v, bool) for v in value) and \
            sorted(value) == list(range(len(value))):
        return tuple(value)
    raise SegrobError(f"preprocessing: channel_order must be a permutation of 0..C-1 "
                      f"(e.g. [1, 0]), got {value!r}")


def from_normalization(normalization: dict[str, Any] | str | None) -> PreprocessingSpec:
    """The spec of a model that states only its ``normalization`` (exports before the spec)."""
    if isinstance(normalization, str):
        normalization = {"method": normalization}
    return PreprocessingSpec(intensity=dict(normalization or DEFAULT_NORMALIZATION))


def load_preprocessing(path: str | Path) -> PreprocessingSpec:
    """A spec from a ``.toml`` or ``.json`` file; a bad file is one line naming it."""
    import tomllib

    path = Path(path)
    if path.suffix.lower() not in (".toml", ".json"):
        raise SegrobError(f"{path}: a preprocessing spec is a .toml or .json file")
    with file_errors(path):
        text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except ValueError as error:
        raise SegrobError(f"{path}: cannot parse preprocessing spec ({error})") from None
    try:
        return PreprocessingSpec.from_dict(data)
    except SegrobError as error:
        raise SegrobError(f"{path}: {error}") from None


def spec_from_options(
    path: str | Path | None = None,
    *,
    intensity: str | None = None,
    window_level: float | None = None,
    window_width: float | None = None,
    target_spacing: str | None = None,
    orientation: str | None = None,
    model: dict[str, Any] | None = None,
) -> PreprocessingSpec | None:
    """The spec of ``--preprocessing FILE`` (else of the ``model``'s metadata) with the flags
    given beside it replacing its fields; ``None`` when neither a file nor a flag was given, so
    the model's own spec applies. ``--window-level`` and ``--window-width`` imply ``--intensity
    ct-window``; a bad flag value is a usage error."""
    base = load_preprocessing(path) if path is not None else None
    if base is None and model is not None and any(
            v is not None for v in (intensity, window_level, window_width, target_spacing, orientation)):
        base = model_preprocessing(model)
    window = {k: v for k, v in (("level", window_level), ("width", window_width)) if v is not None}
    if window and intensity not in (None, "ct-window"):
        raise UsageError(f"--window-level/--window-width go with --intensity ct-window, not {intensity}")
    given: dict[str, Any] = {}
    try:
        if intensity is not None or window:
            previous = base.intensity if base and base.intensity["method"] == "ct-window" else {}
            method = intensity or "ct-window"
            given["intensity"] = check_normalization(
                {**previous, **window, "method": method} if method == "ct-window" else {"method": method})
        if target_spacing is not None:
            given["target_spacing"] = _spacing_text(target_spacing)
        if orientation is not None:
            given["orientation"] = orientation
        if not given:
            return base
        return replace(base or PreprocessingSpec(), **given)
    except UsageError:
        raise
    except SegrobError as error:
        raise UsageError(f"{error} (from --intensity/--window-level/--window-width/"
                         "--target-spacing/--orientation)") from None


def _spacing_text(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"--target-spacing takes mm per axis like 1,1,3; got {text!r}") from None


def model_preprocessing(metadata: dict[str, Any]) -> PreprocessingSpec:
    """The spec a model's segrob metadata states: ``preprocessing``, else its ``normalization``
    (z-score when it states neither)."""
    if metadata.get("preprocessing") is not None:
        return PreprocessingSpec.from_dict(metadata["preprocessing"])
    return from_normalization(metadata.get("normalization"))


def stated_preprocessing(metadata: dict[str, Any], given: PreprocessingSpec | None) -> dict[str, Any]:
    """What the audit would feed a model (for ``segrob check``): ``source`` (``given``, ``model``,
    ``default`` or ``unreadable``), ``spec`` (its dict, or ``None``) and one line of ``text``.

    ``metadata`` is :func:`~segrob.onnx.checks.check_model_file`'s: ``segrob`` (whether the model
    has segrob metadata) and the parsed ``values``."""
    if given is not None:
        source, spec = "given", given
    elif not metadata.get("segrob"):
        source, spec = "default", PreprocessingSpec()
    else:
        try:
            source, spec = "model", model_preprocessing(metadata.get("values") or {})
        except SegrobError as error:
            return {"source": "unreadable", "spec": None, "text": f"unreadable metadata ({error})"}
    note = {"given": " (from --preprocessing)", "model": " (the model's metadata)",
            "default": " (not stated by the model: the audit's default; give --preprocessing SPEC)"}
    return {"source": source, "spec": spec.to_dict(), "text": spec.describe() + note[source]}


def resampled_shape(shape: tuple[int, ...], spacing: tuple[float, ...],
                    target: tuple[float, ...]) -> tuple[int, ...]:
    """The grid size covering the same extent at ``target`` spacing (at least 1 voxel)."""
    if len(target) != len(shape):
        raise SegrobError(f"preprocessing: target_spacing has {len(target)} values but the images "
                          f"have {len(shape)} spatial axes")
    return tuple(max(1, round(n * s / t)) for n, s, t in zip(shape, spacing, target, strict=True))


def resample(batch: torch.Tensor, size: tuple[int, ...], *, label: bool = False) -> torch.Tensor:
    """``(N, C, *spatial)`` resampled to ``size``: nearest for label maps, (bi/tri)linear for
    images and logits (voxel centres aligned, as resampling a grid of the same extent must)."""
    if tuple(batch.shape[2:]) == tuple(size):
        return batch
    if label:
        return F.interpolate(batch.float(), size=size, mode="nearest-exact").to(batch.dtype)
    mode = "bilinear" if len(size) == 2 else "trilinear"
    return F.interpolate(batch.float(), size=size, mode=mode, align_corners=False)


def canonical_case(case: Case, spec: PreprocessingSpec | None) -> Case:
    """``case`` turned to RAS+ axis order when the spec asks for it and the image is NIfTI
    (image, label and spacing together); any other case comes back unchanged."""
    path = case.source.get("image", "")
    if spec is None or spec.orientation != "ras" or not path.endswith((".nii", ".nii.gz")):
        return case
    import nibabel as nib
    from nibabel import orientations

    dims = case.spatial_dims
    with file_errors(path):
        affine = nib.load(path).affine
    transform = orientations.ornt_transform(orientations.io_orientation(affine),
                                            orientations.axcodes2ornt("RAS"))[:dims]
    if sorted(int(a) for a in transform[:, 0]) != list(range(dims)):
        return case  # a 2D slice whose plane is not spanned by two RAS axes: keep it as stored
    image = np.stack([orientations.apply_orientation(c, transform) for c in case.image])
    label = orientations.apply_orientation(case.label, transform) if case.label is not None else None
    spacing = [0.0] * dims
    for axis, (to, _) in enumerate(transform):
        spacing[int(to)] = case.spacing[axis]
    return replace(case, image=np.ascontiguousarray(image, dtype=case.image.dtype),
                   label=None if label is None else np.ascontiguousarray(label),
                   spacing=tuple(spacing))
