"""``--fail-under dice=0.8,rr=0.9``: the audit as a deployment gate.

Bounds and the rows they apply to:

* every gateable metric of :mod:`segrob.metrics.table` (``dice``, ``iou``, ``nsd``,
  ``sensitivity``, ``precision``): the mean of the clean row and of every (perturbation,
  severity) row;
* ``clean_dice``: the clean row only;
* ``rr``: every perturbation's relative robustness (mean Dice over severities / clean Dice);
* ``suite_rr``: the suite's mean relative robustness.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from segrob.audit.summary import AuditSummary
from segrob.errors import UsageError
from segrob.metrics.table import metric_names

CELL_METRICS = metric_names(gateable=True)
GATE_KEYS = (*CELL_METRICS, "clean_dice", "rr", "suite_rr")
# Every gateable metric is a share (overlap or agreement) in [0, 1]; relative robustness is a
# ratio of Dice values, which a perturbation may push above 1 but never below 0.
BOUND_RANGES: dict[str, tuple[float, float | None]] = {
    **{key: (0.0, 1.0) for key in (*CELL_METRICS, "clean_dice")}, "rr": (0.0, None), "suite_rr": (0.0, None),
}


@dataclass(frozen=True)
class Bound:
    key: str
    minimum: float

    def to_dict(self) -> dict:
        return {"key": self.key, "minimum": self.minimum}


@dataclass(frozen=True)
class GateFailure:
    key: str
    row: str
    value: float | None
    minimum: float

    def to_dict(self) -> dict:
        return {"key": self.key, "row": self.row, "value": self.value, "minimum": self.minimum}

    def describe(self) -> str:
        shown = "n/a" if self.value is None else f"{self.value:.3f}"
        return f"{self.row}: {self.key} {shown} < {self.minimum}"


def parse_bounds(text: str | None) -> tuple[Bound, ...]:
    """Parse ``key=value[,key=value...]``; a malformed bound is a usage error (exit 2).

    A bound is refused unless it is a finite number in its metric's range: ``dice=nan`` would
    pass every model and ``dice=2`` fail every one, both only after the whole audit.
    """
    if not text:
        return ()
    bounds = []
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        if not sep or key not in GATE_KEYS:
            raise UsageError(
                f"--fail-under: cannot read {part!r} (use KEY=VALUE with KEY one of {', '.join(GATE_KEYS)})"
            )
        bounds.append(Bound(key, _minimum(key, value)))
    return tuple(bounds)


def _minimum(key: str, value: str) -> float:
    low, high = BOUND_RANGES[key]
    shown = f"in [{low:g}, {high:g}]" if high is not None else f">= {low:g}"
    try:
        minimum = float(value)
    except ValueError:
        raise UsageError(f"--fail-under: {key} needs a number {shown}, got {value.strip()!r}") from None
    if not math.isfinite(minimum) or minimum < low or (high is not None and minimum > high):
        raise UsageError(f"--fail-under: {key} must be a number {shown}, got {value.strip()}")
    return minimum


def evaluate_gates(summary: AuditSummary, bounds: tuple[Bound, ...]) -> list[GateFailure]:
    """Every row that falls under a bound; an empty list means the gate passes."""
    failures: list[GateFailure] = []
    for bound in bounds:
        for row, value in _rows_for(summary, bound.key):
            if value is None or value < bound.minimum:
                failures.append(GateFailure(bound.key, row, value, bound.minimum))
    return failures


def _rows_for(summary: AuditSummary, key: str) -> list[tuple[str, float | None]]:
    if key == "clean_dice":
        return [("clean", summary.clean.mean("dice"))]
    if key == "rr":
        return [(p.perturbation, p.relative_robustness) for p in summary.perturbations]
    if key == "suite_rr":
        return [("suite", summary.suite.relative_robustness)]
    return [("clean", summary.clean.mean(key))] + [(c.row, c.mean(key)) for c in summary.cells]
