"""The audit's summary figures as typed data, and their JSON form in a saved report.

``to_dict`` writes the summary exactly as schema 1.x has it (``segrob/report_schema.json``: the
same keys in the same order); ``from_dict`` reads it back. A figure the schema does not require
may be missing from a report written by hand or by an older segrob: a missing figure that may be
null reads as None and is written back as null; a missing count or table stays missing.
Metric rows hold one :class:`Stat` per metric of :mod:`segrob.metrics.table`, in its order.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from segrob.metrics.table import metric_names

METRICS = metric_names()


class _Flat:
    """A dataclass whose JSON form is its fields by name, in their order. Reading one back, a field
    whose default is None may be missing (it reads as None); every other field must be there. No
    object at all (null) reads as None."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None):
        if data is None:
            return None
        return cls(**{f.name: data.get(f.name) if f.default is None else data[f.name]
                      for f in fields(cls)})


@dataclass(frozen=True)
class Stat(_Flat):
    """A mean over cases and its 95% bootstrap CI; all None when no case had a finite value."""

    mean: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None


def _stats_from(data: dict[str, Any], prefix: str = "") -> dict[str, Stat]:
    return {name: Stat.from_dict(data[prefix + name]) for name in METRICS if prefix + name in data}


def _without_missing(data: dict[str, Any], *keys: str) -> dict[str, Any]:
    """``data`` less those of ``keys`` whose value is None (counts and tables that were absent)."""
    return {k: v for k, v in data.items() if v is not None or k not in keys}


class _MetricRow:
    """A row of per-metric statistics (the clean images, or one perturbation at one severity)."""

    stats: dict[str, Stat]

    def stat(self, metric: str) -> Stat:
        return self.stats.get(metric, Stat())

    def mean(self, metric: str) -> float | None:
        return self.stat(metric).mean


@dataclass(frozen=True)
class EmptyCounts(_Flat):
    """(case, class) pairs with both masks empty, only the prediction empty, only the truth empty."""

    both: int = 0
    pred: int = 0
    gt: int = 0


@dataclass(frozen=True)
class CleanSummary(_MetricRow):
    """Every metric on the clean images, and the share of cases under the failure Dice."""

    stats: dict[str, Stat]
    failure_rate: float | None = None

    def to_dict(self) -> dict[str, Any]:
        figures: dict[str, Any] = {name: self.stats[name].to_dict() for name in METRICS if name in self.stats}
        return {**figures, "failure_rate": self.failure_rate}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CleanSummary:
        return cls(_stats_from(data), data.get("failure_rate"))


@dataclass(frozen=True)
class CellSummary(_MetricRow):
    """One perturbation at one severity over ``n`` cases; ``deltas`` are the paired changes from
    clean, and ``significant_drop`` says the Dice change's CI lies wholly below 0."""

    perturbation: str
    severity: int
    n: int
    stats: dict[str, Stat]
    deltas: dict[str, Stat]
    significant_drop: bool
    failure_rate: float | None
    empty: EmptyCounts | None = None

    @property
    def row(self) -> str:
        """How gates and comparisons name this cell: ``gamma s3``."""
        return f"{self.perturbation} s{self.severity}"

    def to_dict(self) -> dict[str, Any]:
        figures: dict[str, Any] = {}
        for name in METRICS:
            if name in self.stats:
                figures[name] = self.stats[name].to_dict()
            if name in self.deltas:
                figures[f"delta_{name}"] = self.deltas[name].to_dict()
        return _without_missing({
            "perturbation": self.perturbation, "severity": self.severity, "n": self.n, **figures,
            "significant_drop": self.significant_drop, "failure_rate": self.failure_rate,
            "empty": self.empty.to_dict() if self.empty else None,
        }, "empty")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CellSummary:
        return cls(
            perturbation=data["perturbation"], severity=data["severity"], n=data["n"],
            stats=_stats_from(data), deltas=_stats_from(data, "delta_"),
            significant_drop=data["significant_drop"], failure_rate=data["failure_rate"],
            empty=EmptyCounts.from_dict(data.get("empty")),
        )


@dataclass(frozen=True)
class PerturbationSummary:
    """One perturbation over its severities: relative robustness ``rR``, severity-weighted
    degradation, its worst severity and Dice, failure rate and count of significant drops."""

    perturbation: str
    relative_robustness: float | None
    weighted_degradation: float | None
    worst_severity: int | None
    failure_rate: float | None
    worst_dice: float | None = None
    severities: tuple[int, ...] | None = None
    significant_drops: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return _without_missing({
            "perturbation": self.perturbation,
            "severities": None if self.severities is None else list(self.severities),
            "relative_robustness": self.relative_robustness,
            "weighted_degradation": self.weighted_degradation,
            "worst_severity": self.worst_severity,
            "worst_dice": self.worst_dice,
            "failure_rate": self.failure_rate,
            "significant_drops": self.significant_drops,
        }, "severities", "significant_drops")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PerturbationSummary:
        severities = data.get("severities")
        return cls(
            perturbation=data["perturbation"],
            relative_robustness=data["relative_robustness"],
            weighted_degradation=data["weighted_degradation"],
            worst_severity=data["worst_severity"],
            failure_rate=data["failure_rate"],
            worst_dice=data.get("worst_dice"),
            severities=None if severities is None else tuple(severities),
            significant_drops=data.get("significant_drops"),
        )


