"""segrob: robustness of medical image segmentation models.

The library returns data and never prints; the ``segrob`` command (package ``segrob_cli``)
renders it.
"""

from segrob.errors import SegrobError, UsageError

__version__ = "0.1.0"

__all__ = ["SegrobError", "UsageError", "__version__"]
