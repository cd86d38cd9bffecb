"""The audit: an onnxruntime robustness benchmark over a perturbation suite.

This package is also callable: ``segrob.audit(model, data, suite="shift", ...)`` is the Python
API, :func:`segrob.api.audit` (a function named like the package could not live beside it:
``import segrob.audit.runner`` would find the function, not the package, under ``segrob.audit``).
"""

import sys
import types

from segrob.audit.aggregate import summarise
from segrob.audit.gates import Bound, evaluate_gates, parse_bounds
from segrob.audit.runner import AuditOptions, audit

__all__ = ["AuditOptions", "Bound", "audit", "evaluate_gates", "parse_bounds", "summarise"]


class _CallablePackage(types.ModuleType):
    def __call__(self, model, data, suite="shift", **options):
        from segrob.api import audit as audit_api

        return audit_api(model, data, suite, **options)


_CallablePackage.__call__.__doc__ = "Audit ``model`` on ``data``: see :func:`segrob.api.audit`."
sys.modules[__name__].__class__ = _CallablePackage
