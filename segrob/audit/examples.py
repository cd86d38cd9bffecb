"""The worst cells of an audit, kept as small 2D views so a person can look at them afterwards.

While the audit scores, every perturbed cell is offered with its prediction; per (perturbation,
severity) the case that lost the most Dice against its own clean image is kept, and at the end
the ``k`` cells with the largest losses are returned. Only 2D views are kept (3D: the slice
through the largest extent of the label, see :mod:`segrob.render.slices`), so memory stays small.
Saved beside a report as one compressed ``.npz`` per example, listed in the report's ``examples``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segrob.audit.records import CLEAN
from segrob.errors import SegrobError
from segrob.render.slices import SliceView, choose_view

ARRAYS = ("image", "label", "prediction", "clean_image", "clean_label", "clean_prediction")


@dataclass
class Example:
    """One kept cell: what the figures say of it and, once loaded or kept, its 2D views."""

    case: str
    perturbation: str
    severity: int
    dice: float | None
    clean_dice: float | None
    view: SliceView
    file: str | None = None
    arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def loss(self) -> float:
        if self.dice is None or self.clean_dice is None:
            return float("-inf")
        return self.clean_dice - self.dice

    def to_dict(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "perturbation": self.perturbation,
            "severity": self.severity,
            "dice": self.dice,
            "clean_dice": self.clean_dice,
            "view": self.view.to_dict(),
            "file": self.file,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Example:
        view = data["view"]
        return cls(
            case=data["case"], perturbation=data["perturbation"], severity=int(data["severity"]),
            dice=data.get("dice"), clean_dice=data.get("clean_dice"),
            view=SliceView(axis=view.get("axis"), index=view.get("index"), aspect=float(view["aspect"])),
            file=data.get("file"),
        )

    def load(self, folder: Path) -> Example:
        """Read this example's arrays from its file under ``folder`` (the report's folder)."""
        if self.file is None:
            raise SegrobError(f"example {self.case} {self.perturbation} s{self.severity} has no file")
        path = (folder / self.file).resolve()
        if folder.resolve() not in path.parents:
            raise SegrobError(f"{self.file}: example file lies outside the report's folder; refused")
        try:
            with np.load(path, allow_pickle=False) as stored:
                self.arrays = {name: stored[name] for name in ARRAYS}
        except (OSError, KeyError, ValueError) as error:
            raise SegrobError(f"{path}: unreadable example ({type(error).__name__})") from None
        return self


class ExampleKeeper:
    """Collects the worst cell per (perturbation, severity) while an audit scores (thread-safe)."""

    def __init__(self, count: int):
        self.count = count
        self._clean: dict[str, tuple[SliceView, np.ndarray, np.ndarray, np.ndarray, float | None]] = {}
        self._worst: dict[tuple[str, int], Example] = {}
        self._lock = threading.Lock()

    def offer(self, case, perturbation: str, severity: int, image: np.ndarray, label: np.ndarray,
              prediction: np.ndarray, dice: float | None) -> None:
        """``image`` ``(C, *spatial)``, ``label`` and ``prediction`` ``(*spatial)``, on the host."""
        with self._lock:
            if perturbation == CLEAN:
                view = choose_view(label.shape, case.spacing, label)
                self._clean[case.name] = (view, view.take(image[0]), view.take(label), view.take(prediction),
                                          dice)
                return
            if case.name not in self._clean:
                return  # resumed: the clean cell was scored in an earlier run
            view, clean_image, clean_label, clean_prediction, clean_dice = self._clean[case.name]
            candidate = Example(case.name, perturbation, severity, dice, clean_dice, view)
            kept = self._worst.get((perturbation, severity))
            if kept is not None and kept.loss >= candidate.loss:
                return
            candidate.arrays = {
                "image": view.take(image[0]).astype(np.float32),
                "label": view.take(label).astype(np.uint8),
                "prediction": view.take(prediction).astype(np.uint8),
                "clean_image": clean_image.astype(np.float32),
                "clean_label": clean_label.astype(np.uint8),
                "clean_prediction": clean_prediction.astype(np.uint8),
            }
            self._worst[perturbation, severity] = candidate

    def candidates(self) -> list[Example]:
        """The worst cell kept per (perturbation, severity): what a worker hands back to merge."""
        with self._lock:
            return list(self._worst.values())

    def merge(self, candidates: list[Example]) -> None:
        """Take another keeper's candidates; merged in case order, ties go as in one keeper."""
        with self._lock:
            for candidate in candidates:
                kept = self._worst.get((candidate.perturbation, candidate.severity))
                if kept is None or candidate.loss > kept.loss:
                    self._worst[candidate.perturbation, candidate.severity] = candidate

    def examples(self) -> list[Example]:
        """The ``count`` kept cells with the largest Dice loss, worst first."""
        ranked = sorted(self._worst.values(), key=lambda e: (-e.loss, e.perturbation, e.severity))
        return ranked[: self.count]


def name_examples(examples: list[Example], prefix: str) -> None:
    """Give each example its file, ``<prefix>/NN-<perturbation>-s<severity>.npz`` (before the
    report that lists them is written)."""
    for index, example in enumerate(examples):
        example.file = f"{prefix}/{index:02d}-{example.perturbation}-s{example.severity}.npz"


def save_examples(examples: list[Example], folder: Path, prefix: str, *, inputs: tuple = ()) -> None:
    """Write each named example's arrays under ``folder`` (see :func:`name_examples`).

    The folder ``prefix`` is replaced as a whole, so no example of an earlier audit is left beside
    new ones.
    """
    from segrob.io_utils import atomic_output_dir

    with atomic_output_dir(folder / prefix, overwrite=True, inputs=inputs, kind="examples") as staging:
        for example in examples:
            with open(staging / Path(example.file).name, "wb") as handle:
                np.savez_compressed(handle, **example.arrays)
