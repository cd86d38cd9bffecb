"""ONNX export, parity, metadata, deployment checks and onnxruntime sessions.

An export is written only when the ONNX model's logits match PyTorch's on held-out inputs (parity),
and it carries ``segrob.*`` metadata (channels, classes, normalisation, accepted sizes, training
FBR range) so that ``check`` and ``audit`` need nothing but the file.

The exporter (:mod:`segrob.onnx.export`, imports torch) is not re-exported here, so that the
audit can open sessions without loading PyTorch's exporter.
"""

from segrob.onnx.checks import CheckItem, CheckReport, ShapeProbe, check_model_file
from segrob.onnx.metadata import EXPECTED_KEYS, PREFIX, load_onnx, missing_keys, set_metadata
from segrob.onnx.parity import ParityResult, ParityThresholds, compare_logits
from segrob.onnx.session import SessionInfo, create_session, read_metadata, run

__all__ = [
    "EXPECTED_KEYS",
    "PREFIX",
    "CheckItem",
    "CheckReport",
    "ParityResult",
    "ParityThresholds",
    "SessionInfo",
    "ShapeProbe",
    "check_model_file",
    "compare_logits",
    "create_session",
    "load_onnx",
    "missing_keys",
    "read_metadata",
    "run",
    "set_metadata",
]
