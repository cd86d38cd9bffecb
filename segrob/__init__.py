"""segrob: robustness of medical image segmentation models.

The library returns data and never prints; the ``segrob`` command (package ``segrob_cli``)
renders it. ``segrob.audit(model, data, suite="shift", ...)`` audits a model from Python (see
:func:`segrob.api.audit`); the audit subpackage is imported on first use, so ``import segrob``
stays light.
"""

from segrob.errors import SegrobError, UsageError

__version__ = "0.1.0"

__all__ = ["SegrobError", "UsageError", "__version__", "audit"]


def __getattr__(name: str):
    if name == "audit":
        import importlib

        return importlib.import_module("segrob.audit")  # callable: the Python API
    raise AttributeError(f"module 'segrob' has no attribute {name!r}")
