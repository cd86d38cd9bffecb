"""Reduced precision: FP16 by exporting a half-precision copy, INT8 by static quantisation.

* **FP16**: the model's weights and arithmetic are converted with ``module.half()`` before
  export, wrapped so that the graph's input and output stay float32 (a Cast at each end). The
  deployment keeps the same float32 contract as the FP32 model; no ONNX-level converter
  (``onnxconverter-common``) is needed. onnxruntime runs FP16 natively on CUDA; on the CPU it
  inserts casts around operators without an FP16 kernel, so CPU parity is still meaningful.
* **INT8**: ``onnxruntime.quantization.quantize_static`` on the FP32 export, QDQ format,
  symmetric signed 8-bit weights (per output channel) and activations, min-max calibration on
  the run's training cases. Input and output stay float32. The convolutions at the input's full
  resolution may stay in float32 (:func:`quantize_proto`); by default both versions are timed
  side by side on a calibration image and full resolution stays in float32 unless all-INT8 is
  clearly faster. On a CPU, onnxruntime's INT8 3D convolution of few channels over a large volume
  can be slower than its float one (onnxruntime's profiler, 2-core AMD EPYC: 156-161 ms against
  137-141 ms for 16 channels at 64^3, while at 32^3 with 32 channels INT8 took 24 ms against
  61 ms), and float32 there agrees better with the float model.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from segrob.errors import SegrobError, first_line

#: Operators worth quantising in these networks; normalisation and pooling stay in float.
INT8_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")


class HalfPrecision(nn.Module):
    """A half-precision copy of ``model`` that takes and returns float32 tensors."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = copy.deepcopy(model).half().eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.half()).float()


