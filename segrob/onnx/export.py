"""PyTorch -> ONNX with the dynamo exporter, gated by parity, written with segrob metadata.

``export_run(run_dir, out)``: load the run's best model, export it (dynamic batch; dynamic
spatial size unless the architecture is fixed-size), check the graph with the ONNX checker
(full shape inference), measure parity against PyTorch on held-out inputs and write one
self-contained ``.onnx`` file whose ``metadata_props`` describe the model. The file appears only
when every step passed.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from segrob.errors import SegrobError, UsageError
from segrob.io_utils import atomic_output_file, check_output_file
from segrob.onnx.metadata import (
    build_metadata,
    checker_problem,
    export_preprocessing,
    is_segrob_onnx,
    set_metadata,
)
from segrob.onnx.parity import PRECISIONS, ParityResult, ParityThresholds, compare_logits
from segrob.onnx.parity import require_parity as _require_parity
from segrob.onnx.quantize import FULL_RESOLUTION_CHOICES, HalfPrecision, quantize_proto
from segrob.onnx.samples import SizeRules, calibration_samples, parity_samples, stack_groups
from segrob.onnx.trace import INPUT_NAME, example_input, rename_dims, shape_of, to_onnx
from segrob.provenance import package_versions

MIN_OPSET = 18


@dataclass
class ExportOptions:
    """How to export.

    Attributes:
        precision: ``fp32``, ``fp16`` (half-precision weights and compute, float32 IO) or
            ``int8`` (static QDQ quantisation calibrated on training cases).
        opset: ONNX opset (at least 18).
        batch_size: batch of the example input (at least 2, so the batch axis stays dynamic).
        parity_cases: held-out cases used for parity. calibration_cases: INT8 calibration.
        min_agreement, min_dice, max_abs_diff: override the precision's parity gate.
        device: onnxruntime device for parity (``cpu``, ``cuda`` or ``auto``).
        int8_full_resolution: with ``int8``, where the convolutions at the input's full
            resolution run: ``int8``, ``float`` (float32) or ``auto`` (timed here, see
            :func:`segrob.onnx.quantize.quantize_proto`).
        optimize: save onnxruntime's offline-optimised graph (see
            :data:`segrob.onnx.session.OFFLINE_OPTIMIZATION`); parity is measured on that graph.
        preprocessing, target_spacing, orientation: what the file states that a deployment does
            before the model (``segrob.preprocessing``): a spec file, and fields that replace its
            own (``target_spacing`` like ``"1,1,3"``); by default the run's intensity at the
            images' own spacing. For a model trained on images resampled or reoriented
            beforehand. The intensity stays the run's, unless the run trained with ``none``
            on images already normalised (then the spec states how they were).
        overwrite: replace an existing output file.
    """

    precision: str = "fp32"
    opset: int = MIN_OPSET
    batch_size: int = 2
    parity_cases: int = 8
    calibration_cases: int = 16
    min_agreement: float | None = None
    min_dice: float | None = None
    max_abs_diff: float | None = None
    device: str = "cpu"
    int8_full_resolution: str = "auto"
    optimize: bool = False
    preprocessing: str | os.PathLike | None = None
    target_spacing: str | None = None
    orientation: str | None = None
    overwrite: bool = False

    def check(self) -> ExportOptions:
        if self.precision not in PRECISIONS:
            raise UsageError(
                f"unknown precision {self.precision!r} (valid: {', '.join(PRECISIONS)})"
            )
        if self.opset < MIN_OPSET:
            raise UsageError(f"--opset must be at least {MIN_OPSET}, got {self.opset}")
        if self.batch_size < 2:
            raise UsageError(
                f"export batch size must be at least 2 (a batch of 1 can freeze the batch axis), "
                f"got {self.batch_size}"
            )
        if self.int8_full_resolution not in FULL_RESOLUTION_CHOICES:
            raise UsageError(f"unknown --int8-full-resolution {self.int8_full_resolution!r} "
                             f"(valid: {', '.join(FULL_RESOLUTION_CHOICES)})")
        if self.parity_cases < 1 or self.calibration_cases < 1:
            raise UsageError("--parity-cases and --calibration-cases must be at least 1")
        return self

    def thresholds(self) -> ParityThresholds:
        return ParityThresholds.for_precision(
            self.precision,
            min_agreement=self.min_agreement,
            min_dice=self.min_dice,
            max_abs_diff=self.max_abs_diff,
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["preprocessing"] = None if self.preprocessing is None else str(self.preprocessing)
        return data


@dataclass
class ExportResult:
    """What was written and how well it matches PyTorch."""

    path: str
    arch: str
    precision: str
    opset: int
    spatial_dims: int
    input_shape: list[int | str]
    output_shape: list[int | str]
    dynamic_batch: bool
    dynamic_spatial: bool
    size_bytes: int
    parity: ParityResult
    metadata: dict[str, Any]
    seconds: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["parity"] = self.parity.to_dict()
        return out


def export_run(run_dir: str | os.PathLike, out: str | os.PathLike,
               *, options: ExportOptions | None = None) -> ExportResult:
    """Export the best model of ``run_dir`` to ``out`` (see the module docstring).

    Raises:
        SegrobError: an unreadable run or a checkpoint that does not fit its architecture, an
            exporter or checker failure, or parity below the gate (nothing is written then).
    """
    from segrob.training import load_run

    model, config = load_run(run_dir)
    return export_model(model, out, config=config.to_dict(), options=options,
                        inputs=(run_dir, config.data.get("path")))


def export_model(
    model: nn.Module,
    out: str | os.PathLike,
    *,
    config: dict[str, Any] | None = None,
    options: ExportOptions | None = None,
    inputs: tuple[str | os.PathLike | None, ...] = (),
) -> ExportResult:
    """Export a segrob model (``spatial_dims``, ``in_channels``, ``out_channels`` attributes).

    ``config`` is the run's ``config.json`` dict: it supplies the metadata, the normalisation
    and the data folder whose validation cases measure parity (synthetic inputs otherwise).
    ``inputs`` (the run folder, its data) are what ``out`` may never replace or lie inside.
    """
    options = (options or ExportOptions()).check()
    target = Path(out)
    if target.is_dir():
        raise SegrobError(f"{target}: is a folder; --out takes a file name such as model.onnx")
    check_output_file(target, overwrite=options.overwrite, inputs=inputs, is_ours=is_segrob_onnx)
    started = time.perf_counter()
    config = dict(config or {})
    model = model.eval()
    dims = int(model.spatial_dims)
    window = config.get("patch_size") if dims == 3 else None
    rules = SizeRules.from_model(model, window=window)
    trained = export_preprocessing(config)
    normalization = trained["intensity"]  # what the model was trained on
    config = _with_preprocessing(config, trained, options)
    notes: list[str] = []
    proto, input_shape, output_shape, metadata = _trace(model, config, options, notes)
    samples, described, from_run = parity_samples(
        model, config, rules, normalization, options.parity_cases, notes
    )
    with atomic_output_file(target, replace=options.overwrite) as tmp:
        if options.precision == "int8":
            calibration, described_calibration = calibration_samples(
                model, config, rules, normalization, options.calibration_cases, notes
            )
            metadata["calibration"] = described_calibration
            proto, metadata["int8"] = quantize_proto(proto, calibration, tmp, input_name=INPUT_NAME,
                                                     full_resolution=options.int8_full_resolution)
        proto = _save_checked(proto, metadata, tmp, optimize=options.optimize)
        parity = measure_parity(model, tmp, samples, options.thresholds(), labels=from_run,
                                inputs=described, device=options.device,
                                batch_size=4 if dims == 2 else 1)
        _require_parity(parity, what=f"{target} ({options.precision})")
        metadata["parity"] = parity.to_dict()
        _save(set_metadata(proto, metadata), tmp)
        size = tmp.stat().st_size
    return ExportResult(
        path=str(target), arch=str(metadata["arch"]), precision=options.precision,
        opset=options.opset, spatial_dims=dims, input_shape=input_shape,
        output_shape=output_shape, dynamic_batch=isinstance(input_shape[0], str),
        dynamic_spatial=all(isinstance(s, str) for s in input_shape[2:]), size_bytes=size,
        parity=parity, metadata=metadata, seconds=round(time.perf_counter() - started, 3), notes=notes,
    )


def _with_preprocessing(config: dict[str, Any], own: dict[str, Any],
                        options: ExportOptions) -> dict[str, Any]:
    """``config`` with the preprocessing spec the options state on top of the run's ``own``
    (unchanged when they state none).

    Raises:
        UsageError: the spec's intensity is not the one the run was trained with (which only a
            run trained with ``none`` may leave to the spec), or a bad flag value.
    """
    from segrob.preprocessing import PreprocessingSpec, spec_from_options

    spec = spec_from_options(options.preprocessing, target_spacing=options.target_spacing,
                             orientation=options.orientation, model={"preprocessing": own})
    if spec is None:
        return config
    dims = config.get("spatial_dims")
    if spec.target_spacing and dims and len(spec.target_spacing) != int(dims):
        raise UsageError(f"--target-spacing: the model is {dims}D, so it takes {dims} values, "
                         f"got {len(spec.target_spacing)}")
    trained = PreprocessingSpec.from_dict(own)
    if trained.intensity["method"] != "none" and spec.intensity != trained.intensity:
        raise UsageError(
            f"--preprocessing: the spec's intensity, {spec.describe_intensity()}, is not the "
            f"{trained.describe_intensity()} the run was trained with; state the run's ([intensity] "
            f"method = \"{trained.intensity['method']}\"), or train with --normalization none on images "
            "normalised beforehand"
        )
    return {**config, "preprocessing": spec.to_dict()}


def _trace(model: nn.Module, config: dict[str, Any], options: ExportOptions,
           notes: list[str]) -> tuple[Any, list, list, dict[str, Any]]:
    """The traced ONNX graph, its input and output shapes and its metadata (parity still to come)."""
    fixed = getattr(model, "fixed_size", None) is not None
    example = example_input(model, options.batch_size)
    traced = HalfPrecision(model) if options.precision == "fp16" else model
    proto = to_onnx(traced, example, opset=options.opset, fixed_spatial=fixed)
    input_shape = rename_dims(proto, int(model.spatial_dims))
    output_shape = shape_of(proto.graph.output[0])
    if not fixed and not all(isinstance(s, str) for s in input_shape[2:]):
        notes.append(f"the exporter fixed some spatial axes: input shape {input_shape}")
    metadata = build_metadata(
        model, config, precision=options.precision,
        dynamic_axes={"input": input_shape, "output": output_shape},
        versions={**package_versions("torch", "onnx", "onnxscript", "onnxruntime"),
                  "opset": options.opset},
    )
    return proto, input_shape, output_shape, metadata


def _save_checked(proto: Any, metadata: dict[str, Any], path: Path, *, optimize: bool) -> Any:
    """Write ``proto`` with ``metadata`` to ``path`` and check it; with ``optimize``, replace it by
    onnxruntime's offline-optimised graph (checked too) and return that graph."""
    _save(set_metadata(proto, metadata), path)
    _check(path)
    if not optimize:
        return proto
    from segrob.onnx.metadata import load_onnx
    from segrob.onnx.session import OFFLINE_OPTIMIZATION, optimize_model_file

    optimized = path.with_name(path.name + ".optimized")
    try:
        optimize_model_file(path, optimized)
        proto = load_onnx(optimized)
    finally:
        optimized.unlink(missing_ok=True)
    metadata["graph_optimization"] = {"level": OFFLINE_OPTIMIZATION, "provider": "CPUExecutionProvider"}
    _save(set_metadata(proto, metadata), path)
    _check(path)
    return proto


