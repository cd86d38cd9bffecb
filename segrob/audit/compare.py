"""Several audit reports side by side: same suite, same data, or a clear refusal."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from segrob.audit.summary import AuditSummary, CellSummary, CleanSummary
from segrob.errors import SegrobError
from segrob.metrics.table import METRIC_BY_NAME
from segrob.report import AuditReport


@dataclass(frozen=True)
class Comparison:
    """Rows of one figure across models; ``best`` is the index of the best model per row."""

    models: list[str]
    suite: str
    data: str
    dice_rows: list[dict]
    robustness_rows: list[dict]
    summary_rows: list[dict]

    def to_dict(self) -> dict:
        return {
            "models": self.models,
            "suite": self.suite,
            "data": self.data,
            "dice": self.dice_rows,
            "robustness": self.robustness_rows,
            "summary": self.summary_rows,
        }


def model_label(report: AuditReport, path: str | Path) -> str:
    arch = report.model.get("arch")
    stem = Path(path).stem
    return f"{stem} ({arch})" if arch and arch not in stem else stem


def check_comparable(reports: list[AuditReport], paths: list[str]) -> None:
    """Refuse reports made on different suites or data, saying which differs and how."""
    first = reports[0]
    for report, path in zip(reports[1:], paths[1:], strict=True):
        if report.suite != first.suite:
            raise SegrobError(
                f"{path}: suite {report.suite.get('name')!r} differs from {paths[0]}'s "
                f"{first.suite.get('name')!r} (or its members/severities); compare reports of one suite"
            )
        if report.data.get("fingerprint") != first.data.get("fingerprint"):
            raise SegrobError(
                f"{path}: audited on different data ({report.data.get('source')}, "
                f"{report.data.get('n_cases')} cases) than {paths[0]} ({first.data.get('source')}, "
                f"{first.data.get('n_cases')} cases); compare reports of the same data"
            )
        if report.settings.get("seed") != first.settings.get("seed"):
            raise SegrobError(
                f"{path}: audit seed {report.settings.get('seed')} differs from {paths[0]}'s "
                f"{first.settings.get('seed')}, so the perturbations differ; use one seed"
            )


def compare_reports(reports: list[AuditReport], paths: list[str]) -> Comparison:
    """Mean Dice per row, rR and weighted degradation per perturbation, best model marked."""
    if not reports:
        raise SegrobError("no reports to compare")
    check_comparable(reports, paths)
    models = [model_label(r, p) for r, p in zip(reports, paths, strict=True)]
    summaries = [r.summary for r in reports]
    dice_rows = [_metric_row("clean", "dice", [s.clean for s in summaries])]
    for cell in summaries[0].cells:
        rows = [s.cell(cell.perturbation, cell.severity) for s in summaries]
        dice_rows.append(_metric_row(cell.row, "dice", rows))
    robustness_rows = []
    for perturbation in summaries[0].perturbations:
        per_model = [s.perturbation(perturbation.perturbation) for s in summaries]
        rr = [p.relative_robustness if p else None for p in per_model]
        wd = [p.weighted_degradation if p else None for p in per_model]
        row = _row(perturbation.perturbation, rr, higher=True)
        robustness_rows.append({**row, "weighted_degradation": wd})
    suites = [s.suite for s in summaries]
    summary_rows = [
        _clean_row("dice", summaries),
        _row("mean perturbed Dice", [s.mean_dice for s in suites], higher=True),
        _row("suite rR", [s.relative_robustness for s in suites], higher=True),
        _row("suite weighted degradation", [s.weighted_degradation for s in suites], higher=True),
        _row("failure rate", [s.failure_rate for s in suites], higher=False),
        _clean_row("hd95", summaries),
    ]
    return Comparison(
        models=models,
        suite=str(reports[0].suite.get("name")),
        data=str(reports[0].data.get("source")),
        dice_rows=dice_rows,
        robustness_rows=robustness_rows,
        summary_rows=summary_rows,
    )


def _clean_row(metric: str, summaries: list[AuditSummary]) -> dict:
    return _metric_row(f"clean {METRIC_BY_NAME[metric].label}", metric, [s.clean for s in summaries])


def _metric_row(name: str, metric: str, rows: list[CleanSummary | CellSummary | None]) -> dict:
    """One metric's mean across models; the best is the highest or lowest as the table says."""
    values = [row.mean(metric) if row else None for row in rows]
    return _row(name, values, higher=not METRIC_BY_NAME[metric].lower_is_better)


def _row(name: str, values: list[float | None], *, higher: bool) -> dict:
    finite = [(v, i) for i, v in enumerate(values) if v is not None]
    best = None
    if finite:
        best = (max if higher else min)(finite)[1]
    return {"row": name, "values": values, "best": best, "higher_is_better": higher}
