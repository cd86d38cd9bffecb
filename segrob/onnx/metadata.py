"""segrob's metadata in ONNX files: ``metadata_props`` entries ``segrob.<key>`` with JSON values.

A deployed model carries what the audit and a reader need to use it correctly without the
training run: its preprocessing, the sizes it accepts, the data and complexity it was trained
on, the training foreground-ratio range, versions and the export's parity results.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from segrob.errors import SegrobError, first_line
from segrob.io_utils import json_safe

PREFIX = "segrob."
FORMAT = "segrob-onnx/1"

#: Keys a segrob export writes; ``check`` reports the ones a model lacks.
EXPECTED_KEYS = (
    "format",
    "arch",
    "options",
    "spatial_dims",
    "in_channels",
    "out_channels",
    "classes",
    "normalization",
    "preprocessing",
    "patch_size",
    "size_multiple",
    "min_size",
    "fixed_size",
    "dynamic_axes",
    "precision",
    "training_data",
    "complexity",
    "fbr_range",
    "best",
    "versions",
    "parity",
)


def load_onnx(path: str | os.PathLike, *, load_weights: bool = True) -> Any:
    """Read an ONNX file, turning a missing, non-ONNX or corrupt file into one clear error."""
    import onnx

    model_path = Path(path)
    if not model_path.is_file():
        raise SegrobError(f"{model_path}: no such model file")
    try:
        model = onnx.load(str(model_path), load_external_data=load_weights)
    except Exception as error:  # protobuf's DecodeError, or a missing external-data file
        raise SegrobError(
            f"{model_path}: not a readable ONNX model ({first_line(error, 160)})"
        ) from None
    # An empty or foreign file can decode as an empty message; a real model has both.
    if model.ir_version == 0 or len(model.graph.node) == 0:
        raise SegrobError(f"{model_path}: not an ONNX model (no IR version or no graph nodes)")
    return model


def is_segrob_onnx(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an ONNX model segrob exported (its metadata names segrob's format)."""
    try:
        model = load_onnx(path, load_weights=False)
    except SegrobError:
        return False
    return any(p.key == PREFIX + "format" for p in model.metadata_props)


