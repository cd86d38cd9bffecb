"""Several audit reports side by side: same suite, same data, or a clear refusal.

Models are also compared pairwise on the cases both scored: the mean of the per-case differences
with a paired bootstrap interval (BCa, 95%), so that a lead inside the noise reads "no
significant difference between A and B" rather than crowning a winner on point estimates.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np

from segrob.audit.records import CLEAN
from segrob.audit.summary import AuditSummary, CellSummary, CleanSummary
from segrob.errors import SegrobError
from segrob.metrics.stats import paired_bootstrap_ci
from segrob.metrics.table import METRIC_BY_NAME
from segrob.report import AuditReport

#: Per (perturbation, severity), each case's value of one metric (NaN where it was not scored).
CaseTable = dict[tuple[str, int], dict[str, float]]
#: Settings that change the numbers themselves, with their value in reports that predate them.
SCORING_SETTINGS = {"nsd_tolerance_mm": 1.0, "nsd_definition": "voxel", "empty_policy": "segrob"}
CONFIDENCE = 0.95


@dataclass(frozen=True)
class PairedDifference:
    """``first - second`` in one figure, averaged over the cases both models scored.

    ``ci_low``/``ci_high`` is the paired bootstrap interval (BCa, 95%); ``None`` when fewer than
    two shared cases have values, so nothing can be said about the difference.
    """

    first: str
    second: str
    figure: str
    n_cases: int
    difference: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None

    @property
    def significant(self) -> bool:
        """Whether the interval excludes zero."""
        return self.ci_low is not None and (self.ci_low > 0 or self.ci_high < 0)

    def statement(self) -> str:
        """One sentence: which model is ahead, or that neither is."""
        if self.ci_low is None:
            return (f"{self.first} vs {self.second}: {self.figure} not testable "
                    f"({self.n_cases} shared case(s) with per-case values)")
        interval = (f"{self.first} - {self.second} {self.difference:+.3f} "
                    f"[{self.ci_low:+.3f}, {self.ci_high:+.3f}], {self.n_cases} shared cases")
        if not self.significant:
            return (f"no significant difference between {self.first} and {self.second} "
                    f"in {self.figure} ({interval})")
        ahead, behind = (self.first, self.second) if self.difference > 0 else (self.second, self.first)
        return f"{ahead} is significantly ahead of {behind} in {self.figure} ({interval})"

    def to_dict(self) -> dict:
        return {**asdict(self), "significant": self.significant, "statement": self.statement()}


@dataclass(frozen=True)
class Comparison:
    """Rows of one figure across models; ``best`` is the index of the best model per row."""

    models: list[str]
    suite: str
    data: str
    dice_rows: list[dict]
    robustness_rows: list[dict]
    summary_rows: list[dict]
    #: Every pair of models on clean Dice and on mean perturbed Dice, per case.
    pairwise: list[PairedDifference] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "models": self.models,
            "suite": self.suite,
            "data": self.data,
            "dice": self.dice_rows,
            "robustness": self.robustness_rows,
            "summary": self.summary_rows,
            "pairwise": [p.to_dict() for p in self.pairwise],
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
        for key, default in SCORING_SETTINGS.items():
            theirs, ours = report.settings.get(key, default), first.settings.get(key, default)
            if theirs != ours:
                raise SegrobError(f"{path}: scored with {key} {theirs!r}, {paths[0]} with {ours!r}; "
                                  "compare reports scored the same way")


def compare_reports(reports: list[AuditReport], paths: list[str]) -> Comparison:
    """Mean Dice per row, rR and weighted degradation per perturbation, best model marked.

    A per-case row's ``significant`` says whether its best model beats every other one on the
    shared cases (paired interval excluding zero); ``None`` where per-case values are missing
    (rows such as rR are ratios of means and have none).
    """
    if not reports:
        raise SegrobError("no reports to compare")
    check_comparable(reports, paths)
    models = [model_label(r, p) for r, p in zip(reports, paths, strict=True)]
    summaries = [r.summary for r in reports]
    dice = [case_values(r, "dice") for r in reports]
    clean_dice = [table.get((CLEAN, 0), {}) for table in dice]
    dice_rows = [_tested(_metric_row("clean", "dice", [s.clean for s in summaries]), models, clean_dice)]
    for cell in summaries[0].cells:
        rows = [s.cell(cell.perturbation, cell.severity) for s in summaries]
        key = (cell.perturbation, cell.severity)
        dice_rows.append(_tested(_metric_row(cell.row, "dice", rows), models, [t.get(key, {}) for t in dice]))
    robustness_rows = []
    for perturbation in summaries[0].perturbations:
        per_model = [s.perturbation(perturbation.perturbation) for s in summaries]
        rr = [p.relative_robustness if p else None for p in per_model]
        wd = [p.weighted_degradation if p else None for p in per_model]
        row = _row(perturbation.perturbation, rr, higher=True)
        robustness_rows.append({**row, "weighted_degradation": wd})
    perturbed = [perturbed_per_case(table) for table in dice]
    suites = [s.suite for s in summaries]
    hd95 = [case_values(r, "hd95").get((CLEAN, 0), {}) for r in reports]
    summary_rows = [
        _tested(_clean_row("dice", summaries), models, clean_dice),
        _tested(_row("mean perturbed Dice", [s.mean_dice for s in suites], higher=True), models, perturbed),
        _row("suite rR", [s.relative_robustness for s in suites], higher=True),
        _row("suite weighted degradation", [s.weighted_degradation for s in suites], higher=True),
        _row("failure rate", [s.failure_rate for s in suites], higher=False),
        _tested(_clean_row("hd95", summaries), models, hd95),
    ]
    return Comparison(
        models=models,
        suite=str(reports[0].suite.get("name")),
        data=str(reports[0].data.get("source")),
        dice_rows=dice_rows,
        robustness_rows=robustness_rows,
        summary_rows=summary_rows,
        pairwise=pairwise_differences(models, clean_dice, perturbed),
    )


def pairwise_differences(models: list[str], clean_dice: list[dict[str, float]],
                         perturbed: list[dict[str, float]]) -> list[PairedDifference]:
    """Every pair of models on clean Dice and on mean perturbed Dice, per case (each model's
    ``case -> value``, as :func:`case_values` and :func:`perturbed_per_case` give them)."""
    return [
        paired_difference(models[i], models[j], figure, values[i], values[j])
        for i, j in combinations(range(len(models)), 2)
        for figure, values in (("clean Dice", clean_dice), ("mean perturbed Dice", perturbed))
    ]


def report_pairs(reports: list[AuditReport], models: list[str]) -> list[PairedDifference]:
    """:func:`pairwise_differences` of saved reports, read from their per-case records."""
    dice = [case_values(r, "dice") for r in reports]
    return pairwise_differences(models, [table.get((CLEAN, 0), {}) for table in dice],
                                [perturbed_per_case(table) for table in dice])


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
    return {"row": name, "values": values, "best": best, "higher_is_better": higher, "significant": None}


def _tested(row: dict, models: list[str], per_case: list[dict[str, float]]) -> dict:
    """``row`` with ``significant``: its best model ahead of each other one, paired, on shared cases."""
    best = row["best"]
    if best is None or len(models) < 2:
        return row
    tests = [paired_difference(models[best], models[i], row["row"], per_case[best], per_case[i])
             for i in range(len(models)) if i != best and row["values"][i] is not None]
    if not tests or any(t.ci_low is None for t in tests):
        return row
    ahead = all(t.significant and (t.difference > 0) == row["higher_is_better"] for t in tests)
    return {**row, "significant": ahead}


def case_values(report: AuditReport, metric: str) -> CaseTable:
    """Each case's ``metric`` per (perturbation, severity), from the report's cell records."""
    table: CaseTable = defaultdict(dict)
    for record in report.records:
        value = (record.get("metrics") or {}).get(metric)
        cell = (str(record["perturbation"]), int(record["severity"]))
        table[cell][str(record["case"])] = np.nan if value is None else float(value)
    return dict(table)


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else np.nan


def perturbed_per_case(table: CaseTable) -> dict[str, float]:
    """Each case's mean over the perturbed cells: averaged over cases, the suite's mean Dice."""
    collected: dict[str, list[float]] = defaultdict(list)
    for (name, _), cases in table.items():
        if name != CLEAN:
            for case, value in cases.items():
                collected[case].append(value)
    return {case: _nanmean(values) for case, values in collected.items()}


def retention_per_case(table: CaseTable) -> dict[str, float]:
    """Each case's mean over perturbations of its mean over severities.

    Averaged over cases and divided by the mean clean value, this is the suite's rR (exactly,
    when every cell scored every case): ``rR = mean_p mean_s mean_i D / mean_i C``.
    """
    collected: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for (name, _), cases in table.items():
        if name != CLEAN:
            for case, value in cases.items():
                collected[case][name].append(value)
    return {case: _nanmean([_nanmean(v) for v in per.values()]) for case, per in collected.items()}


def _shared(*columns: dict[str, float]) -> list[np.ndarray]:
    """The columns' values on the cases every one of them has a finite value for, in case order."""
    cases = sorted(set.intersection(*(set(c) for c in columns)))
    cases = [c for c in cases if all(np.isfinite(column[c]) for column in columns)]
    return [np.array([column[c] for c in cases], dtype=np.float64) for column in columns]