@dataclass(frozen=True)
class WorstCell(_Flat):
    """The (perturbation, severity) with the lowest mean Dice."""

    perturbation: str
    severity: int
    dice: float


@dataclass(frozen=True)
class SuiteSummary:
    """The suite as one figure each: means over its perturbations (``mean_dice`` over its cells)."""

    relative_robustness: float | None
    weighted_degradation: float | None
    failure_rate: float | None
    mean_dice: float | None = None
    worst: WorstCell | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "relative_robustness": self.relative_robustness,
            "weighted_degradation": self.weighted_degradation,
            "failure_rate": self.failure_rate,
            "mean_dice": self.mean_dice,
            "worst": self.worst.to_dict() if self.worst else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SuiteSummary:
        return cls(
            relative_robustness=data["relative_robustness"],
            weighted_degradation=data["weighted_degradation"],
            failure_rate=data["failure_rate"],
            mean_dice=data.get("mean_dice"),
            worst=WorstCell.from_dict(data.get("worst")),
        )


@dataclass(frozen=True)
class ClassDice(_Flat):
    """One class's mean Dice on the clean images and over every perturbed cell."""

    clean: float | None = None
    perturbed: float | None = None


def _class_dice(data: dict[str, Any]) -> dict[str, ClassDice]:
    return {label: ClassDice.from_dict(values) for label, values in data.items()}


@dataclass(frozen=True)
class FbrSide(_Flat):
    """Cases on one side of the training foreground-ratio range, and their mean Dice."""

    n_cases: int
    clean_dice: float | None
    perturbed_dice: float | None


@dataclass(frozen=True)
class FbrSplit:
    """Dice of cases whose foreground ratio lies inside vs outside the model's training range."""

    minimum: float
    maximum: float
    inside: FbrSide
    outside: FbrSide

    def to_dict(self) -> dict[str, Any]:
        return {
            "range": {"min": self.minimum, "max": self.maximum},
            "inside": self.inside.to_dict(),
            "outside": self.outside.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> FbrSplit | None:
        if data is None:
            return None
        return cls(data["range"]["min"], data["range"]["max"], FbrSide.from_dict(data["inside"]),
                   FbrSide.from_dict(data["outside"]))


@dataclass(frozen=True)
class AuditSummary:
    """Every summary figure of an audit (what :func:`segrob.audit.aggregate.summarise` returns).

    ``per_class`` maps each class label (a string, as in JSON) to its clean and perturbed Dice;
    ``fbr`` is None unless the model carries a training foreground-ratio range.
    """

    n_cases: int
    clean: CleanSummary
    cells: tuple[CellSummary, ...]
    perturbations: tuple[PerturbationSummary, ...]
    suite: SuiteSummary
    clean_empty: EmptyCounts | None = None
    per_class: dict[str, ClassDice] | None = None
    fbr: FbrSplit | None = None

    def cell(self, perturbation: str, severity: int) -> CellSummary | None:
        return next((c for c in self.cells if (c.perturbation, c.severity) == (perturbation, severity)), None)

    def perturbation(self, name: str) -> PerturbationSummary | None:
        return next((p for p in self.perturbations if p.perturbation == name), None)

    def to_dict(self) -> dict[str, Any]:
        per_class = self.per_class
        return _without_missing({
            "n_cases": self.n_cases,
            "clean": self.clean.to_dict(),
            "clean_empty": self.clean_empty.to_dict() if self.clean_empty else None,
            "cells": [c.to_dict() for c in self.cells],
            "perturbations": [p.to_dict() for p in self.perturbations],
            "suite": self.suite.to_dict(),
            "per_class": None if per_class is None else {k: v.to_dict() for k, v in per_class.items()},
            "fbr": self.fbr.to_dict() if self.fbr else None,
        }, "clean_empty", "per_class")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuditSummary:
        per_class = data.get("per_class")
        return cls(
            n_cases=data["n_cases"],
            clean=CleanSummary.from_dict(data["clean"]),
            cells=tuple(CellSummary.from_dict(c) for c in data["cells"]),
            perturbations=tuple(PerturbationSummary.from_dict(p) for p in data["perturbations"]),
            suite=SuiteSummary.from_dict(data["suite"]),
            clean_empty=EmptyCounts.from_dict(data.get("clean_empty")),
            per_class=None if per_class is None else _class_dice(per_class),
            fbr=FbrSplit.from_dict(data.get("fbr")),
        )
