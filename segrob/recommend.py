"""Architecture advice: the user's own audits first, then their measured data, then the papers.

Every architecture gets ``score = w_in * in_domain + w_out * retention`` (weights by priority,
see :data:`PRIORITY_WEIGHTS`), both terms measured on the same data. From the published evidence
(:mod:`segrob.evidence`), ``in_domain`` is the expected in-domain Dice and ``retention`` the share
of it kept out of domain; an architecture with evidence only in the other dimensionality is shown
but gets no score. From the user's audit reports, ``in_domain`` is the measured clean Dice and
``retention`` the suite's relative robustness ``rR = mean_s Dice_s / Dice_clean``. Measured
models outweigh the published ranking: they are ranked on their own numbers and the verdict
follows them, unless the leader's score is not significantly ahead: every pair of measured models is
compared on the shared cases (paired bootstrap of the score difference, BCa 95%), and a lead whose
interval includes zero reads "no significant difference", not a winner.

The default priority is ``robustness``: segrob advises on deployments, where the data shifts.
In-domain Dice can be checked on a validation set before shipping, an out-of-domain collapse
(heart MRI, attention U-Net: .929 -> .142 under speckle) is what a clinic finds out later; and
where the published in-domain Dice does not separate the networks (synthetic data at low and
medium complexity: within .01), preferring robustness costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segrob.data.blend import COMPLEXITY_LEVELS
from segrob.errors import SegrobError, UsageError
from segrob.evidence import Evidence, Expectation, Finding, load_evidence, show

if TYPE_CHECKING:
    from segrob.audit.compare import PairedDifference
    from segrob.data.complexity import ComplexityReport
    from segrob.report import AuditReport

# robustness: out-of-domain retention dominates; accuracy: in-domain Dice dominates and
# retention only breaks near-ties.
PRIORITY_WEIGHTS: dict[str, dict[str, float]] = {
    "robustness": {"in_domain": 0.3, "retention": 0.7},
    "accuracy": {"in_domain": 0.8, "retention": 0.2},
}
DEFAULT_PRIORITY = "robustness"
_COVERAGE_ORDER = {"direct": 0, "other-dims": 1, "none": 2}


@dataclass
class RankedArch:
    """One architecture in the published-evidence ranking."""

    rank: int
    arch: str
    score: float | None
    why: str
    summary: str
    expectation: Expectation

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "arch": self.arch, "score": self.score, "why": self.why,
                "summary": self.summary, **self.expectation.to_dict()}


@dataclass
class MeasuredModel:
    """One of the user's audited models, with what the evidence expected of its architecture."""

    rank: int
    label: str
    path: str
    arch: str | None
    clean_dice: float | None
    relative_robustness: float | None
    mean_dice: float | None
    weighted_degradation: float | None
    failure_rate: float | None
    score: float | None
    expected: Expectation | None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["expected"] = self.expected.to_dict() if self.expected else None
        return data


@dataclass
class Recommendation:
    """The ranking, the one-line verdict and everything it rests on."""

    complexity: str | None
    complexity_source: str | None
    dims: int
    priority: str
    weights: dict[str, float]
    ranking: list[RankedArch]
    verdict: str
    models: list[MeasuredModel] = field(default_factory=list)
    suite: str | None = None
    notes: list[str] = field(default_factory=list)
    evidence: list[dict[str, Any]] = field(default_factory=list)
    measured_data: dict[str, Any] | None = None
    #: Every pair of measured models, higher-ranked first: the paired score difference.
    comparisons: list[PairedDifference] = field(default_factory=list)

    @property
    def basis(self) -> str:
        return "your audit reports, then published evidence" if self.models else "published evidence"

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict, "basis": self.basis, "complexity": self.complexity,
            "complexity_source": self.complexity_source, "dims": self.dims,
            "priority": self.priority, "weights": self.weights, "suite": self.suite,
            "models": [m.to_dict() for m in self.models],
            "comparisons": [c.to_dict() for c in self.comparisons],
            "ranking": [r.to_dict() for r in self.ranking],
            "notes": self.notes, "evidence": self.evidence, "measured_data": self.measured_data,
        }


