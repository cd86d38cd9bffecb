"""Parity between PyTorch and onnxruntime: logit tolerances and, what decides, mask agreement.

Tensor tolerances alone do not say whether a deployment is safe (a 1e-3 logit change near a
decision boundary flips voxels; a large change far from it flips none), so the export gate is
on the masks: argmax agreement and Dice between the PyTorch and the ONNX masks.

For logits ``r`` (PyTorch) and ``o`` (ONNX), over all voxels ``v`` and classes:

* ``max_abs_diff = max |o - r|``, ``max_rel_diff = max |o - r| / max(|r|, 1e-6)``;
* ``within_tolerance`` = share of elements with ``|o - r| <= atol + rtol |r|`` (numpy's rule);
* ``argmax_agreement`` = share of voxels whose argmax class is the same;
* ``mask_dice`` = mean over cases of the mean over foreground classes ``c`` of
  ``2 |R_c & O_c| / (|R_c| + |O_c|)`` (1 when both masks are empty).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from segrob.errors import SegrobError, UsageError

PRECISIONS = ("fp32", "fp16", "int8")

#: (min argmax agreement, min mask Dice) per precision. FP16 and INT8 change the arithmetic on
#: purpose, so their masks may differ along boundaries.
DEFAULT_THRESHOLDS: dict[str, tuple[float, float]] = {
    "fp32": (0.999, 0.99),
    "fp16": (0.995, 0.98),
    "int8": (0.95, 0.90),
}
#: (atol, rtol) for the reported tensor tolerance, per precision.
DEFAULT_TOLERANCES: dict[str, tuple[float, float]] = {
    "fp32": (1e-4, 1e-3),
    "fp16": (1e-2, 1e-2),
    "int8": (1e-1, 1e-1),
}


@dataclass(frozen=True)
class ParityThresholds:
    """The export gate. ``max_abs_diff`` is optional: masks decide by default."""

    min_agreement: float
    min_dice: float
    max_abs_diff: float | None = None
    atol: float = 1e-4
    rtol: float = 1e-3

    @classmethod
    def for_precision(
        cls,
        precision: str,
        *,
        min_agreement: float | None = None,
        min_dice: float | None = None,
        max_abs_diff: float | None = None,
    ) -> ParityThresholds:
        """Defaults for ``precision`` with any of them overridden."""
        if precision not in PRECISIONS:
            raise UsageError(f"unknown precision {precision!r} (valid: {', '.join(PRECISIONS)})")
        agreement, dice = DEFAULT_THRESHOLDS[precision]
        atol, rtol = DEFAULT_TOLERANCES[precision]
        for name, value in (("agreement", min_agreement), ("dice", min_dice)):
            if value is not None and not 0.0 <= value <= 1.0:
                raise UsageError(f"minimum parity {name} must be in [0, 1], got {value}")
        return cls(
            min_agreement=agreement if min_agreement is None else float(min_agreement),
            min_dice=dice if min_dice is None else float(min_dice),
            max_abs_diff=max_abs_diff,
            atol=atol,
            rtol=rtol,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ParityResult:
    """Parity of one exported model on ``n_cases`` inputs (see the module docstring)."""

    n_cases: int
    n_voxels: int
    max_abs_diff: float
    max_rel_diff: float
    mean_abs_diff: float
    within_tolerance: float
    argmax_agreement: float
    mask_dice: float
    mask_dice_min: float
    dice_vs_label: dict[str, float] | None
    thresholds: ParityThresholds
    failures: list[str] = field(default_factory=list)
    inputs: str = ""

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["thresholds"] = self.thresholds.to_dict()
        out["passed"] = self.passed
        return out


def masks_from_logits(logits: np.ndarray) -> np.ndarray:
    """Class map from ``(K, *spatial)`` logits: argmax, or ``logit > 0`` for one channel."""
    if logits.shape[0] == 1:
        return (logits[0] > 0).astype(np.int32)
    return np.argmax(logits, axis=0).astype(np.int32)


def mean_dice(a: np.ndarray, b: np.ndarray, classes: Sequence[int]) -> float:
    """Mean over ``classes`` of the Dice of ``a == c`` and ``b == c``; both empty counts as 1."""
    from segrob.metrics.overlap import dice

    return float(np.mean([dice(a == c, b == c) for c in classes])) if classes else 1.0


@dataclass
class _Tally:
    """Running sums of the parity figures over cases."""

    max_abs: float = 0.0
    max_rel: float = 0.0
    abs_sum: float = 0.0
    n_elements: int = 0
    n_close: int = 0
    n_voxels: int = 0
    n_agree: int = 0
    dice_cases: list[float] = field(default_factory=list)
    label_dice: dict[str, list[float]] = field(default_factory=lambda: {"torch": [], "onnx": []})

    def add(self, index: int, ref: np.ndarray, out: np.ndarray, label: np.ndarray | None,
            thresholds: ParityThresholds) -> None:
        if ref.shape != out.shape:
            raise SegrobError(
                f"case {index}: ONNX output shape {out.shape} differs from PyTorch's {ref.shape}"
            )
        diff = np.abs(out - ref)
        if not np.all(np.isfinite(out)):
            diff = np.where(np.isfinite(out), diff, np.inf)
        self.max_abs = max(self.max_abs, float(diff.max()))
        self.max_rel = max(self.max_rel, float((diff / np.maximum(np.abs(ref), 1e-6)).max()))
        self.abs_sum += float(diff.sum())
        self.n_elements += diff.size
        self.n_close += int((diff <= thresholds.atol + thresholds.rtol * np.abs(ref)).sum())
        classes = range(1, max(2, ref.shape[0]))
        ref_mask, out_mask = masks_from_logits(ref), masks_from_logits(out)
        self.n_voxels += ref_mask.size
        self.n_agree += int((ref_mask == out_mask).sum())
        self.dice_cases.append(mean_dice(ref_mask, out_mask, classes))
        if label is not None:
            self.label_dice["torch"].append(mean_dice(ref_mask, label, classes))
            self.label_dice["onnx"].append(mean_dice(out_mask, label, classes))


def compare_logits(
    reference: Sequence[np.ndarray],
    candidate: Sequence[np.ndarray],
    thresholds: ParityThresholds,
    *,
    labels: Sequence[np.ndarray | None] | None = None,
    inputs: str = "",
) -> ParityResult:
    """Parity of per-case logits ``(K, *spatial)`` (shapes may differ between cases).

    Args:
        reference: PyTorch logits, one array per case.
        candidate: onnxruntime logits, same shapes.
        thresholds: the gate; failures are listed in the result, nothing is raised here.
        labels: ground truth per case, to report each side's Dice and its change.
        inputs: where the inputs came from, for the report.
    """
    if len(reference) != len(candidate) or not reference:
        raise SegrobError("parity needs the same, non-zero number of reference and ONNX outputs")
    tally = _Tally()
    for index, (ref, out) in enumerate(zip(reference, candidate, strict=True)):
        label = labels[index] if labels is not None else None
        tally.add(index, np.asarray(ref, dtype=np.float64), np.asarray(out, dtype=np.float64), label,
                  thresholds)
    vs_label = None
    if tally.label_dice["torch"]:
        torch_dice = float(np.mean(tally.label_dice["torch"]))
        onnx_dice = float(np.mean(tally.label_dice["onnx"]))
        vs_label = {"torch": torch_dice, "onnx": onnx_dice, "change": onnx_dice - torch_dice}
    result = ParityResult(
        n_cases=len(reference),
        n_voxels=tally.n_voxels,
        max_abs_diff=tally.max_abs,
        max_rel_diff=tally.max_rel,
        mean_abs_diff=tally.abs_sum / max(1, tally.n_elements),
        within_tolerance=tally.n_close / max(1, tally.n_elements),
        argmax_agreement=tally.n_agree / max(1, tally.n_voxels),
        mask_dice=float(np.mean(tally.dice_cases)),
        mask_dice_min=float(np.min(tally.dice_cases)),
        dice_vs_label=vs_label,
        thresholds=thresholds,
        inputs=inputs,
    )
    result.failures = _failures(result, thresholds)
    return result


def _failures(result: ParityResult, thresholds: ParityThresholds) -> list[str]:
    failures = []
    if not np.isfinite(result.max_abs_diff):
        failures.append("ONNX logits contain NaN or infinity")
    if result.argmax_agreement < thresholds.min_agreement:
        failures.append(
            f"argmax agreement {result.argmax_agreement:.4f} < {thresholds.min_agreement}"
        )
    if result.mask_dice < thresholds.min_dice:
        failures.append(f"mask Dice {result.mask_dice:.4f} < {thresholds.min_dice}")
    if thresholds.max_abs_diff is not None and result.max_abs_diff > thresholds.max_abs_diff:
        failures.append(
            f"max |logit diff| {result.max_abs_diff:.3g} > {thresholds.max_abs_diff}"
        )
    return failures


def require_parity(result: ParityResult, *, what: str) -> None:
    """Raise :class:`SegrobError` naming every failed threshold and how to relax them."""
    if result.passed:
        return
    raise SegrobError(
        f"{what}: parity check failed on {result.n_cases} case(s): "
        + "; ".join(result.failures)
        + " (nothing written; relax the gate with --min-agreement / --min-dice if acceptable)"
    )