def paired_difference(
    first: str, second: str, figure: str, a: dict[str, float], b: dict[str, float], *, seed: int = 0
) -> PairedDifference:
    """``mean(a - b)`` over the shared cases with its paired BCa bootstrap interval."""
    x, y = _shared(a, b)
    if x.size < 2:
        return PairedDifference(first, second, figure, int(x.size))
    low, high = paired_bootstrap_ci(y, x, seed=seed, confidence=CONFIDENCE)
    return PairedDifference(first, second, figure, int(x.size), float((x - y).mean()), low, high)


def paired_score_difference(
    first: str, second: str, a: CaseTable, b: CaseTable, weights: dict[str, float], *, seed: int = 0,
    figure: str = "score",
) -> PairedDifference:
    """``score(first) - score(second)``, ``score = w_in x clean Dice + w_out x rR``, paired by case.

    The score is not a mean of per-case values (rR is a ratio of means), so the bootstrap
    resamples the shared cases, recomputes both scores on each resample and takes the BCa
    interval of the difference (``scipy.stats.bootstrap``, paired).
    """
    columns = _shared(a.get((CLEAN, 0), {}), retention_per_case(a),
                      b.get((CLEAN, 0), {}), retention_per_case(b))
    n = int(columns[0].size)
    if n < 2 or columns[0].mean() <= 0 or columns[2].mean() <= 0:
        return PairedDifference(first, second, figure, n)

    def score(clean: np.ndarray, retention: np.ndarray, axis: int) -> np.ndarray:
        mean_clean = clean.mean(axis=axis)
        with np.errstate(divide="ignore", invalid="ignore"):
            rr = retention.mean(axis=axis) / mean_clean
        return weights["in_domain"] * mean_clean + weights["retention"] * rr

    def difference(ca, ra, cb, rb, axis=-1):
        return score(ca, ra, axis) - score(cb, rb, axis)

    observed = float(difference(*columns))
    low, high = _bootstrap_statistic(columns, difference, seed)
    return PairedDifference(first, second, figure, n, observed, low, high)


def _bootstrap_statistic(columns: list[np.ndarray], statistic: Callable, seed: int) -> tuple[float, float]:
    """Paired BCa interval of ``statistic``; the percentile one where BCa is undefined, as segrob's."""
    from scipy.stats import bootstrap

    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # degenerate resamples: handled by the checks below
            result = bootstrap(tuple(columns), statistic, paired=True, vectorized=True, n_resamples=2000,
                               confidence_level=CONFIDENCE, method=method, random_state=seed)
        low, high = (float(v) for v in result.confidence_interval)
        if np.isfinite(low) and np.isfinite(high):
            return low, high
    observed = float(statistic(*columns))
    return observed, observed  # every resample gave the same value
