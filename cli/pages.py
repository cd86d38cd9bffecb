"""The ``--html``/``--markdown``/``--junit`` files of ``audit`` and ``report``."""

from __future__ import annotations

from pathlib import Path

from .output import info


def pages_from(html: Path | None, markdown: Path | None, junit: Path | None, metric: str | None):
    from segrob.render.pages import Pages

    return Pages(html=html, markdown=markdown, junit=junit, metric=metric or "nsd")


def write_and_tell(reports, labels, pages) -> None:
    """Write the asked-for renderings and say where, on stderr (stdout may be JSON)."""
    from segrob.render.pages import write_pages

    for what, path in write_pages(reports, labels, pages):
        info(f"{what} written to {path}")
