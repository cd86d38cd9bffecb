"""Write the renderings of audit reports that a run asks for: HTML, markdown, JUnit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from segrob.io_utils import write_text_atomic
from segrob.report import AuditReport


@dataclass(frozen=True)
class Pages:
    """Where to write each rendering (``None``: not asked for) and the HTML's second metric."""

    html: Path | None = None
    markdown: Path | None = None
    junit: Path | None = None
    metric: str = "nsd"

    @property
    def any(self) -> bool:
        return any(p is not None for p in (self.html, self.markdown, self.junit))

    def targets(self) -> list[Path]:
        return [p for p in (self.html, self.markdown, self.junit) if p is not None]


def write_pages(
    reports: Sequence[AuditReport], labels: Sequence[str], pages: Pages
) -> list[tuple[str, Path]]:
    """Render ``reports`` as ``pages`` asks, each file written atomically; returns (what, where)."""
    from segrob.render.ci import junit_xml, markdown_summary
    from segrob.render.html_report import html_report

    written = []
    if pages.html is not None:
        text = html_report(reports, labels, metric=pages.metric)
        written.append(("HTML report", write_text_atomic(pages.html, text)))
    if pages.markdown is not None:
        text = markdown_summary(reports, labels)
        written.append(("markdown summary", write_text_atomic(pages.markdown, text)))
    if pages.junit is not None:
        written.append(("JUnit XML", write_text_atomic(pages.junit, junit_xml(reports, labels))))
    return written
