"""Write the renderings of audit reports that a run asks for: HTML, markdown, JUnit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from segrob.io_utils import check_output_file, write_output_file
from segrob.report import AuditReport

#: Each page names segrob in its first bytes, so ``--overwrite`` knows a page segrob wrote.
PAGE_MARKERS = (
    '<meta name="generator" content="segrob">', "## segrob audit", '<testsuites name="segrob audit"'
)


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

    def check(self, *, overwrite: bool, inputs: tuple = ()) -> None:
        """Refuse, before any work, a page path that is an input or a file segrob did not write."""
        for target in self.targets():
            check_output_file(target, overwrite=overwrite, inputs=inputs, is_ours=is_page)


def is_page(path: Path) -> bool:
    """Whether ``path`` is an HTML, markdown or JUnit page segrob wrote."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            head = handle.read(4096)
    except OSError:
        return False
    return any(marker in head for marker in PAGE_MARKERS)


def write_pages(
    reports: Sequence[AuditReport], labels: Sequence[str], pages: Pages, *, overwrite: bool = False,
    inputs: tuple = (),
) -> list[tuple[str, Path]]:
    """Render ``reports`` as ``pages`` asks, each file written atomically; returns (what, where).

    An existing page is replaced only with ``overwrite`` and only when segrob wrote it.
    """
    from segrob.render.ci import junit_xml, markdown_summary
    from segrob.render.html_report import html_report

    pages.check(overwrite=overwrite, inputs=inputs)
    rendered = (("HTML report", pages.html, lambda: html_report(reports, labels, metric=pages.metric)),
                ("markdown summary", pages.markdown, lambda: markdown_summary(reports, labels)),
                ("JUnit XML", pages.junit, lambda: junit_xml(reports, labels)))
    written = []
    for what, target, render in rendered:
        if target is not None:
            text = render()
            written.append((what, write_output_file(target, text, overwrite=overwrite, inputs=inputs,
                                                    is_ours=is_page)))
    return written
