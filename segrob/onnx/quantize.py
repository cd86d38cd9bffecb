"""Reduced precision: FP16 by exporting a half-precision copy, INT8 by static quantisation.

* **FP16**: the model's weights and arithmetic are converted with ``module.half()`` before
  export, wrapped so that the graph's input and output stay float32 (a Cast at each end). The
  deployment keeps the same float32 contract as the FP32 model; no ONNX-level converter
  (``onnxconverter-common``) is needed. onnxruntime runs FP16 natively on CUDA; on the CPU it
  inserts casts around operators without an FP16 kernel, so CPU parity is still meaningful.
* **INT8**: ``onnxruntime.quantization.quantize_static`` on the FP32 export, QDQ format,
  symmetric signed 8-bit weights (per output channel) and activations, min-max calibration on
  the run's training cases. Input and output stay float32.
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
) -> Path:
    """Write an INT8 (QDQ) model of ``fp32_path`` to ``out_path``.

    Args:
        calibration: normalised, fitted images ``(C, *spatial)`` (the run's training cases).
        input_name: the graph input to feed.
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
                extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
            )
    except Exception as error:  # onnxruntime raises plain exceptions from deep inside
        raise SegrobError(f"INT8 quantisation failed: {first_line(error)}") from error
    return Path(out_path)


def quantize_proto(proto: Any, calibration: Sequence[Any], out: Path, *,
                   input_name: str = "image") -> Any:
    """Statically quantise ``proto`` into ``out`` and return the quantised model.

    ``calibration`` holds fitted samples (:class:`segrob.onnx.samples.Sample`).
    """
    import onnx

    with tempfile.TemporaryDirectory(prefix="segrob-int8-") as scratch:
        fp32_path = Path(scratch) / "fp32.onnx"
        onnx.save_model(proto, str(fp32_path))
        quantize_int8(fp32_path, out, [s.image for s in calibration], input_name=input_name)
    return onnx.load(str(out))


def float_types(model: Any) -> dict[str, int]:
    """Count of floating initializers per ONNX element type name (for reports and tests)."""
    import onnx

    counts: dict[str, int] = {}
    for tensor in model.graph.initializer:
        name = onnx.TensorProto.DataType.Name(tensor.data_type)
        counts[name] = counts.get(name, 0) + 1
    return counts
