"""Several audit reports side by side: same suite, same data, or a clear refusal."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from segrob.errors import SegrobError
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
    dice_rows = [_row("clean", [r.summary["clean"]["dice"]["mean"] for r in reports], higher=True)]
    keys = [(c["perturbation"], c["severity"]) for c in reports[0].summary["cells"]]
    cells = [{(c["perturbation"], c["severity"]): c for c in r.summary["cells"]} for r in reports]
    for key in keys:
        values = [table.get(key, {}).get("dice", {}).get("mean") for table in cells]
        dice_rows.append(_row(f"{key[0]} s{key[1]}", values, higher=True))
    robustness_rows = []
    per_model = [{p["perturbation"]: p for p in r.summary["perturbations"]} for r in reports]
    for name in per_model[0]:
        rr = [table.get(name, {}).get("relative_robustness") for table in per_model]
        wd = [table.get(name, {}).get("weighted_degradation") for table in per_model]
        robustness_rows.append({**_row(name, rr, higher=True), "weighted_degradation": wd})
    summary_rows = [
        _row("clean Dice", [r.summary["clean"]["dice"]["mean"] for r in reports], higher=True),
        _row("mean perturbed Dice", [r.summary["suite"]["mean_dice"] for r in reports], higher=True),
        _row("suite rR", [r.summary["suite"]["relative_robustness"] for r in reports], higher=True),
        _row("suite weighted degradation", [r.summary["suite"]["weighted_degradation"] for r in reports],
             higher=True),
        _row("failure rate", [r.summary["suite"]["failure_rate"] for r in reports], higher=False),
        _row("clean HD95", [r.summary["clean"]["hd95"]["mean"] for r in reports], higher=False),
    ]
    return Comparison(
        models=models,
        suite=str(reports[0].suite.get("name")),
        data=str(reports[0].data.get("source")),
        dice_rows=dice_rows,
        robustness_rows=robustness_rows,
        summary_rows=summary_rows,
    )


def _row(name: str, values: list[float | None], *, higher: bool) -> dict:
    finite = [(v, i) for i, v in enumerate(values) if v is not None]
    best = None
    if finite:
        best = (max if higher else min)(finite)[1]
    return {"row": name, "values": values, "best": best, "higher_is_better": higher}