@torch.no_grad()
def measure_parity(
    model: nn.Module,
    onnx_path: str | os.PathLike,
    samples: list[Any],
    thresholds: ParityThresholds,
    *,
    labels: bool,
    inputs: str,
    device: str = "cpu",
    batch_size: int = 4,
) -> ParityResult:
    """PyTorch (float32) vs onnxruntime logits on fitted ``samples``, compared in their region."""
    from segrob.onnx.session import create_session, run

    session = create_session(onnx_path, device=device)
    reference: list[np.ndarray] = [np.empty(0)] * len(samples)
    candidate: list[np.ndarray] = [np.empty(0)] * len(samples)
    for indices, batch in stack_groups(samples, batch_size):
        ref = model(torch.from_numpy(batch)).float().numpy()
        out = run(session, batch)
        for row, index in enumerate(indices):
            region = (slice(None), *samples[index].region)
            reference[index] = ref[row][region]
            candidate[index] = out[row][region]
    truth = [s.label for s in samples] if labels else None
    return compare_logits(reference, candidate, thresholds, labels=truth, inputs=inputs)


def _save(proto: Any, path: Path) -> None:
    import onnx

    try:
        onnx.save_model(proto, str(path), save_as_external_data=False)
    except ValueError as error:  # protobuf's 2 GB limit
        raise SegrobError(
            f"{path.name}: the model is too large for a single-file ONNX model ({error})"
        ) from error


def _check(path: Path) -> None:
    problem = checker_problem(path)
    if problem is not None:
        raise SegrobError(f"the exported graph fails the ONNX checker: {problem}")