def score(in_domain: float | None, retention: float | None, priority: str) -> float | None:
    """``w_in * in_domain + w_out * retention`` with the priority's weights; None if unknown."""
    if in_domain is None or retention is None:
        return None
    weights = PRIORITY_WEIGHTS[priority]
    return weights["in_domain"] * in_domain + weights["retention"] * retention


def complexity_of(
    path: str | Path, *, progress: Callable[[int], None] | None = None, allow_outside: bool = False
) -> tuple[str, ComplexityReport, int]:
    """Measure a dataset's level with ``segrob complexity``'s method: ``(level, report, dims)``."""
    from segrob.data import load_dataset
    from segrob.data.complexity import measure_complexity

    dataset = load_dataset(path, allow_outside=allow_outside)
    report = measure_complexity(dataset, progress=progress)
    if report.level is None:
        raise SegrobError(
            f"{path}: cannot measure complexity (no case has both foreground and background); "
            "pass --complexity low|medium|high instead"
        )
    return report.level, report, dataset[0].spatial_dims


def recommend(
    *,
    complexity: str | None = None,
    dims: int | None = None,
    priority: str = DEFAULT_PRIORITY,
    reports: list[AuditReport] | None = None,
    report_paths: list[str] | None = None,
    data: str | Path | None = None,
    archs: list[str] | None = None,
    progress: Callable[[int], None] | None = None,
    allow_outside: bool = False,
) -> Recommendation:
    """Rank architectures for a task from published evidence and, when given, the user's audits.

    Args:
        complexity: ``low``, ``medium`` or ``high``; or measure it with ``data``.
        dims: 2 or 3; default: the dimensionality of ``data`` or of the reports, else 2.
        priority: ``robustness`` (default, see the module docstring) or ``accuracy``.
        reports: audit reports of the user's models (one suite, one dataset); they outweigh
            the published evidence. ``report_paths`` names them in errors and tables.
        data: a dataset folder whose complexity is measured (LBP texture distance).
        archs: restrict the ranking to these architectures.
        allow_outside: let ``data``'s case files resolve outside its folder.
    """
    evidence = load_evidence()
    _check_inputs(evidence, complexity, dims, priority, reports, data, archs)
    source, measured_data = ("given" if complexity else None), None
    if data is not None:
        complexity, report, data_dims = complexity_of(data, progress=progress, allow_outside=allow_outside)
        source, dims = "measured", dims or data_dims
        measured_data = {"path": str(data), "level": complexity, "dims": data_dims,
                         "median_texture_distance": report.summary.get("median"),
                         "thresholds": dict(report.thresholds)}
    paths = list(report_paths or [f"report {i + 1}" for i in range(len(reports or []))])
    if reports:
        dims = dims or _report_dims(reports)
    dims = dims or 2
    ranking = rank_architectures(evidence, level=complexity, dims=dims, priority=priority,
                                 archs=archs or list(evidence.architectures))
    models = rank_reports(evidence, reports, paths, level=complexity, priority=priority) \
        if reports else []
    comparisons = compare_measured(reports, paths, models, priority) if reports else []
    used = {f.text(): f.to_dict() for r in ranking
            for f in r.expectation.findings + r.expectation.supporting}
    used.update({s.text: s.to_dict() for s in evidence.statements if s.dims == dims})
    return Recommendation(
        complexity=complexity, complexity_source=source, dims=dims, priority=priority,
        weights=dict(PRIORITY_WEIGHTS[priority]), ranking=ranking, models=models,
        suite=str(reports[0].suite.get("name")) if reports else None,
        verdict=_verdict(ranking, models, complexity, dims, priority, comparisons),
        notes=_notes(evidence, complexity, dims), evidence=list(used.values()),
        measured_data=measured_data, comparisons=comparisons,
    )


