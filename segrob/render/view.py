"""What the HTML report and the CI summaries show of an audit report, read in one place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from segrob.audit.summary import AuditSummary, CellSummary, PerturbationSummary, Stat, WorstCell
from segrob.render.plots import Series
from segrob.report import AuditReport


@dataclass(frozen=True)
class ReportView:
    """One report as the pictures show it, with the model's display label."""

    label: str
    report: AuditReport

    @property
    def summary(self) -> AuditSummary:
        return self.report.summary

    @property
    def clean_dice(self) -> Stat:
        return self.summary.clean.stat("dice")

    @property
    def perturbations(self) -> list[str]:
        return list(dict.fromkeys(cell.perturbation for cell in self.summary.cells))

    def perturbation(self, name: str) -> PerturbationSummary | None:
        return next((p for p in self.summary.perturbations if p.perturbation == name), None)

    def _cells(self, perturbation: str) -> list[CellSummary]:
        cells = [c for c in self.summary.cells if c.perturbation == perturbation]
        return sorted(cells, key=lambda c: c.severity)

    def series(self, perturbation: str, metric: str) -> Series:
        """``metric`` against severity, the clean value at severity 0."""
        cells = self._cells(perturbation)
        stats = [self.summary.clean.stat(metric)] + [c.stat(metric) for c in cells]
        return Series(
            model=self.label,
            severities=[0] + [c.severity for c in cells],
            mean=[s.mean for s in stats],
            low=[s.ci_low for s in stats],
            high=[s.ci_high for s in stats],
        )

    def delta_grid(self) -> tuple[list[str], list[int], np.ndarray, np.ndarray]:
        """Paired change in Dice from clean per (perturbation, severity) and its significance."""
        names = self.perturbations
        severities = sorted({c.severity for c in self.summary.cells})
        deltas = np.full((len(names), len(severities)), np.nan)
        significant = np.zeros(deltas.shape, dtype=bool)
        for cell in self.summary.cells:
            row, column = names.index(cell.perturbation), severities.index(cell.severity)
            value = cell.deltas["dice"].mean if "dice" in cell.deltas else None
            deltas[row, column] = np.nan if value is None else value
            significant[row, column] = cell.significant_drop
        return names, severities, deltas, significant

    @property
    def worst(self) -> WorstCell | None:
        return self.summary.suite.worst

    @property
    def gates(self) -> dict[str, Any] | None:
        return self.report.gates