@contextlib.contextmanager
def _quiet_logging() -> Iterator[None]:
    """onnxruntime's quantiser reports advice through the root logger; the library is silent."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


class _Reader:
    """The calibration reader protocol: one ``{input_name: (1, C, *spatial)}`` per call."""

    def __init__(self, input_name: str, images: Sequence[np.ndarray]):
        self._feeds = iter([{input_name: image[None].astype(np.float32)} for image in images])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)

    def rewind(self) -> None:  # part of the protocol; calibration reads the data once
        pass


def quantize_int8(
    fp32_path: str | os.PathLike,
    out_path: str | os.PathLike,
    calibration: Sequence[np.ndarray],
    *,
    input_name: str,
    keep_float: Sequence[str] = (),
) -> Path:
    """Write an INT8 (QDQ) model of ``fp32_path`` to ``out_path``.

    Args:
        calibration: normalised, fitted images ``(C, *spatial)`` (the run's training cases).
        input_name: the graph input to feed.
        keep_float: names of nodes left in float32.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    if not calibration:
        raise SegrobError("INT8 quantisation needs at least one calibration image")

    class Reader(_Reader, CalibrationDataReader):
        pass

    try:
        with _quiet_logging():
            quantize_static(
                str(fp32_path),
                str(out_path),
                Reader(input_name, calibration),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(INT8_OPS),
                per_channel=True,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
                nodes_to_exclude=list(keep_float),
                extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
            )
    except Exception as error:  # onnxruntime raises plain exceptions from deep inside
        raise SegrobError(f"INT8 quantisation failed: {first_line(error)}") from error
    return Path(out_path)


#: Where the convolutions at the input's full resolution run in an INT8 export: ``auto`` times
#: both versions and keeps full resolution in float32 unless all-INT8 is clearly faster.
FULL_RESOLUTION_CHOICES = ("auto", "int8", "float")
#: ``auto`` keeps full resolution in float32 (closer to the float model) unless every convolution
#: in INT8 is faster by more than this share: closer differences are within a busy CPU's noise.
CLEARLY_FASTER = 0.05


def quantize_proto(proto: Any, calibration: Sequence[Any], out: Path, *, input_name: str = "image",
                   full_resolution: str = "auto", rounds: int = 7) -> tuple[Any, dict[str, Any]]:
    """Statically quantise ``proto`` into ``out``; return the quantised model and how it was made.

    ``calibration`` holds fitted samples (:class:`segrob.onnx.samples.Sample`).
    ``full_resolution`` (one of :data:`FULL_RESOLUTION_CHOICES`, as ``ExportOptions`` checks)
    places the convolutions at the input's full resolution: in INT8, in float32, or ``auto``: both
    versions timed in ``rounds`` alternating runs on the first calibration image (onnxruntime on
    this machine's CPU), full resolution kept in float32 unless all-INT8 is
    :data:`CLEARLY_FASTER`. The returned dict (the file's ``int8`` metadata) names the float
    nodes, the choice and, for ``auto``, both median times in ms. A model with every quantisable
    node at full resolution is quantised whole.
    """
    import onnx

    images = [s.image for s in calibration]
    full = full_resolution_nodes(proto, (1, *images[0].shape))
    quantisable = [node for node in proto.graph.node if node.op_type in INT8_OPS]
    # Only a part left in float32 is still an INT8 model.
    if not full or len(full) >= len(quantisable):
        full_resolution = "int8"
    choice: dict[str, Any] = {"full_resolution": full_resolution, "float_nodes": [], "ms": None}
    with tempfile.TemporaryDirectory(prefix="segrob-int8-") as scratch:
        fp32_path, whole = Path(scratch) / "fp32.onnx", Path(scratch) / "whole.onnx"
        onnx.save_model(proto, str(fp32_path))
        if full_resolution != "float":
            quantize_int8(fp32_path, whole if full_resolution == "auto" else out, images,
                          input_name=input_name)
        if full_resolution != "int8":
            quantize_int8(fp32_path, out, images, input_name=input_name, keep_float=full)
            choice["float_nodes"] = full
        if full_resolution == "auto":
            all_int8, part_float = _median_ms([whole, out], images[0][None].astype(np.float32), rounds)
            choice["ms"] = {"every_conv_int8": round(all_int8, 3),
                            "full_resolution_float": round(part_float, 3)}
            if all_int8 < part_float * (1 - CLEARLY_FASTER):
                out.write_bytes(whole.read_bytes())
                choice["float_nodes"] = []
        return onnx.load(str(out)), choice


def describe_int8_choice(choice: dict[str, Any]) -> str:
    """One line for people: where :func:`quantize_proto` put the full-resolution convolutions."""
    kept = (f"{len(choice['float_nodes'])} full-resolution node(s) in float32"
            if choice["float_nodes"] else "every convolution in INT8")
    ms = choice["ms"]
    if not ms:
        return f"{kept} ({choice['full_resolution']})"
    return (f"{kept} (auto: {ms['every_conv_int8']:.1f} ms all INT8, "
            f"{ms['full_resolution_float']:.1f} ms full resolution in float32, on this CPU)")


def full_resolution_nodes(proto: Any, shape: Sequence[int]) -> list[str]:
    """Names of the quantisable nodes (:data:`INT8_OPS`) whose output has the spatial size of an
    input of ``shape``, found by ONNX shape inference with the input fixed to ``shape`` (none
    where it cannot tell)."""
    import onnx

    fixed = copy.deepcopy(proto)
    dims = fixed.graph.input[0].type.tensor_type.shape.dim
    if len(dims) != len(shape):
        return []
    for dim, size in zip(dims, shape, strict=True):
        dim.ClearField("dim_param")
        dim.dim_value = int(size)
    try:
        inferred = onnx.shape_inference.infer_shapes(fixed)
    except Exception:  # onnx's checker errors: no shapes, so nothing is known to be full-size
        return []
    known = {info.name: [d.dim_value if d.HasField("dim_value") else None
                         for d in info.type.tensor_type.shape.dim]
             for info in [*inferred.graph.value_info, *inferred.graph.output]}
    spatial = [int(size) for size in shape[2:]]
    # Nodes are excluded from quantisation by name: an unnamed one cannot be.
    return [node.name for node in proto.graph.node
            if node.name and node.op_type in INT8_OPS and known.get(node.output[0], [])[2:] == spatial]


def _median_ms(paths: Sequence[Path], batch: np.ndarray, rounds: int) -> list[float]:
    """Median milliseconds of one run of each model on ``batch`` (onnxruntime, this CPU), in
    alternating rounds after a warm-up."""
    from segrob.onnx.probes import alternating_median_ms
    from segrob.onnx.session import create_session, run

    sessions = [create_session(path, device="cpu") for path in paths]
    for session in sessions:
        run(session, batch)
    return alternating_median_ms([lambda s=session: run(s, batch) for session in sessions], rounds=rounds)


def float_types(model: Any) -> dict[str, int]:
    """Count of floating initializers per ONNX element type name (for reports and tests)."""
    import onnx

    counts: dict[str, int] = {}
    for tensor in model.graph.initializer:
        name = onnx.TensorProto.DataType.Name(tensor.data_type)
        counts[name] = counts.get(name, 0) + 1
    return counts
