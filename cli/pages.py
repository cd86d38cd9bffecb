"""The ``--html``/``--markdown``/``--junit`` files of ``audit`` and ``report``."""

from __future__ import annotations

from pathlib import Path

from .output import info


def pages_from(html: Path | None, markdown: Path | None, junit: Path | None, metric: str | None):
    from segrob.render.pages import Pages

    return Pages(html=html, markdown=markdown, junit=junit, metric=metric or "nsd")


def check_outputs(report: Path | None, pages, *, overwrite: bool, inputs) -> None:
    """Refuse, before any work, an output that is an input or a file segrob may not replace."""
    from segrob.io_utils import check_output_file
    from segrob.report import is_report_file

    if report is not None:
        check_output_file(report, overwrite=overwrite, inputs=inputs, is_ours=is_report_file)
    pages.check(overwrite=overwrite, inputs=inputs)


def write_and_tell(reports, labels, pages, *, overwrite: bool = False, inputs=()) -> None:
    """Write the asked-for renderings and say where, on stderr (stdout may be JSON)."""
    from segrob.render.pages import write_pages

    for what, path in write_pages(reports, labels, pages, overwrite=overwrite, inputs=inputs):
        info(f"{what} written to {path}")
