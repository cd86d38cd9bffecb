"""Run a deployed ONNX model over a perturbation suite and return an :class:`AuditReport`.

For every case: the clean image and each (perturbation, severity) variant are drawn (each from
its own seed derived from the audit seed, the case, the perturbation and the severity, so results
do not depend on batch order, resuming or splitting), normalised as the model's metadata says,
run through one onnxruntime session in batches, and scored against the (possibly warped) label.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from segrob.audit.aggregate import summarise
from segrob.audit.data_source import AuditData, Fingerprint
from segrob.audit.examples import ExampleKeeper
from segrob.audit.gates import Bound, evaluate_gates
from segrob.audit.inference import predict, softmax
from segrob.audit.model_spec import ModelSpec, model_spec
from segrob.audit.records import CLEAN, CellRecord, PartialStore
from segrob.data.case import Case
from segrob.errors import SegrobError
from segrob.io_utils import file_sha256
from segrob.provenance import package_versions
from segrob.report import AuditReport

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class AuditOptions:
    """How to audit. ``overrides`` stand in for missing segrob metadata (``--in-channels`` ...)."""

    suite: str = "shift"
    seed: int = 0
    device: str = "auto"
    batch_size: int = 8
    window: tuple[int, ...] | None = None
    #: ``window`` or ``whole`` (see :data:`segrob.tiling.INFERENCE_MODES`)
    inference: str = "window"
    overlap: float = 0.5
    nsd_tolerance_mm: float = 1.0
    failure_dice: float = 0.5
    bounds: tuple[Bound, ...] = ()
    skip_bad: bool = False
    partial_path: Path | None = None
    resume: bool = False
    threads: int | None = None
    overrides: dict = field(default_factory=dict)
    #: Keep the views of this many worst cells for the HTML gallery (0: none).
    examples: int = 0

    def to_dict(self) -> dict:
        return {
            "suite": self.suite,
            "seed": self.seed,
            "device": self.device,
            "batch_size": self.batch_size,
            "window": list(self.window) if self.window else None,
            "inference_mode": self.inference,
            "overlap": self.overlap,
            "nsd_tolerance_mm": self.nsd_tolerance_mm,
            "failure_dice": self.failure_dice,
            "bounds": [b.to_dict() for b in self.bounds],
            "skip_bad": self.skip_bad,
            "overrides": self.overrides,
        }


@dataclass(frozen=True)
class _Variant:
    """One (perturbation, severity) version of a case, ready to infer and score."""

    perturbation: str
    severity: int
    seed: int
    params: dict
    image: torch.Tensor
    label: torch.Tensor | None


class _Timer:
    """Seconds per stage; metrics are timed on the scoring thread, so the stages overlap."""

    def __init__(self) -> None:
        # scorer_wait: the main thread idle on the scoring thread (what scoring adds to the wall time)
        self.seconds = {"perturbation": 0.0, "inference": 0.0, "metrics": 0.0, "scorer_wait": 0.0}
        self._lock = threading.Lock()

    def add(self, key: str, start: float) -> None:
        with self._lock:
            self.seconds[key] += time.perf_counter() - start


def audit(
    model_path: str | Path,
    data: AuditData,
    options: AuditOptions,
    *,
    progress: Progress | None = None,
) -> AuditReport:
    """Audit ``model_path`` on ``data`` under ``options.suite``; see the module docstring."""
    from segrob.onnx.metadata import check_metadata
    from segrob.onnx.session import create_session
    from segrob.perturb.suites import resolve_suite

    started = time.perf_counter()
    suite = resolve_suite(options.suite)
    session = create_session(model_path, device=options.device, threads=_threads(options))
    check_metadata({k: v for k, v in session.metadata.items() if k not in options.overrides}, model_path)
    try:
        spec = model_spec(session, options)
    except SegrobError as error:  # metadata or graph the audit cannot use: name the model
        raise SegrobError(f"{model_path}: {error}") from None
    # Members that do not exist for the model's dimensionality are left out and reported.
    suite, left_out = suite.for_spatial_dims(spec.spatial_dims)
    cells = [(CLEAN, 0)] + [(e.perturbation, s) for e in suite.entries for s in e.severities]
    sha256 = file_sha256(model_path)
    header = {
        "model_sha256": sha256,
        "data": data.identity,
        "cases": data.names,
        "suite": suite.to_dict(),
        "seed": options.seed,
        "settings": options.to_dict(),
    }
    store = PartialStore(options.partial_path, header) if options.partial_path else None
    done = store.open(resume=options.resume) if store else {}
    timer = _Timer()
    keeper = ExampleKeeper(options.examples) if options.examples > 0 else None
    records: list[CellRecord] = []
    skipped: list[dict[str, str]] = []
    fingerprint = Fingerprint()
    total = len(data) * len(cells)
    completed = 0
    scorer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="segrob-metrics")
    previous: list[Future] = []

    def collect(jobs: list[Future]) -> None:
        for job in jobs:
            start = time.perf_counter()
            done_records = job.result()
            timer.add("scorer_wait", start)
            for record in done_records:
                records.append(record)
                if store:
                    store.append(record)

    try:
        for name, case in data:
            if isinstance(case, SegrobError):
                if not options.skip_bad:
                    raise SegrobError(f"{case} (use --skip-bad to audit the other cases)")
                skipped.append({"name": name, "error": str(case)})
                completed += len(cells)
                continue
            spec.check_case(case)
            fingerprint.add(case)
            todo = [cell for cell in cells if (case.name, *cell) not in done]
            records.extend(done[(case.name, *cell)] for cell in cells if (case.name, *cell) in done)
            jobs = _audit_case(case, todo, spec, options, timer, scorer, keeper)
            # Collect the previous case's scores only now, so they overlap this case's inference.
            collect(previous)
            previous = jobs
            completed += len(cells)
            if progress is not None:
                progress(completed, total, case.name)
        collect(previous)
    except BaseException:
        scorer.shutdown(wait=True, cancel_futures=True)
        if store:
            store.close(remove=False)
        raise
    scorer.shutdown(wait=True)
    if not records:
        raise SegrobError(f"{data.source}: no case could be audited")
    summary = summarise(
        records, failure_dice=options.failure_dice, fbr_range=spec.fbr_range, seed=options.seed
    )
    gates = None
    if options.bounds:
        failures = evaluate_gates(summary, options.bounds)
        gates = {
            "bounds": [b.to_dict() for b in options.bounds],
            "failures": [f.to_dict() for f in failures],
            "passed": not failures,
        }
    timings = {k: round(v, 4) for k, v in timer.seconds.items()}
    timings["total"] = round(time.perf_counter() - started, 4)
    report = AuditReport(
        model={
            "path": str(model_path),
            "sha256": sha256,
            "metadata": spec.metadata,
            **spec.describe(),
        },
        data={**data.describe(), "fingerprint": fingerprint.hexdigest()},
        suite=suite.to_dict(),
        settings={
            **options.to_dict(),
            "providers": list(session.providers),
            "inference": spec.plan(options).to_dict(),
            "classes": spec.foreground_classes,
            "left_out_perturbations": left_out,
        },
        summary=summary,
        records=[r.to_dict() for r in sorted(records, key=_record_order(cells))],
        timings=timings,
        versions=package_versions("onnxruntime", "torch", "numpy"),
        gates=gates,
        skipped_cases=skipped,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        examples=keeper.examples() if keeper else [],
    )
    if store:
        store.close(remove=True)
    return report


def _threads(options: AuditOptions) -> int | None:
    """``--threads``, else onnxruntime's threads with a core left to the scoring thread."""
    from segrob.onnx.session import threads_beside

    return options.threads or threads_beside(1)


