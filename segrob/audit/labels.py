"""The dataset's label values against the model's classes: checked before any work, mapped,
masked where nnU-Net's ``ignore`` label says so, and kept out of the mean when never present."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segrob.data.case import Case
from segrob.data.layouts import DatasetLabels
from segrob.errors import SegrobError, UsageError
from segrob.metrics.case import METRIC_NAMES


def parse_label_map(text: str | None) -> dict[int, int] | None:
    """``"3=1,4=0"`` -> ``{3: 1, 4: 0}``: label value -> the model class it is scored as."""
    if not text:
        return None
    mapping = {}
    for item in text.split(","):
        source, _, target = item.partition("=")
        try:
            mapping[int(source)] = int(target)
        except ValueError:
            raise UsageError(f"--label-map takes pairs like 3=1,4=0; got {text!r}") from None
    return mapping


@dataclass(frozen=True)
class LabelPlan:
    """How label maps are scored against a model predicting ``0 .. n_classes - 1``."""

    n_classes: int
    names: dict[int, str] = field(default_factory=dict)
    ignore: int | None = None
    mapping: dict[int, int] = field(default_factory=dict)

    def check_values(self, values, where: str) -> None:
        """Refuse a label value the model cannot predict, naming the ``--label-map`` that fixes it."""
        for value in sorted(int(v) for v in values):
            if value == self.ignore:
                continue
            target = self.mapping.get(value, value)
            if not 0 <= target < self.n_classes:
                name = f" ({self.names[value]})" if value in self.names else ""
                raise SegrobError(
                    f"{where}: label value {value}{name} is not a class the model predicts (classes 0-"
                    f"{self.n_classes - 1}); map it with --label-map {value}=K"
                )

    def prepare(self, case: Case) -> Case:
        """The case with its label values checked and mapped to model classes."""
        if case.label is None:
            return case
        values = np.unique(case.label)
        self.check_values(values, case.source.get("label", case.name))
        if not self.mapping:
            return case
        label = case.label.copy()
        for source, target in self.mapping.items():
            label[case.label == source] = target
        return dataclasses.replace(case, label=label)

    def mask(self, prediction: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Prediction and truth with the ignore voxels set to background in both."""
        if self.ignore is None:
            return prediction, truth
        ignored = truth == self.ignore
        if not ignored.any():
            return prediction, truth
        return np.where(ignored, 0, prediction), np.where(ignored, 0, truth)

    def to_dict(self) -> dict:
        return {
            "names": {str(k): v for k, v in self.names.items()},
            "ignore": self.ignore,
            "map": {str(k): v for k, v in self.mapping.items()},
        }


def label_plan(n_classes: int, declared: DatasetLabels, mapping: dict[int, int] | None,
               source: str, label_files: list[Path] = ()) -> LabelPlan:
    """The plan, with the values a ``dataset.json`` declares, and those found in ``label_files``,
    checked before any image is read: a wrong class count fails in seconds, not after hours."""
    mapping = {int(k): int(v) for k, v in (mapping or {}).items()}
    bad = {k: v for k, v in mapping.items() if not 0 <= v < n_classes}
    if bad:
        value, target = next(iter(bad.items()))
        raise UsageError(f"--label-map {value}={target}: the model predicts classes 0-{n_classes - 1}")
    plan = LabelPlan(n_classes, dict(declared.names), declared.ignore, mapping)
    plan.check_values(declared.names, f"{source}/dataset.json")
    for value, where in _values_in(label_files).items():
        plan.check_values([value], str(where))
    return plan


def _values_in(label_files) -> dict[int, Path]:
    """Each label value found, with the first file holding it; an unreadable file is left to the
    audit, which reports it (or skips it with ``--skip-bad``)."""
    from segrob.data.formats import read_array

    found: dict[int, Path] = {}
    for path in label_files:
        try:
            values = np.unique(read_array(path)[0])
        except SegrobError:
            continue
        for value in values:
            if float(value).is_integer():
                found.setdefault(int(value), path)
    return found


def absent_classes(records, classes: list[int]) -> list[int]:
    """Model classes whose truth mask is empty in every record: never present in any label."""
    return [k for k in classes
            if records and all(r.empty.get(str(k)) in ("both", "pred") for r in records)]


def without_classes(records, absent: list[int]) -> None:
    """Recompute each record's foreground mean without ``absent`` (in place); a record whose every
    class is absent keeps its mean."""
    if not absent:
        return
    for record in records:
        kept = [values for key, values in record.per_class.items() if int(key) not in absent]
        if not kept:
            continue
        for name in METRIC_NAMES:
            scores = [v.get(name) for v in kept if v.get(name) is not None]
            record.metrics[name] = float(np.mean(scores)) if scores else None
