"""Run a deployed ONNX model over a perturbation suite and return an :class:`AuditReport`.

For every case: the clean image and each (perturbation, severity) variant are drawn (each from
its own seed derived from the audit seed, the case, the perturbation and the severity, so results
do not depend on batch order, resuming or splitting), normalised as the model's metadata says,
run through one onnxruntime session in batches, and scored against the (possibly warped) label.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from segrob.audit.aggregate import summarise
from segrob.audit.data_source import AuditData, Fingerprint
from segrob.audit.examples import ExampleKeeper
from segrob.audit.gates import Bound, evaluate_gates
from segrob.audit.labels import LabelPlan, absent_classes, label_plan, without_classes
from segrob.audit.model_spec import AuditModel, model_spec
from segrob.audit.records import CLEAN, CellRecord, PartialStore
from segrob.audit.units import (
    STAGES,
    CaseResult,
    Cell,
    CellSettings,
    ModelPlan,
    add_reliability,
    adopt_runtime,
    audit_cases,
    audit_session,
)
from segrob.data.case import Case
from segrob.errors import SegrobError
from segrob.io_utils import file_sha256
from segrob.preprocessing import PreprocessingSpec, canonical_case
from segrob.provenance import package_versions
from segrob.report import AuditReport, reliability_table

Progress = Callable[[int, int, str], None]
#: Runs the units of work, here or elsewhere, and yields each case's result (in any order).
Work = tuple[Case, list[Cell]]
Engine = Callable[[Iterable[Work], ModelPlan, CellSettings], Iterator[CaseResult]]


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
    #: ``voxel`` or ``area`` and ``segrob`` or ``nnunet``: see :func:`segrob.metrics.case_metrics`.
    nsd_definition: str = "voxel"
    empty_policy: str = "segrob"
    failure_dice: float = 0.5
    bounds: tuple[Bound, ...] = ()
    skip_bad: bool = False
    partial_path: Path | None = None
    resume: bool = False
    threads: int | None = None
    overrides: dict = field(default_factory=dict)
    #: Keep the views of this many worst cells for the HTML gallery (0: none).
    examples: int = 0
    #: Preprocessing asked for (``--preprocessing`` or flags); ``None``: the model's own.
    preprocessing: PreprocessingSpec | None = None

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
            "nsd_definition": self.nsd_definition,
            "empty_policy": self.empty_policy,
            "failure_dice": self.failure_dice,
            "bounds": [b.to_dict() for b in self.bounds],
            "skip_bad": self.skip_bad,
            "overrides": self.overrides,
            "preprocessing": self.preprocessing.to_dict() if self.preprocessing else None,
        }


@dataclass(frozen=True)
class ModelIdentity:
    """What the report says the audited model is: where it came from and what ran it."""

    path: str
    sha256: str
    providers: tuple[str, ...]


def audit(
    model_path: str | Path,
    data: AuditData,
    options: AuditOptions,
    *,
    progress: Progress | None = None,
    engine: Engine | None = None,
) -> AuditReport:
    """Audit the ONNX model ``model_path`` on ``data`` under ``options.suite``.

    ``engine`` runs the units of work (:func:`segrob.audit.units.audit_cases` in this process by
    default; :mod:`segrob.ray_engine` shards them over a Ray cluster).
    """
    from segrob.onnx.metadata import check_metadata

    started = time.perf_counter()
    session = audit_session(model_path, device=options.device, threads=_threads(options))
    check_metadata({k: v for k, v in session.metadata.items() if k not in options.overrides}, model_path)
    try:
        model = model_spec(session, options)
    except SegrobError as error:  # metadata or graph the audit cannot use: name the model
        raise type(error)(f"{model_path}: {error}") from None  # a usage error stays one (exit 2)
    preprocessing = _preprocessing(model, options, model_path)
    inference = replace(model.plan(options), preprocessing=preprocessing)
    sha256 = file_sha256(model_path)
    plan = ModelPlan(source=str(model_path), key=sha256, inference=inference, head=model.head,
                     contract=model.contract, classes=tuple(model.foreground_classes),
                     device=options.device, threads=_threads(options))
    adopt_runtime(plan, model.run, model.torch_device, on_gpu=session.on_cuda)  # the session is open here
    identity = ModelIdentity(str(model_path), sha256, tuple(session.providers))
    return audit_plan(model, plan, identity, data, options, progress=progress, engine=engine, started=started)


def audit_plan(
    model: AuditModel,
    plan: ModelPlan,
    identity: ModelIdentity,
    data: AuditData,
    options: AuditOptions,
    *,
    progress: Progress | None = None,
    engine: Engine | None = None,
    started: float | None = None,
) -> AuditReport:
    """Audit any model described by ``model`` and ``plan`` (an ONNX file or a predict callable)."""
    from segrob.perturb.suites import resolve_suite

    started = time.perf_counter() if started is None else started
    # Members that do not exist for the model's dimensionality are left out and reported.
    suite, left_out = resolve_suite(options.suite).for_spatial_dims(model.spatial_dims)
    cells = [(CLEAN, 0)] + [(e.perturbation, s) for e in suite.entries for s in e.severities]
    header = {"model_sha256": identity.sha256, "data": data.identity, "cases": data.names,
              "suite": suite.to_dict(), "seed": options.seed, "settings": _settings(options, plan)}
    store = PartialStore(options.partial_path, header) if options.partial_path else None
    run = _Run(cells, store.open(resume=options.resume) if store else {}, len(data) * len(cells), progress)
    labels = label_plan(model.out_channels, data.labels, options.overrides.get("label_map"), data.source,
                        data.label_files)
    settings = CellSettings(seed=options.seed, nsd_tolerance_mm=options.nsd_tolerance_mm,
                            nsd_definition=options.nsd_definition, empty_policy=options.empty_policy,
                            examples=options.examples > 0, labels=labels)
    try:
        work = run.work(data, model, options, plan.inference.preprocessing, settings.labels)
        for result in (engine or audit_cases)(work, plan, settings):
            run.add(result, store)
    except BaseException:
        if store:
            store.close(remove=False)
        raise
    if not run.records:
        if store:
            store.close(remove=True)  # nothing to resume: leave neither the store nor its lock
        raise SegrobError(f"{data.source}: no case could be audited")
    report = _report(run, model, plan, identity, data, options, suite.to_dict(), left_out, started, labels)
    if store:
        store.close(remove=True)
    return report


class _Run:
    """The driver's side of an audit: what to do, what is done, and the progress of both."""

    def __init__(self, cells: list[Cell], done: dict, total: int, progress: Progress | None):
        self.cells = cells
        self.done = done
        self.total = total
        self.progress = progress
        self.completed = 0
        self.records: list[CellRecord] = []
        self.skipped: list[dict[str, str]] = []
        self.fingerprint = Fingerprint()
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self.examples: dict[str, list] = {}
        self.reliability: dict[str, np.ndarray] = {}

    def work(self, data: AuditData, model: AuditModel, options: AuditOptions,
             preprocessing: PreprocessingSpec | None = None,
             labels: LabelPlan | None = None) -> Iterator[Work]:
        """Read each case, check it and yield it with the cells still to do (runs in the driver).

        A case is put in the model's canonical orientation here, before any perturbation, and its
        label values are checked (and mapped) against the model's classes."""
        for name, case in data:
            if isinstance(case, SegrobError):
                if not options.skip_bad:
                    raise SegrobError(f"{case} (use --skip-bad to audit the other cases)")
                self.skipped.append({"name": name, "error": str(case)})
                self._advance(name)
                continue
            case = canonical_case(case, preprocessing)
            model.check_case(case)
            self.fingerprint.add(case)
            case = labels.prepare(case) if labels is not None else case
            todo = [cell for cell in self.cells if (case.name, *cell) not in self.done]
            self.records.extend(self.done[key] for c in self.cells if (key := (case.name, *c)) in self.done)
            if todo:
                yield case, todo
            else:
                self._advance(name)

    def add(self, result: CaseResult, store: PartialStore | None) -> None:
        for record in result.records:
            self.records.append(record)
            if store:
                store.append(record)
        for stage, seconds in result.seconds.items():
            self.seconds[stage] += seconds
        self.examples[result.case] = result.examples
        add_reliability(self.reliability, result.reliability)
        self._advance(result.case)

    def _advance(self, name: str) -> None:
        self.completed += len(self.cells)
        if self.progress is not None:
            self.progress(self.completed, self.total, name)

    def kept_examples(self, count: int, names: list[str]) -> list:
        keeper = ExampleKeeper(count)
        for name in names:  # in data order, whatever order the engine returned the cases in
            keeper.merge(self.examples.get(name, []))
        return keeper.examples()


