"""Apply perturbations to a dataset's cases and write them (the library side of `segrob perturb`).

Each (case, perturbation, severity) draws from ``derive_seed(seed, case, perturbation,
severity)``, exactly as the audit does, so ``segrob perturb --seed S`` writes the images an audit
with seed ``S`` scores.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from segrob.data.case import Case
from segrob.data.dataset import Dataset
from segrob.data.formats import split_suffix, write_array
from segrob.io_utils import atomic_output_dir, check_output_dir, write_json_atomic
from segrob.perturb.base import AppliedPerturbation
from segrob.perturb.registry import apply_perturbation
from segrob.perturb.seeding import derive_seed
from segrob.perturb.suites import Suite, SuiteEntry

DEFAULT_SUFFIX = ".nii.gz"
RECORD_FILE = "perturbations.json"


def case_tensors(case: Case) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A batch of one: image ``(1, C, *spatial)`` float32 and label ``(1, *spatial)`` or None."""
    image = torch.from_numpy(np.ascontiguousarray(case.image, dtype=np.float32))[None]
    label = None if case.label is None else torch.from_numpy(np.ascontiguousarray(case.label))[None]
    return image, label


def perturb_case(
    case: Case, name: str, severity: int, *, seed: int
) -> tuple[torch.Tensor, torch.Tensor | None, AppliedPerturbation]:
    """Apply ``name`` at ``severity`` to one case with the audit's per-case seed and its spacing."""
    image, label = case_tensors(case)
    case_seed = derive_seed(seed, case.name, name, severity)
    return apply_perturbation(name, image, label, severity=severity, seed=case_seed, spacing=case.spacing)


def _label_array(label: torch.Tensor) -> np.ndarray:
    array = label.cpu().numpy()
    # The smallest type that holds the class ids: uint8 for the usual few classes.
    if array.size and array.min() >= 0 and array.max() < 256:
        return array.astype(np.uint8)
    return array.astype(np.int32)


def write_perturbed_dataset(
    dataset: Dataset,
    suite: Suite,
    out: str | Path,
    *,
    seed: int = 0,
    limit: int | None = None,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Write every (case, perturbation, severity) of ``suite`` to ``out`` as images/ + labels/.

    Output names are ``<case>__<perturbation>_s<severity>`` in the case's own file format; the
    folder appears only when everything is written (a failure leaves no half folder), with
    ``perturbations.json`` recording each output's seed and applied parameters. Members that do
    not work on the dataset's dimensionality are left out and listed under ``skipped``.

    Returns:
        The contents of ``perturbations.json``: source, seed, skipped and applied records.
    """
    inputs = (dataset.root, *_case_files(dataset))
    check_output_dir(out, overwrite=overwrite, inputs=inputs)
    names = dataset.names[:limit] if limit else dataset.names
    applied: list[dict[str, Any]] = []
    skipped: list[str] = []
    with atomic_output_dir(out, overwrite=overwrite, inputs=inputs, kind="perturbed") as staging:
        (staging / "images").mkdir()
        (staging / "labels").mkdir()
        for index, name in enumerate(names):
            case = dataset.case(name)
            kept, dropped = suite.for_spatial_dims(case.spatial_dims)
            skipped += [d for d in dropped if d not in skipped]
            suffix = split_suffix(case.source.get("image", ""))[1] or DEFAULT_SUFFIX
            for entry in kept.entries:
                for severity in entry.severities:
                    out_image, out_label, record = perturb_case(case, entry.perturbation, severity,
                                                                seed=seed)
                    stem = f"{case.name}__{entry.perturbation}_s{severity}"
                    array = out_image[0].cpu().numpy()
                    write_array(staging / "images" / f"{stem}{suffix}",
                                array[0] if array.shape[0] == 1 else array, case.spacing)
                    if out_label is not None:
                        write_array(staging / "labels" / f"{stem}{suffix}",
                                    _label_array(out_label[0]), case.spacing)
                    applied.append({"case": case.name, "output": stem, **record.to_dict()})
            if progress is not None:
                progress(index + 1)
        if not any((staging / "labels").iterdir()):
            (staging / "labels").rmdir()
        summary = {"source": str(dataset.root), "suite": suite.to_dict(), "seed": seed,
                   "skipped": skipped, "applied": applied}
        write_json_atomic(staging / RECORD_FILE, summary)
    return summary


def _case_files(dataset: Dataset) -> list[Path]:
    """Every file the dataset reads (cases may live outside its folder when allowed)."""
    files = []
    for case in dataset.layout.cases:
        files += [*case.images, *([case.label] if case.label is not None else [])]
    return files


def single_suite(name: str, severities: Sequence[int]) -> Suite:
    """A one-member suite (for ``--perturbation NAME --severity S``)."""
    return Suite(name, f"{name} at severity {', '.join(map(str, severities))}",
                 (SuiteEntry(name, tuple(severities)),))
