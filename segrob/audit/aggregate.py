"""From cell records to the report's summary figures.

* per (perturbation, severity): mean with a 95% bootstrap CI over cases, and the paired change
  from clean with its CI (significant when that CI excludes 0);
* per perturbation: relative robustness ``rR = mean_s m_s / m_clean``, weighted degradation
  ``sum_s a^s (m_s - m_clean) / sum_s a^s`` with ``a = 2/3`` (ROOD-MRI), the worst severity and
  the failure rate (share of cases under a Dice threshold);
* per suite: the mean of those; for models with a training FBR range, Dice inside vs outside it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from segrob.audit.records import CLEAN, CellRecord
from segrob.metrics import bootstrap_ci, paired_bootstrap_ci

SEVERITY_DECAY = 2.0 / 3.0
METRICS = ("dice", "iou", "hd95", "assd", "nsd", "sensitivity", "precision", "ece", "entropy")
LOWER_IS_BETTER = frozenset({"hd95", "assd", "ece", "entropy"})


def _values(records: Sequence[CellRecord], metric: str) -> np.ndarray:
    return np.array([np.nan if r.metrics.get(metric) is None else r.metrics[metric] for r in records],
                    dtype=np.float64)


def _stat(values: np.ndarray, *, seed: int) -> dict[str, float | None]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return {"mean": None, "ci_low": None, "ci_high": None}
    low, high = bootstrap_ci(finite, seed=seed) if finite.size > 1 else (finite[0], finite[0])
    return {"mean": float(finite.mean()), "ci_low": float(low), "ci_high": float(high)}


def _delta(clean: np.ndarray, perturbed: np.ndarray, *, seed: int) -> dict[str, float | None]:
    ok = np.isfinite(clean) & np.isfinite(perturbed)
    if not ok.any():
        return {"mean": None, "ci_low": None, "ci_high": None}
    a, b = clean[ok], perturbed[ok]
    low, high = paired_bootstrap_ci(a, b, seed=seed) if a.size > 1 else (b[0] - a[0],) * 2
    return {"mean": float((b - a).mean()), "ci_low": float(low), "ci_high": float(high)}


def summarise(
    records: Sequence[CellRecord],
    *,
    failure_dice: float = 0.5,
    fbr_range: dict | None = None,
    seed: int = 0,
) -> dict:
    """Every summary figure of the report from the cell records (pure; no I/O)."""
    by_cell: dict[tuple[str, int], dict[str, CellRecord]] = defaultdict(dict)
    for record in records:
        by_cell[(record.perturbation, record.severity)][record.case] = record
    clean_by_case = by_cell.get((CLEAN, 0), {})
    cases = sorted(clean_by_case)
    clean_records = [clean_by_case[c] for c in cases]
    clean = {m: _stat(_values(clean_records, m), seed=seed) for m in METRICS}
    clean["failure_rate"] = _failure_rate(clean_records, failure_dice)
    cells = []
    for (name, severity), per_case in sorted(by_cell.items()):
        if name == CLEAN:
            continue
        shared = [c for c in cases if c in per_case]
        rows = [per_case[c] for c in shared]
        baseline = [clean_by_case[c] for c in shared]
        cell = {"perturbation": name, "severity": severity, "n": len(rows)}
        for metric in METRICS:
            cell[metric] = _stat(_values(rows, metric), seed=seed)
            cell[f"delta_{metric}"] = _delta(_values(baseline, metric), _values(rows, metric), seed=seed)
        delta = cell["delta_dice"]
        cell["significant_drop"] = delta["ci_high"] is not None and delta["ci_high"] < 0
        cell["failure_rate"] = _failure_rate(rows, failure_dice)
        cell["empty"] = _empty_counts(rows)
        cells.append(cell)
    perturbations = _per_perturbation(cells, clean, by_cell, cases, failure_dice)
    return {
        "n_cases": len(cases),
        "clean": clean,
        "clean_empty": _empty_counts(clean_records),
        "cells": cells,
        "perturbations": perturbations,
        "suite": _suite_summary(perturbations, cells),
        "per_class": _per_class(records),
        "fbr": _fbr_split(records, fbr_range) if fbr_range else None,
    }


def _failure_rate(records: Sequence[CellRecord], threshold: float) -> float | None:
    dice = _values(records, "dice")
    dice = dice[np.isfinite(dice)]
    return float((dice < threshold).mean()) if dice.size else None


def _empty_counts(records: Sequence[CellRecord]) -> dict[str, int]:
    counts = {"both": 0, "pred": 0, "gt": 0}
    for record in records:
        for kind in record.empty.values():
            if kind in counts:
                counts[kind] += 1
    return counts


def _per_perturbation(cells, clean, by_cell, cases, failure_dice) -> list[dict]:
    clean_dice = clean["dice"]["mean"]
    grouped: dict[str, list[dict]] = defaultdict(list)
    for cell in cells:
        grouped[cell["perturbation"]].append(cell)
    summary = []
    for name, rows in grouped.items():
        rows = sorted(rows, key=lambda c: c["severity"])
        means = np.array([np.nan if c["dice"]["mean"] is None else c["dice"]["mean"] for c in rows])
        severities = np.array([c["severity"] for c in rows])
        weights = SEVERITY_DECAY**severities
        finite = np.isfinite(means)
        usable = clean_dice is not None and finite.any()
        relative = float(means[finite].mean() / clean_dice) if usable and clean_dice > 0 else None
        degradation = (
            float((weights[finite] * (means[finite] - clean_dice)).sum() / weights[finite].sum())
            if usable
            else None
        )
        worst = int(severities[finite][np.argmin(means[finite])]) if finite.any() else None
        pooled = [r for c in rows for r in by_cell[(name, c["severity"])].values() if r.case in cases]
        summary.append(
            {
                "perturbation": name,
                "severities": severities.tolist(),
                "relative_robustness": relative,
                "weighted_degradation": degradation,
                "worst_severity": worst,
                "worst_dice": float(means[finite].min()) if finite.any() else None,
                "failure_rate": _failure_rate(pooled, failure_dice),
                "significant_drops": int(sum(c["significant_drop"] for c in rows)),
            }
        )
    return summary


def _mean(values: list) -> float | None:
    finite = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def _suite_summary(perturbations: list[dict], cells: list[dict]) -> dict:
    return {
        "relative_robustness": _mean([p["relative_robustness"] for p in perturbations]),
        "weighted_degradation": _mean([p["weighted_degradation"] for p in perturbations]),
        "failure_rate": _mean([p["failure_rate"] for p in perturbations]),
        "mean_dice": _mean([c["dice"]["mean"] for c in cells]),
        "worst": min(
            ({"perturbation": c["perturbation"], "severity": c["severity"], "dice": c["dice"]["mean"]}
             for c in cells if c["dice"]["mean"] is not None),
            key=lambda row: row["dice"],
            default=None,
        ),
    }


def _per_class(records: Sequence[CellRecord]) -> dict[str, dict[str, float | None]]:
    """Mean Dice per class for the clean images and over all perturbed cells."""
    collected: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        scope = CLEAN if record.perturbation == CLEAN else "perturbed"
        for label, values in record.per_class.items():
            if values.get("dice") is not None:
                collected[label][scope].append(values["dice"])
    return {
        label: {scope: _mean(scopes.get(scope, [])) for scope in (CLEAN, "perturbed")}
        for label, scopes in sorted(collected.items(), key=lambda item: int(item[0]))
    }


def _fbr_split(records: Sequence[CellRecord], fbr_range: dict) -> dict:
    """Dice of cases whose foreground ratio lies inside vs outside the training FBR range."""
    low, high = float(fbr_range["min"]), float(fbr_range["max"])
    split: dict[str, dict[str, list[float]]] = {
        "inside": defaultdict(list), "outside": defaultdict(list)
    }
    for record in records:
        ratio, dice = record.foreground_ratio, record.metrics.get("dice")
        if ratio is None or dice is None:
            continue
        side = "inside" if low <= ratio <= high else "outside"
        split[side][CLEAN if record.perturbation == CLEAN else "perturbed"].append(dice)
    return {
        "range": {"min": low, "max": high},
        **{
            side: {
                "n_cases": len(values[CLEAN]),
                "clean_dice": _mean(values[CLEAN]),
                "perturbed_dice": _mean(values["perturbed"]),
            }
            for side, values in split.items()
        },
    }