def _report(run: _Run, model: AuditModel, plan: ModelPlan, identity: ModelIdentity, data: AuditData,
            options: AuditOptions, suite: dict, left_out: list, started: float,
            labels: LabelPlan) -> AuditReport:
    absent = absent_classes(run.records, model.foreground_classes)
    without_classes(run.records, absent)
    summary = summarise(run.records, failure_dice=options.failure_dice, fbr_range=model.fbr_range,
                        seed=options.seed)
    gates = None
    if options.bounds:
        failures = evaluate_gates(summary, options.bounds)
        gates = {"bounds": [b.to_dict() for b in options.bounds],
                 "failures": [f.to_dict() for f in failures], "passed": not failures}
    timings = {k: round(v, 4) for k, v in run.seconds.items()}
    timings["total"] = round(time.perf_counter() - started, 4)
    return AuditReport(
        model={"path": identity.path, "sha256": identity.sha256, "metadata": model.metadata,
               **model.describe()},
        data={**data.describe(), "fingerprint": run.fingerprint.hexdigest()},
        suite=suite,
        settings={
            **_settings(options, plan),
            "providers": list(identity.providers),
            "inference": plan.inference.to_dict(),
            "classes": list(plan.classes),
            "left_out_perturbations": left_out,
            "labels": {**labels.to_dict(), "absent_classes": absent, "warnings": [
                f"model class {k} is absent from every label: left out of the foreground mean"
                for k in absent]},
        },
        summary=summary,
        records=[r.to_dict() for r in sorted(run.records, key=_record_order(run.cells))],
        timings=timings,
        versions=package_versions("onnxruntime", "torch", "numpy"),
        gates=gates,
        skipped_cases=run.skipped,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        examples=run.kept_examples(options.examples, data.names) if options.examples > 0 else [],
        reliability=reliability_table(run.reliability),
    )