def _record_order(cells: list[tuple[str, int]]) -> Callable[[CellRecord], tuple]:
    position = {cell: i for i, cell in enumerate(cells)}
    return lambda r: (r.case, position.get((r.perturbation, r.severity), len(position)))


def _audit_case(
    case: Case,
    cells: list[tuple[str, int]],
    spec: ModelSpec,
    options: AuditOptions,
    timer: _Timer,
    scorer: ThreadPoolExecutor,
    keeper: ExampleKeeper | None = None,
) -> list[Future]:
    """Perturb and infer one case; returns the scoring jobs (futures of cell records)."""
    from segrob.perturb.registry import apply_perturbation
    from segrob.perturb.seeding import derive_seed
    from segrob.perturb.stats import image_stats

    device = spec.torch_device
    image = torch.from_numpy(case.image)[None].to(device)
    label = torch.from_numpy(case.label)[None].to(device) if case.label is not None else None
    variants: list[_Variant] = []
    stats = image_stats(image)  # the clean image's robust range, once for all its perturbations
    for name, severity in cells:
        start = time.perf_counter()
        seed = derive_seed(options.seed, case.name, name, severity)
        if name == CLEAN:
            variants.append(_Variant(name, severity, seed, {}, image, label))
        else:
            out_image, out_label, applied = apply_perturbation(
                name, image, label, severity=severity, seed=seed, stats=stats
            )
            variants.append(_Variant(name, severity, seed, applied.params, out_image, out_label))
        timer.add("perturbation", start)
    plan = spec.plan(options)
    labels = scorer.submit(_label_surfaces, case, spec)
    pending = []
    # Variants of one case share a shape: batch them through the model together. Scoring runs
    # on a worker thread while the next batch is inferred (onnxruntime releases the GIL).
    for begin in range(0, len(variants), max(1, options.batch_size)):
        chunk = variants[begin : begin + options.batch_size]
        start = time.perf_counter()
        logits = predict(torch.cat([v.image for v in chunk]), plan, spec.run)
        timer.add("inference", start)
        pending.append(scorer.submit(_score_chunk, case, chunk, logits, spec, options, timer, keeper, labels))
    return pending


