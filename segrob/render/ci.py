"""CI renderings of an audit: a markdown summary for a job page and JUnit XML, one case per gate.

Both are plain text built from the report's figures; parsers read them back in the tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from xml.etree import ElementTree

from segrob.audit.compare import report_pairs
from segrob.audit.summary import WorstCell
from segrob.render.view import ReportView
from segrob.report import AuditReport


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def markdown_summary(reports: Sequence[AuditReport], labels: Sequence[str]) -> str:
    """A compact summary: the verdict per model, then rR and worst Dice per perturbation."""
    views = [ReportView(label, r) for r, label in zip(reports, labels, strict=True)]
    lines = ["## segrob audit", ""]
    lines += ["| model | data | suite | clean Dice [95% CI] | suite rR | worst cell | gate |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for view in views:
        clean, worst = view.clean_dice, view.worst
        lines.append(
            f"| {view.label} | {view.report.data['source']} ({view.report.data['n_cases']} cases) "
            f"| {view.report.suite['name']} "
            f"| {_num(clean.mean)} [{_num(clean.ci_low)}, {_num(clean.ci_high)}] "
            f"| {_num(view.summary.suite.relative_robustness)} "
            f"| {_worst(worst)} | {_gate(view)} |"
        )
    names = list(dict.fromkeys(n for v in views for n in v.perturbations))
    lines += ["", "| perturbation | " + " | ".join(f"{v.label} rR / worst Dice" for v in views) + " |",
              "| --- |" + " --- |" * len(views)]
    for name in names:
        cells = []
        for view in views:
            row = view.perturbation(name)
            cells.append("–" if row is None else f"{_num(row.relative_robustness)} / {_num(row.worst_dice)}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if len(views) > 1:
        lines += ["", "**Paired comparisons** (per case, 95% BCa interval)", ""]
        lines += [f"- {pair.statement()}" for pair in report_pairs(list(reports), list(labels))]
    failures = [(v.label, f) for v in views for f in ((v.gates or {}).get("failures") or [])]
    if failures:
        lines += ["", "**Gate failures**", ""]
        lines += [f"- {label}: {f['row']}: {f['key']} {_num(f['value'])} < {f['minimum']}"
                  for label, f in failures]
    return "\n".join(lines) + "\n"


def _worst(worst: WorstCell | None) -> str:
    return "–" if worst is None else f"{worst.perturbation} s{worst.severity} ({_num(worst.dice)})"


def _gate(view: ReportView) -> str:
    if not view.gates:
        return "not set"
    return "passed" if view.gates["passed"] else f"**failed** ({len(view.gates['failures'])})"


def junit_xml(reports: Sequence[AuditReport], labels: Sequence[str]) -> str:
    """One test suite per model, one test case per gate bound; a failure names every row under it.

    A report audited without ``--fail-under`` gives a suite with one skipped case, so CI shows
    that no gate was set rather than a silent pass.
    """
    root = ElementTree.Element("testsuites", name="segrob audit")
    total = failed = 0
    for report, label in zip(reports, labels, strict=True):
        suite = ElementTree.SubElement(root, "testsuite", name=f"segrob audit {label}")
        gates = report.gates
        bounds = (gates or {}).get("bounds") or []
        suite_failures = 0
        for bound in bounds:
            name = f"{bound['key']} >= {bound['minimum']}"
            case = ElementTree.SubElement(suite, "testcase", classname=f"segrob.{label}", name=name)
            under = [f for f in gates["failures"] if f["key"] == bound["key"]]
            if under:
                suite_failures += 1
                failure = ElementTree.SubElement(
                    case, "failure", message=f"{len(under)} row(s) under {name}", type="gate"
                )
                failure.text = "\n".join(f"{f['row']}: {f['key']} {_num(f['value'])} < {f['minimum']}"
                                         for f in under)
        if not bounds:
            case = ElementTree.SubElement(suite, "testcase", classname=f"segrob.{label}", name="gate")
            ElementTree.SubElement(case, "skipped", message="no --fail-under gate was set")
        cases = max(1, len(bounds))
        suite.set("tests", str(cases))
        suite.set("failures", str(suite_failures))
        suite.set("skipped", "0" if bounds else "1")
        total += cases
        failed += suite_failures
    root.set("tests", str(total))
    root.set("failures", str(failed))
    ElementTree.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ElementTree.tostring(root, encoding="unicode") + "\n"
