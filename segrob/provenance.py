"""The versions a result was made with, recorded in run configs, exported models and audit
reports, so a reader can tell whether a difference comes from the model or from the software."""

from __future__ import annotations

import importlib
import platform

from segrob import __version__


def package_versions(*packages: str) -> dict[str, str]:
    """segrob's version, then that of each of ``packages`` (import names, in the order given;
    ``"python"`` is the interpreter)."""
    found = {"segrob": __version__}
    for name in packages:
        if name == "python":
            found[name] = platform.python_version()
        else:
            found[name] = importlib.import_module(name).__version__
    return found