def _check_inputs(
    evidence: Evidence, complexity: str | None, dims: int | None, priority: str,
    reports: list[AuditReport] | None, data: str | Path | None, archs: list[str] | None,
) -> None:
    if priority not in PRIORITY_WEIGHTS:
        raise UsageError(f"unknown priority {priority!r} (valid: {', '.join(PRIORITY_WEIGHTS)})")
    if complexity is not None and complexity not in COMPLEXITY_LEVELS:
        raise UsageError(
            f"unknown complexity level {complexity!r} (valid: {', '.join(COMPLEXITY_LEVELS)})"
        )
    if complexity is not None and data is not None:
        raise UsageError("give --complexity or --data (which measures it), not both")
    if dims not in (None, 2, 3):
        raise UsageError(f"--dims must be 2 or 3, got {dims}")
    for arch in archs or []:
        if arch not in evidence.architectures:
            raise UsageError(
                f"unknown architecture {arch!r} (valid: {', '.join(evidence.architectures)})"
            )
    if reports is not None and not reports:
        raise UsageError("no audit reports given (did the file pattern match nothing?)")
    if complexity is None and data is None and not reports:
        raise UsageError("nothing to advise on: give --complexity LEVEL, --data DIR or --reports FILE...")


def _report_dims(reports: list[AuditReport]) -> int | None:
    found = {r.model.get("spatial_dims") for r in reports} - {None}
    return found.pop() if len(found) == 1 else None


def rank_architectures(
    evidence: Evidence, *, level: str | None, dims: int, priority: str, archs: list[str]
) -> list[RankedArch]:
    """Evidence in ``dims`` D by score, then evidence only in the other dims, then none.

    Only ``dims``-D evidence is scored: a score from the other dimensionality would compare
    numbers measured on other data, so those architectures keep their given order, unscored.
    """
    expected = [evidence.expect(arch, dims=dims, level=level) for arch in archs]
    scores = {e.arch: score(e.in_domain, e.retention, priority) if e.coverage == "direct" else None
              for e in expected}
    order = sorted(expected, key=lambda e: (_COVERAGE_ORDER[e.coverage], -(scores[e.arch] or 0.0)))
    direct = [e for e in order if e.coverage == "direct"]
    return [
        RankedArch(rank=i + 1, arch=e.arch, score=scores[e.arch], why=_why(e, direct, dims),
                   summary=evidence.architectures[e.arch], expectation=e)
        for i, e in enumerate(order)
    ]


def _why(e: Expectation, peers: list[Expectation], dims: int) -> str:
    study = f"segrob study {'skip' if dims == 2 else 'context'} --archs {e.arch},unet"
    if e.coverage == "none":
        return f"no published evidence: audit it with {study}"
    if e.coverage == "other-dims":
        return (f"no published {dims}D evidence ({e.dims}D numbers shown, not scored against "
                f"{dims}D ones); audit it with {study}")
    reasons = []
    in_domain = [p.in_domain for p in peers if p.in_domain is not None]
    if len(in_domain) > 1 and e.in_domain == max(in_domain):
        reasons.append(f"highest expected in-domain Dice ({e.data})")
    elif len(in_domain) > 1 and e.in_domain == min(in_domain):
        reasons.append(f"lowest expected in-domain Dice ({e.data})")
    retentions = [p.retention for p in peers if p.retention is not None]
    if len(retentions) > 1 and e.retention == max(retentions):
        reasons.append("keeps its Dice best when the foreground ratio drifts" if dims == 3
                       else "degrades least out of domain")
    elif len(retentions) > 1 and e.retention == min(retentions):
        reasons.append("loses most when the foreground ratio drifts" if dims == 3
                       else "degrades most out of domain")
    # The level's synthetic rows are in the evidence column and the notes already.
    reasons += [f.body() for f in e.supporting if f.kind != "synthetic"]
    return "; ".join(reasons) or "neither best nor worst on either count"


