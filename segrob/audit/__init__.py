"""The audit: an onnxruntime robustness benchmark over a perturbation suite."""

from segrob.audit.aggregate import summarise
from segrob.audit.gates import Bound, evaluate_gates, parse_bounds
from segrob.audit.runner import AuditOptions, audit

__all__ = ["AuditOptions", "Bound", "audit", "evaluate_gates", "parse_bounds", "summarise"]