def parse_metadata_props(props: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
    """Split ``metadata_props`` into parsed ``segrob.*`` values and the keys that failed to parse.

    Returns:
        ``(values, bad_keys)``: values keyed without the prefix; keys whose value is not JSON.
    """
    values: dict[str, Any] = {}
    bad: list[str] = []
    for key, text in props.items():
        if not key.startswith(PREFIX):
            continue
        name = key[len(PREFIX) :]
        try:
            values[name] = json.loads(text)
        except (TypeError, ValueError):
            bad.append(name)
    return values, bad


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _sizes(value: Any) -> bool:
    return value is None or (isinstance(value, list) and bool(value) and all(map(_positive_int, value)))


def _normalization(value: Any) -> bool:
    from segrob.data.normalize import check_normalization

    try:
        check_normalization({"method": value} if isinstance(value, str) else value)
    except SegrobError:
        return False
    return True


def _preprocessing(value: Any) -> bool:
    from segrob.preprocessing import PreprocessingSpec

    try:
        PreprocessingSpec.from_dict(value)
    except SegrobError:
        return False
    return True


#: What each metadata value the audit uses must be, and how to say so.
_VALUE_RULES = {
    "spatial_dims": (lambda v: v in (2, 3) and not isinstance(v, bool), "2 or 3"),
    "in_channels": (_positive_int, "a whole number >= 1"),
    "out_channels": (lambda v: _positive_int(v) and v >= 2, "a whole number >= 2"),
    "size_multiple": (_positive_int, "a whole number >= 1"),
    "min_size": (_positive_int, "a whole number >= 1"),
    "patch_size": (_sizes, "a list of whole numbers >= 1, or null"),
    "fixed_size": (_sizes, "a list of whole numbers >= 1, or null"),
    "normalization": (_normalization, "a normalisation: zscore, fixed, ct-window, percentile, "
                                      "robust-minmax or none, with its parameters"),
    "preprocessing": (_preprocessing, "a preprocessing spec (intensity, target_spacing, "
                                      "orientation, channel_order)"),
}


def check_metadata(values: dict[str, Any], source: str | os.PathLike) -> dict[str, Any]:
    """Refuse parsed ``segrob.*`` metadata whose values the audit cannot use, naming the file.

    Returns ``values`` unchanged when every present key is valid.
    """
    for key, (valid, expected) in _VALUE_RULES.items():
        if key in values and not valid(values[key]):
            shown = json.dumps(values[key])
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise SegrobError(f"{source}: metadata segrob.{key} is {shown}; expected {expected}")
    return values


def set_metadata(model: Any, values: dict[str, Any]) -> Any:
    """Write ``values`` as ``segrob.<key>`` JSON entries of ``model`` (replacing older ones)."""
    keep = [(p.key, p.value) for p in model.metadata_props if not p.key.startswith(PREFIX)]
    del model.metadata_props[:]
    for key, value in keep:
        model.metadata_props.add(key=key, value=value)
    for key, value in values.items():
        text = json.dumps(json_safe(value), sort_keys=True, allow_nan=False, default=_plain)
        model.metadata_props.add(key=PREFIX + key, value=text)
    return model


def missing_keys(values: dict[str, Any]) -> list[str]:
    """Expected keys absent from parsed metadata, in the order of :data:`EXPECTED_KEYS`."""
    return [key for key in EXPECTED_KEYS if key not in values]


def build_metadata(
    model: Any,
    config: dict[str, Any] | None,
    *,
    precision: str,
    dynamic_axes: dict[str, list[str]],
    versions: dict[str, str],
) -> dict[str, Any]:
    """Metadata values for an exported ``model`` (a segrob ``nn.Module``) and its run config.

    ``config`` is the run's ``config.json`` (``None`` for a bare model); ``parity`` is added by
    the exporter once measured.
    """
    config = dict(config or {})
    data = dict(config.get("data") or {})
    # Per-case draws can run to thousands of entries; the summary is what a reader needs.
    data_meta = {k: v for k, v in dict(data.get("metadata") or {}).items() if k != "cases"}
    out_channels = int(model.out_channels)
    fixed = getattr(model, "fixed_size", None)
    preprocessing = export_preprocessing(config)
    return {
        "format": FORMAT,
        "arch": config.get("arch") or getattr(model, "arch", type(model).__name__),
        "options": config.get("options", getattr(model, "options", {})),
        "spatial_dims": int(model.spatial_dims),
        "in_channels": int(model.in_channels),
        "out_channels": out_channels,
        "classes": _classes(data_meta, out_channels),
        # The intensity part again under its old key, for readers that predate the spec.
        "normalization": preprocessing["intensity"],
        "preprocessing": preprocessing,
        "patch_size": config.get("patch_size"),
        "size_multiple": int(getattr(model, "size_multiple", 1)),
        "min_size": int(getattr(model, "min_size", 1)),
        "fixed_size": list(fixed) if fixed is not None else None,
        "dynamic_axes": dynamic_axes,
        "precision": precision,
        "training_data": {
            "path": data.get("path"),
            "kind": data.get("kind"),
            "n_cases": data.get("n_cases"),
            "n_val_cases": len(data.get("val_cases") or []),
            "metadata": data_meta or None,
        },
        "complexity": _complexity(data_meta),
        "fbr_range": config.get("fbr_range"),
        "best": config.get("best"),
        "versions": {"training": config.get("versions"), "export": versions},
    }


def export_preprocessing(config: dict[str, Any] | None) -> dict[str, Any]:
    """The preprocessing spec of a run: its ``preprocessing`` when it states one, else the
    run's ``normalization`` at the images' own spacing (segrob trains without resampling)."""
    from segrob.preprocessing import PreprocessingSpec, from_normalization

    config = dict(config or {})
    if config.get("preprocessing") is not None:
        return PreprocessingSpec.from_dict(config["preprocessing"]).to_dict()
    return from_normalization(config.get("normalization")).to_dict()


def _classes(data_meta: dict[str, Any], out_channels: int) -> dict[str, str]:
    """Class id -> name; names from the data's description when it has them."""
    named = data_meta.get("labels") or data_meta.get("classes") or {}
    names: dict[str, str] = {}
    if isinstance(named, dict):
        for key, value in named.items():
            # nnU-Net writes {"name": id}; segrob writes {"id": "name"}.
            if isinstance(value, int):
                names[str(value)] = str(key)
            else:
                names[str(key)] = str(value)
    default = {"0": "background"}
    return {
        str(i): names.get(str(i), default.get(str(i), f"class {i}")) for i in range(out_channels)
    }


def _complexity(data_meta: dict[str, Any]) -> dict[str, Any] | None:
    """The graded-complexity facts of segrob's synthetic data (``None`` for other data)."""
    keys = ("generator", "level", "blend", "complexity", "texture_distance", "families", "dims")
    found = {k: data_meta[k] for k in keys if k in data_meta}
    return found or None


def _plain(value: Any) -> Any:
    """What :func:`json_safe` leaves for ``json.dumps`` to convert: sets and paths."""
    if isinstance(value, set):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def checker_problem(path: str | os.PathLike) -> str | None:
    """The first line of the ONNX checker's complaint (full check), or ``None`` when it passes."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as error:  # ValidationError, InferenceError
        return first_line(error)
    return None