def rank_reports(
    evidence: Evidence, reports: list[AuditReport], paths: list[str], *, level: str | None,
    priority: str,
) -> list[MeasuredModel]:
    """The user's models by ``score(clean Dice, rR)``; reports must share suite and data."""
    from segrob.audit.compare import check_comparable, model_label

    check_comparable(reports, paths)
    models = []
    for report, path in zip(reports, paths, strict=True):
        clean = report.summary.clean.mean("dice")
        suite = report.summary.suite
        arch = report.model.get("arch") or report.model.get("metadata", {}).get("arch")
        dims = report.model.get("spatial_dims") or 2
        expected = evidence.expect(arch, dims=dims, level=level) \
            if arch in evidence.architectures else None
        models.append(MeasuredModel(
            rank=0, label=model_label(report, path), path=str(path), arch=arch, clean_dice=clean,
            relative_robustness=suite.relative_robustness, mean_dice=suite.mean_dice,
            weighted_degradation=suite.weighted_degradation, failure_rate=suite.failure_rate,
            score=score(clean, suite.relative_robustness, priority), expected=expected,
        ))
    models.sort(key=lambda m: (m.score is None, -(m.score or 0.0)))
    for index, model in enumerate(models):
        model.rank = index + 1
    return models


def compare_measured(
    reports: list[AuditReport], paths: list[str], models: list[MeasuredModel], priority: str
) -> list[PairedDifference]:
    """Each pair of ranked models: the paired bootstrap of their score difference on shared cases."""
    from segrob.audit.compare import case_values, paired_score_difference

    tables = {str(path): case_values(report, "dice") for report, path in zip(reports, paths, strict=True)}
    weights = PRIORITY_WEIGHTS[priority]
    return [
        paired_score_difference(a.label, b.label, tables[a.path], tables[b.path], weights,
                                figure=f"{priority} score")
        for i, a in enumerate(models) for b in models[i + 1:]
        if a.score is not None and b.score is not None
    ]


def _measured_verdict(
    top: RankedArch, models: list[MeasuredModel], priority: str, comparisons: list[PairedDifference]
) -> str:
    """Deploy the leader only when its score is significantly ahead of every other model's."""
    best = models[0]
    if best.score is None:
        return f"no audited model has a clean Dice and rR to rank by; see {best.path}"
    published = ("the published evidence agrees" if best.arch == top.arch else
                 f"your measurements outweigh the published evidence, which ranks {top.arch} first")
    against = [c for c in comparisons if c.first == best.label]
    tied = [c for c in against if c.ci_low is not None and not (c.significant and c.difference > 0)]
    if tied:
        return ("; ".join(c.statement() for c in tied) + f": {best.label} leads on point estimates "
                f"only ({priority} score {best.score:.3f}); audit more cases, or let the published "
                f"evidence break the tie (it ranks {top.arch} first)")
    text = (f"deploy {best.label}: best {priority} score {best.score:.3f} on your audits "
            f"(clean Dice {best.clean_dice:.3f}, rR {_num(best.relative_robustness)})")
    if against and all(c.significant for c in against):
        text += (f", significantly ahead of every other model (paired 95% CI of the score "
                 f"difference, {min(c.n_cases for c in against)} shared cases)")
    elif against:
        text += ", untested against the others (reports without per-case records)"
    return f"{text}; {published}"