def _threads(options: AuditOptions) -> int | None:
    """``--threads``, else onnxruntime's threads with a core left to the helper threads."""
    from segrob.onnx.session import threads_beside

    return options.threads or threads_beside(1)


def _settings(options: AuditOptions, plan: ModelPlan) -> dict:
    """The options as recorded, with the preprocessing the model was fed (when there is one)."""
    preprocessing = plan.inference.preprocessing
    return {**options.to_dict(), **({"preprocessing": preprocessing.to_dict()} if preprocessing else {})}


def _preprocessing(spec: AuditModel, options: AuditOptions, model_path) -> PreprocessingSpec:
    """The spec asked for, else the one the model's metadata states (a legacy
    ``--normalization`` replaces its intensity part); its intensity becomes the plan's."""
    from segrob.preprocessing import from_normalization, model_preprocessing

    try:
        chosen = options.preprocessing or model_preprocessing(spec.metadata)
    except SegrobError as error:
        raise SegrobError(f"{model_path}: metadata {error}") from None
    if options.preprocessing is None and "normalization" in options.overrides:
        chosen = replace(chosen, intensity=from_normalization(spec.normalization).intensity)
    if chosen.channel_order is not None and len(chosen.channel_order) != spec.in_channels:
        raise SegrobError(f"preprocessing: channel_order {list(chosen.channel_order)} does not "
                          f"cover the model's {spec.in_channels} input channel(s)")
    if chosen.target_spacing is not None and len(chosen.target_spacing) != spec.spatial_dims:
        raise SegrobError(f"preprocessing: target_spacing has {len(chosen.target_spacing)} values; "
                          f"the model is {spec.spatial_dims}D")
    spec.normalization = chosen.intensity
    return chosen


def _record_order(cells: list[tuple[str, int]]) -> Callable[[CellRecord], tuple]:
    position = {cell: i for i, cell in enumerate(cells)}
    return lambda r: (r.case, position.get((r.perturbation, r.severity), len(position)))