def _label_surfaces(case: Case, spec: ModelSpec) -> dict:
    """The clean label's surfaces, reused by every cell whose perturbation leaves the label as is."""
    from segrob.metrics.case import label_surfaces

    if case.label is None:
        return {}
    return label_surfaces(case.label, spacing=case.spacing, classes=spec.foreground_classes)


def _score_chunk(case: Case, chunk: list[_Variant], logits: np.ndarray, spec: ModelSpec,
                 options: AuditOptions, timer: _Timer, keeper: ExampleKeeper | None,
                 labels: Future) -> list[CellRecord]:
    from segrob.metrics import case_metrics
    from segrob.metrics.calibration import class_argmax

    start = time.perf_counter()
    probabilities = softmax(logits)
    predictions = class_argmax(probabilities, axis=1)
    records = []
    for index, variant in enumerate(chunk):
        if variant.label is None:
            where = case.source.get("image", case.name)
            raise SegrobError(f"{where}: case has no label to score against")
        truth = variant.label[0].cpu().numpy()
        result = case_metrics(
            predictions[index],
            truth,
            spacing=case.spacing,
            classes=spec.foreground_classes,
            nsd_tolerance_mm=options.nsd_tolerance_mm,
            probabilities=probabilities[index],
            labels=labels.result(),
        )
        record = _record(case, variant, result, truth)
        records.append(record)
        if keeper is not None:
            keeper.offer(case, variant.perturbation, variant.severity, variant.image[0].cpu().numpy(),
                         truth, predictions[index], record.metrics.get("dice"))
    timer.add("metrics", start)
    return records


def _record(case: Case, variant: _Variant, result, truth: np.ndarray) -> CellRecord:
    as_dict = result.to_dict()
    mean = dict(as_dict["mean"])
    mean["ece"] = as_dict.get("ece")
    mean["entropy"] = as_dict.get("entropy")
    per_class = {str(k): {m: v for m, v in values.items() if m != "empty"}
                 for k, values in as_dict["per_class"].items()}
    empty = {str(k): values.get("empty", "none") for k, values in as_dict["per_class"].items()}
    return CellRecord(
        case=case.name,
        perturbation=variant.perturbation,
        severity=int(variant.severity),
        seed=int(variant.seed),
        params=variant.params,
        metrics=mean,
        per_class=per_class,
        empty=empty,
        foreground_ratio=float(np.count_nonzero(truth)) / float(truth.size),
    )
