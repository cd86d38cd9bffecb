"""Reduced precision: FP16 by exporting a half-precision copy, INT8 by static quantisation.

* **FP16**: the model's weights and arithmetic are converted with ``module.half()`` before
  export, wrapped so that the graph's input and output stay float32 (a Cast at each end). The
  deployment keeps the same float32 contract as the FP32 model; no ONNX-level converter
  (``onnxconverter-common``) is needed. onnxruntime runs FP16 natively on CUDA; on the CPU it
  inserts casts around operators without an FP16 kernel, so CPU parity is still meaningful.
* **INT8**: ``onnxruntime.quantization.quantize_static`` on the FP32 export, QDQ format,
  symmetric signed 8-bit weights (per output channel) and activations, min-max calibration on
  the run's training cases. Input and output stay float32. Two versions are made and timed side
  by side on a calibration image, and the faster is kept (:func:`quantize_proto`): every
  convolution in INT8, and the same with the convolutions at the input's full resolution left
  in float32. On a CPU, onnxruntime's INT8 3D convolution of few channels over a large volume is
  slower than its float one (it unfolds the volume 27-fold; 161 ms against 141 ms for 16
  channels at 64^3 on a 2-core AMD EPYC, while at 32^3 with 32 channels INT8 took 24 ms against
  61 ms), so a 3D U-Net runs fastest with its first level in float32, and agrees better with
  the float model for it.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import statistics
import tempfile
import time
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


def quantize_proto(proto: Any, calibration: Sequence[Any], out: Path, *,
                   input_name: str = "image", rounds: int = 5) -> tuple[Any, dict[str, Any]]:
    """Statically quantise ``proto`` into ``out``; return the quantised model and how it was chosen.

    ``calibration`` holds fitted samples (:class:`segrob.onnx.samples.Sample`). When some
    convolutions run at the input's full resolution, a second version keeps them in float32;
    both are timed in ``rounds`` alternating runs on the first calibration image (onnxruntime on
    this machine's CPU) and the faster is kept. The returned dict (saved in the file's metadata
    as ``int8``) names the float nodes and gives both median times in ms.
    """
    import onnx

    images = [s.image for s in calibration]
    with tempfile.TemporaryDirectory(prefix="segrob-int8-") as scratch:
        fp32_path, partial = Path(scratch) / "fp32.onnx", Path(scratch) / "partial.onnx"
        onnx.save_model(proto, str(fp32_path))
        quantize_int8(fp32_path, out, images, input_name=input_name)
        full = full_resolution_nodes(proto, (1, *images[0].shape))
        choice: dict[str, Any] = {"float_nodes": [], "ms": None}
        if full:
            quantize_int8(fp32_path, partial, images, input_name=input_name, keep_float=full)
            every, kept = _median_ms([out, partial], images[0][None].astype(np.float32), rounds)
            choice["ms"] = {"every_conv_int8": round(every, 3), "full_resolution_float": round(kept, 3)}
            if kept < every:
                out.write_bytes(partial.read_bytes())
                choice["float_nodes"] = full
        return onnx.load(str(out)), choice


def describe_int8_choice(choice: dict[str, Any]) -> str:
    """One line for people: which version :func:`quantize_proto` kept, and the two timings."""
    if not choice.get("ms"):
        return "every convolution in INT8 (none at full resolution to compare)"
    kept = (f"{len(choice['float_nodes'])} full-resolution node(s) kept in float32"
            if choice["float_nodes"] else "every convolution in INT8")
    ms = choice["ms"]
    return (f"{kept}: the faster on this CPU ({ms['every_conv_int8']:.1f} ms all INT8, "
            f"{ms['full_resolution_float']:.1f} ms full resolution in float32)")


def full_resolution_nodes(proto: Any, shape: Sequence[int]) -> list[str]:
    """Names of the quantisable nodes (:data:`INT8_OPS`) whose output has the spatial size of an
    input of ``shape``, found by ONNX shape inference with the input fixed to ``shape`` (none if
    it cannot tell)."""
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
    return [node.name for node in proto.graph.node
            if node.op_type in INT8_OPS and known.get(node.output[0], [])[2:] == spatial]


def _median_ms(paths: Sequence[Path], batch: np.ndarray, rounds: int) -> list[float]:
    """Median milliseconds of one run of each model on ``batch``, in alternating rounds after a
    warm-up (machine load then weighs on each alike)."""
    from segrob.onnx.session import create_session, run

    sessions = [create_session(path, device="cpu") for path in paths]
    times: list[list[float]] = [[] for _ in sessions]
    for session in sessions:
        run(session, batch)
    for _ in range(max(1, rounds)):
        for session, record in zip(sessions, times, strict=True):
            start = time.perf_counter()
            run(session, batch)
            record.append((time.perf_counter() - start) * 1e3)
    return [statistics.median(record) for record in times]


def float_types(model: Any) -> dict[str, int]:
    """Count of floating initializers per ONNX element type name (for reports and tests)."""
    import onnx

    counts: dict[str, int] = {}
    for tensor in model.graph.initializer:
        name = onnx.TensorProto.DataType.Name(tensor.data_type)
        counts[name] = counts.get(name, 0) + 1
    return counts