def _verdict(
    ranking: list[RankedArch], models: list[MeasuredModel], level: str | None, dims: int,
    priority: str, comparisons: list[PairedDifference] | None = None,
) -> str:
    top = ranking[0]
    if models:
        return _measured_verdict(top, models, priority, comparisons or [])
    context = f"{level} complexity, {dims}D" if level else f"{dims}D"
    e = top.expectation
    if e.coverage != "direct":
        return f"{top.arch} for {context}: {top.why}"
    text = (f"{top.arch} for {context} with {priority} first: expected in-domain Dice "
            f"{e.in_domain_shown} ({e.data}), keeps {_num(e.retention)} of it out of domain")
    # Name the best alternative on the axis the priority gave less weight to.
    axis = "in_domain" if priority == "robustness" else "retention"
    rivals = sorted((r for r in ranking[1:] if r.expectation.coverage == "direct"
                     and (getattr(r.expectation, axis) or 0.0) > (getattr(e, axis) or 0.0)),
                    key=lambda r: -(getattr(r.expectation, axis) or 0.0))
    if rivals:
        when = "deployment data will match training" if axis == "in_domain" \
            else "deployment data may shift"
        text += (f"; {rivals[0].arch} if {when} (in-domain {rivals[0].expectation.in_domain_shown}"
                 f", keeps {_num(rivals[0].expectation.retention)})")
    return text + f" [{', '.join(e.sources)}]"


def _notes(evidence: Evidence, level: str | None, dims: int) -> list[str]:
    notes = _notes_3d(evidence) if dims == 3 else _level_notes_2d(evidence, level)
    if dims == 3 and level is not None:
        notes.append("the published complexity study is 2D; in 3D the ranking rests on the "
                     "foreground-ratio finding, whatever the level")
    notes += [f"{s.text} [{s.source.short}]" for s in evidence.statements if s.dims == dims]
    if level is None and dims == 2:
        notes.append("no complexity level: give --complexity or --data to see the published "
                     "synthetic in-domain Dice at your task's level")
    return notes


def _level_notes_2d(evidence: Evidence, level: str | None) -> list[str]:
    """The synthetic in-domain Dice at the level, per blend: shown beside the score, not in it."""
    rows = evidence.select("synthetic", complexity=level) if level else []
    if not rows:
        return []
    parts = []
    for blend in sorted({f.fields["blend"] for f in rows}):
        at_blend = sorted((f for f in rows if f.fields["blend"] == blend),
                          key=lambda f: -float(f.value("dice")))
        named = f" (segrob's '{level}')" if blend == COMPLEXITY_LEVELS.get(level or "") else ""
        parts.append(f"at blend {blend}{named} "
                     + ", ".join(f"{f.arch} {show(float(f.value('dice')))}" for f in at_blend))
    return [f"published synthetic in-domain Dice ({evidence.synthetic_protocol}): "
            f"{'; '.join(parts)} [{rows[0].source.short}]; shown, not scored: the score's "
            "in-domain and out-of-domain terms both come from the clinical datasets"]


def _notes_3d(evidence: Evidence) -> list[str]:
    notes = []
    context = evidence.select("context_3d")
    if context:
        parts = ", ".join(f"{f.arch} {_pair(f)}" for f in context)
        notes.append(f"prefer larger patches (more context) over a higher foreground ratio: "
                     f"{context[0].fields['dataset']} Dice with patch {context[0].fields['patch'][0]}"
                     f" -> {context[0].fields['patch'][1]}: {parts} [{context[0].source.short}]")
    fbr = sorted(evidence.select("fbr_3d"), key=lambda f: -float(f.value("out_of_range")))
    if fbr:
        parts = ", ".join(f"{f.arch} {show(float(f.value('in_range')))} -> "
                          f"{show(float(f.value('out_of_range')))}" for f in fbr)
        notes.append(f"if the foreground ratio at deployment may drift outside the training range, "
                     f"prefer {fbr[0].arch}: Dice inside -> outside the range on "
                     f"{fbr[0].fields['data']} at patch {fbr[0].fields['patch']}: {parts} "
                     f"[{fbr[0].source.short}]")
    return notes


def _pair(finding: Finding) -> str:
    small, large = finding.value("dice")
    return f"{show(small)} -> {show(large)}"


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"
