"""The audit's unit of work: the cells of one case (or a block of cases) against a model plan.

A :class:`ModelPlan` is what a worker needs to run the model and nothing live: the ONNX file's
path or bytes (or a predict callable), the device, the inference plan (normalisation, sizes,
window) and the classes to score. It pickles, so it can be sent to another process or node;
the onnxruntime session is opened lazily where the work runs and cached for the life of that
process. :func:`audit_cases` and :func:`audit_block` are pure in the sense that matters here:
the records they return depend only on the cases, the cells, the plan and the settings (every
cell draws its own seed), so any split of the cases over any number of workers gives the same
records as one process does.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from segrob.audit.examples import Example, ExampleKeeper
from segrob.audit.inference import InferencePlan, OutputHead, predict
from segrob.audit.labels import LabelPlan
from segrob.audit.records import CLEAN, CellRecord
from segrob.data.case import Case
from segrob.errors import SegrobError

#: A batch ``(N, C, *spatial)`` float32 array in, logits ``(N, K, *spatial)`` out.
ArrayPredict = Callable[[np.ndarray], np.ndarray]
Cell = tuple[str, int]
#: The helper threads' niceness (Linux: per thread); 19 is the lowest priority.
HELPER_NICENESS = 19
#: Perturb each batch on a helper thread while the batch before it runs (off: on the main
#: thread, between inferences, as ``bench_audit.py --compare-scheduling`` compares).
PERTURB_AHEAD = True
#: Scoring threads at most when the model runs on a GPU. Inference then leaves the CPU's cores
#: free, and scoring on one thread bounds the audit (on an H100, 3.1 s of scoring CPU against
#: 0.43 s of torch's inference, benchmarks/results/gpu_check_h100_run2.json). NumPy lets go of the
#: GIL inside its loops, not between them, so each thread adds less than the one before.
GPU_SCORING_THREADS = 4
#: Seconds per stage. ``perturbation`` and ``metrics`` run on helper threads beside inference, so
#: the stages overlap; ``scorer_wait`` is the main thread idle on the helpers (for a batch's
#: images or a case's scores), what both add to the wall time; ``metrics_cpu`` is the scoring
#: threads' CPU time, what scoring costs whatever else shares the cores.
STAGES = ("perturbation", "inference", "metrics", "metrics_cpu", "scorer_wait")


@dataclass(frozen=True)
class ModelPlan:
    """A model as a worker receives it: no live session inside, so it can cross processes.

    ``source`` is an ONNX path (every worker must be able to read it), the ONNX file's bytes
    (sent through the object store), or a callable from a batch array to logits. ``key`` names
    the model for the per-process session cache (the file's sha256).
    """

    source: str | bytes | ArrayPredict
    key: str
    inference: InferencePlan
    classes: tuple[int, ...]
    device: str = "auto"
    threads: int | None = None
    #: From the output to probabilities and labels (softmax and argmax when not given).
    head: OutputHead = field(default_factory=OutputHead)
    #: What the graph says about feeding an ONNX model (static batch, which output): a worker's
    #: own session honours it as the driver's does.
    contract: Any = None


@dataclass(frozen=True)
class CellSettings:
    """How each cell is drawn and scored."""

    seed: int = 0
    nsd_tolerance_mm: float = 1.0
    nsd_definition: str = "voxel"
    empty_policy: str = "segrob"
    #: How label maps meet the model's classes (ignore label, mapping); none: as stored.
    labels: LabelPlan | None = None
    #: Keep the 2D views of each case's worst cells, for the HTML gallery.
    examples: bool = False


@dataclass
class CaseResult:
    """A case's cell records, its example candidates and the seconds each stage took."""

    case: str
    records: list[CellRecord]
    examples: list[Example] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    #: Summed reliability counts of the cells scored here, per scope (``clean``, ``perturbed``).
    reliability: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class _Runtime:
    run: Callable[[torch.Tensor], np.ndarray]
    #: Where images are perturbed and batches made (the model's device, when torch sees it).
    torch_device: str
    #: Whether the model runs on a GPU, which leaves the CPU's cores to scoring.
    on_gpu: bool = False


_RUNTIMES: dict[tuple, _Runtime] = {}
_RUNTIMES_LOCK = threading.Lock()


def runtime_for(plan: ModelPlan) -> _Runtime:
    """The plan's model, opened once per process (an onnxruntime session costs seconds)."""
    if callable(plan.source):
        predict_array = plan.source
        # A copy: logits are scored later, on another thread, and a callable may reuse its buffer.
        return _Runtime(lambda batch: np.array(predict_array(batch.detach().cpu().numpy())), "cpu",
                        on_gpu=str(getattr(predict_array, "device", "cpu")).startswith("cuda"))
    cache_key = (plan.key, plan.device, plan.threads)
    with _RUNTIMES_LOCK:
        if cache_key not in _RUNTIMES:
            _RUNTIMES[cache_key] = _open_onnx(plan)
        return _RUNTIMES[cache_key]


def adopt_runtime(plan: ModelPlan, run: Callable[[torch.Tensor], np.ndarray], torch_device: str, *,
                  on_gpu: bool = False) -> None:
    """Reuse a session the driver has open for ``plan``, rather than open a second one here."""
    with _RUNTIMES_LOCK:
        _RUNTIMES[plan.key, plan.device, plan.threads] = _Runtime(run, torch_device, on_gpu)


def audit_session(path: str | Path, *, device: str, threads: int | None):
    """The onnxruntime session an audit infers with: its threads wait asleep, not spinning, as
    the helper threads share the cores with them."""
    from segrob.onnx.session import create_session

    return create_session(path, device=device, threads=threads, spin=False)


def _open_onnx(plan: ModelPlan) -> _Runtime:
    from segrob.audit.model_spec import _torch_device
    from segrob.onnx.session import run as run_session

    path = plan.source
    if isinstance(path, bytes):
        # onnxruntime reads external weights beside a file, so the bytes become a file first.
        folder = Path(tempfile.gettempdir()) / "segrob-models"
        folder.mkdir(exist_ok=True)
        path = folder / f"{hashlib.sha256(path).hexdigest()}.onnx"
        if not path.is_file():
            staging = path.with_name(f".{path.name}.{threading.get_ident()}")
            staging.write_bytes(plan.source)  # type: ignore[arg-type]
            staging.replace(path)
    session = audit_session(path, device=plan.device, threads=plan.threads)
    if plan.contract is None:
        return _Runtime(lambda batch: run_session(session, batch), _torch_device(session), session.on_cuda)
    from segrob.onnx.graph import guarded_run, select_output

    selected = select_output(session, plan.contract)
    return _Runtime(guarded_run(selected, plan.contract, lambda batch: run_session(selected, batch)),
                    _torch_device(session), session.on_cuda)


def audit_cases(
    work: Iterable[tuple[Case, list[Cell]]], plan: ModelPlan, settings: CellSettings
) -> Iterator[CaseResult]:
    """Audit each ``(case, cells)`` in turn, yielding each case's result in order.

    The main thread runs the model and little else; helper threads work while it does
    (onnxruntime releases the GIL). One perturbs the next batch while a batch runs through the
    model; the scoring thread (several when the model runs on a GPU, see :func:`scoring_threads`)
    scores each batch while the batches after it run. All wait while the main thread
    normalises and stitches (see :class:`_HelperGate`). The next case is read before the
    current one's last batch runs, so that its first batch is perturbed beside that inference; an
    error reading it is raised where a case-by-case loop would meet it, after the results due
    before it.
    """
    gate = _HelperGate()
    opened = runtime_for(plan)
    runtime = replace(opened, run=functools.partial(gate.while_open, opened.run))
    helpers = _Helpers(
        gate,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="segrob-perturb",
                           initializer=_perturbing_thread, initargs=(torch.get_num_threads(),)),
        ThreadPoolExecutor(max_workers=scoring_threads(opened.on_gpu),
                           thread_name_prefix="segrob-metrics", initializer=_yield_to_inference),
    )
    cases = iter(work)

    def pull() -> _CaseWork | Exception | None:
        try:
            case, cells = next(cases)
        except StopIteration:
            return None
        except Exception as error:  # raised in turn, after the results due before it
            return error
        return _CaseWork(case, cells, runtime.torch_device, plan, settings, helpers)

    previous: _CaseWork | None = None
    try:
        upcoming = pull()
        while upcoming is not None:
            if isinstance(upcoming, Exception):
                raise upcoming
            current = upcoming
            upcoming = current.infer(runtime, pull)
            if previous is not None:
                yield previous.result()
            previous = current
        if previous is not None:
            yield previous.result()
    finally:
        gate.open_for_good()
        for helper in (helpers.perturber, helpers.scorer):
            helper.shutdown(wait=True, cancel_futures=True)


def scoring_threads(on_gpu: bool) -> int:
    """One beside a model on the CPU, whose cores run it; beside a model on a GPU, up to
    :data:`GPU_SCORING_THREADS` of the cores the main and the perturbing thread leave. Batches
    scored side by side are booked in the order they ran (see :func:`_score_chunk`), so any
    count gives one thread's records."""
    from segrob.onnx.session import usable_cores

    if not on_gpu:
        return 1
    return max(1, min(GPU_SCORING_THREADS, usable_cores() - 2))


class _HelperGate:
    """When the helper threads may work: while the model runs, or while the main thread waits
    for them (for a batch's images, or a case's scores).

    The main thread's own work between inferences (normalising, stitching) is many short torch
    calls, each of which lets go of the GIL; a helper busy in Python then holds it, and getting
    it back costs the main thread up to the interpreter's switch interval (5 ms) every time. Kept
    to the model's run, when the main thread needs no GIL, the helpers' work costs the audit only
    the CPU it takes from inference.
    """

    def __init__(self) -> None:
        self._open = threading.Event()
        self._for_good = False

    def wait(self) -> None:
        """Helper thread: block until its work may go on."""
        self._open.wait()

    def while_open(self, call: Callable[..., Any], *args: Any) -> Any:
        """Main thread: ``call(*args)`` (inference, or waiting on a helper) with the gate open."""
        self._open.set()
        try:
            return call(*args)
        finally:
            if not self._for_good:
                self._open.clear()

    def open_for_good(self) -> None:
        """The audit is over (or failed): let the helpers finish, or cancel, without waiting."""
        self._for_good = True
        self._open.set()


@dataclass(frozen=True)
class _Helpers:
    """What every case of one audit shares: the gate, the perturbing thread and the scoring
    thread or threads."""

    gate: _HelperGate
    perturber: ThreadPoolExecutor
    scorer: ThreadPoolExecutor


def _perturbing_thread(torch_threads: int) -> None:
    """The perturbing thread runs torch on the main thread's number of threads, so that every
    perturbation gives the bits it would give there (the count is per thread once set, and a new
    thread starts from the count set last anywhere), and yields to inference."""
    torch.set_num_threads(torch_threads)
    _yield_to_inference()


def _yield_to_inference() -> None:
    """Lower a helper thread's priority: it then runs in the gaps onnxruntime's threads leave
    (between operators, while they sleep) instead of taking time slices from them. When the main
    thread waits on a helper, inference is idle and the helper gets the CPU."""
    # A sandbox may refuse; the helper then shares the cores as before.
    with contextlib.suppress(OSError, AttributeError):  # AttributeError: no setpriority (Windows)
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HELPER_NICENESS)


def audit_block(block: list[tuple[Case, list[Cell]]], plan: ModelPlan,
                settings: CellSettings) -> list[CaseResult]:
    """A block of cases at once: what one remote task runs."""
    return list(audit_cases(block, plan, settings))


@dataclass(frozen=True)
class _Variant:
    """One (perturbation, severity) version of a case, ready to infer and score."""

    perturbation: str
    severity: int
    seed: int
    params: dict
    image: torch.Tensor
    label: torch.Tensor | None


def add_reliability(total: dict[str, np.ndarray], more: dict[str, np.ndarray]) -> None:
    """Sum reliability counts per scope into ``total`` (in place)."""
    for scope, counts in more.items():
        total[scope] = total[scope] + counts if scope in total else counts.copy()


class _CaseWork:
    """One case on its way through the audit: its cells in model batches (a case's variants
    share a shape, so they batch together), each batch perturbed on the perturbing thread ahead
    of its inference (the first as soon as the case is read) and scored on the scoring thread
    after it; its result once every batch is scored."""

    def __init__(self, case: Case, cells: list[Cell], device: str, plan: ModelPlan,
                 settings: CellSettings, helpers: _Helpers):
        size = max(1, plan.inference.batch_size)
        self.case = case
        self.plan = plan
        self.settings = settings
        self.helpers = helpers
        self.batches = [cells[begin : begin + size] for begin in range(0, len(cells), size)]
        self.keeper = ExampleKeeper(len(cells)) if settings.examples else None
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self.perturbation = _Perturbation(case, device, settings.seed, self.seconds)
        self.perturbed: dict[int, Future] = {}
        self.jobs: list[Future] = []
        self.clean_scored: tuple[np.ndarray, np.ndarray, int, Any] | None = None
        self.reliability: dict[str, np.ndarray] = {}
        self.perturb_ahead(0)
        # The label's surfaces, built once on the scoring thread, serve every cell that keeps it.
        self.label_surfaces = helpers.scorer.submit(_label_surfaces, case, plan.classes, helpers.gate)

    def perturb_ahead(self, index: int) -> None:
        if PERTURB_AHEAD and index < len(self.batches):
            self.perturbed[index] = self.helpers.perturber.submit(
                self.perturbation.variants, self.batches[index], self.helpers.gate.wait)

    def variants(self, index: int) -> list[_Variant]:
        """Batch ``index``'s variants, waiting (gate open) for the perturbing thread if need be."""
        if index not in self.perturbed:  # perturbing ahead is off: here, on the main thread
            return self.perturbation.variants(self.batches[index])
        start = time.perf_counter()
        chunk = self.helpers.gate.while_open(self.perturbed.pop(index).result)
        self.seconds["scorer_wait"] += time.perf_counter() - start
        return chunk

    def infer(self, runtime: _Runtime,
              pull: Callable[[], _CaseWork | Exception | None]) -> _CaseWork | Exception | None:
        """Infer the case batch by batch, leaving each batch's scoring to the scoring thread;
        returns the next case (``pull``'s result), read before the last batch runs."""
        upcoming: _CaseWork | Exception | None = None
        for index in range(len(self.batches)):
            chunk = self.variants(index)
            self.perturb_ahead(index + 1)
            if index == len(self.batches) - 1:
                upcoming = pull()
            start = time.perf_counter()
            batch = torch.cat([v.image for v in chunk])
            logits = predict(batch, self.plan.inference, runtime.run, spacing=self.case.spacing)
            self.seconds["inference"] += time.perf_counter() - start
            before = self.jobs[-1] if self.jobs else None
            self.jobs.append(self.helpers.scorer.submit(_score_chunk, chunk, logits, self, before))
        return upcoming if self.batches else pull()

    def clean_twin(self, prediction: np.ndarray, truth: np.ndarray) -> Any:
        """The clean cell's metrics when this cell's prediction and label are the clean cell's,
        bit for bit (an intensity shift that the model's normalisation undoes, say: 28% of a
        shift audit's cells for a z-scored model), else None. Metrics are a pure function of the
        two, so the record is the one scoring would give; checking costs a count and a compare."""
        if self.clean_scored is None:  # not scored yet (several scoring threads): score this one
            return None
        clean_prediction, clean_truth, count, result = self.clean_scored
        if (prediction.shape == clean_prediction.shape and np.count_nonzero(prediction) == count
                and np.array_equal(prediction, clean_prediction) and np.array_equal(truth, clean_truth)):
            return result
        return None

    def add_reliability(self, perturbation: str, counts: np.ndarray | None) -> None:
        if counts is not None:
            add_reliability(self.reliability, {CLEAN if perturbation == CLEAN else "perturbed": counts})

    def result(self) -> CaseResult:
        start = time.perf_counter()
        records = self.helpers.gate.while_open(lambda: [r for job in self.jobs for r in job.result()])
        self.seconds["scorer_wait"] += time.perf_counter() - start
        examples = self.keeper.candidates() if self.keeper else []
        return CaseResult(self.case.name, records, examples, self.seconds, self.reliability)


class _Perturbation:
    """A case's variants, made batch by batch; the clean image's robust range is found once and
    shared by every perturbation of the case."""

    def __init__(self, case: Case, device: str, seed: int, seconds: dict):
        self.case = case
        self.device = device
        self.seed = seed
        self.seconds = seconds
        self.clean: tuple[torch.Tensor, torch.Tensor | None] | None = None
        self.stats = None

    def variants(self, cells: list[Cell], wait: Callable[[], None] = lambda: None) -> list[_Variant]:
        """The variants of ``cells``; ``wait()`` before each (a helper thread's gate)."""
        from segrob.perturb.registry import apply_perturbation
        from segrob.perturb.seeding import derive_seed
        from segrob.perturb.stats import image_stats

        case = self.case
        out: list[_Variant] = []
        for name, severity in cells:
            wait()
            start = time.perf_counter()
            if self.clean is None:
                label = _tensor(case.label)[None].to(self.device) if case.label is not None else None
                self.clean = _tensor(case.image)[None].to(self.device), label
            image, label = self.clean
            cell_seed = derive_seed(self.seed, case.name, name, severity)
            if name == CLEAN:
                out.append(_Variant(name, severity, cell_seed, {}, image, label))
            else:
                self.stats = image_stats(image) if self.stats is None else self.stats
                out_image, out_label, applied = apply_perturbation(
                    name, image, label, severity=severity, seed=cell_seed, spacing=case.spacing,
                    stats=self.stats,
                )
                out.append(_Variant(name, severity, cell_seed, applied.params, out_image, out_label))
            self.seconds["perturbation"] += time.perf_counter() - start
        return out


def _label_surfaces(case: Case, classes: tuple[int, ...], gate: _HelperGate) -> dict:
    """The clean label's surfaces, reused by every cell whose perturbation leaves the label as is."""
    from segrob.metrics.case import label_surfaces

    gate.wait()
    if case.label is None:
        return {}
    return label_surfaces(case.label, spacing=case.spacing, classes=classes)


def _tensor(array: np.ndarray) -> torch.Tensor:
    # Arrays that came through Ray's object store are read-only; torch wants to own writable ones.
    return torch.from_numpy(array if array.flags.writeable else array.copy())


def _score_chunk(chunk: list[_Variant], logits: np.ndarray, work: _CaseWork,
                 before: Future | None) -> list[CellRecord]:
    """One batch's records, scored beside other batches' jobs; then what it books (reliability
    sums, example candidates, seconds), once ``before`` (the case's previous batch's job) is
    done, whichever finished scoring first: sums then add in one order, and the clean image is
    offered before its perturbed ones. Jobs start in the order they were submitted, so ``before``
    has always started."""
    from segrob.metrics import case_metrics
    from segrob.metrics.calibration import batch_mean_entropy, batch_reliability_counts, ece_from

    case, plan, settings = work.case, work.plan, work.settings
    work.helpers.gate.wait()
    start, cpu_start = time.perf_counter(), time.thread_time()
    probabilities = plan.head.probabilities(logits)
    predicted = plan.head.labels(probabilities)
    pairs = _scored_pairs(case, chunk, predicted, settings)
    # Calibration for the whole chunk at once: the same numbers as image by image, less overhead.
    reliability = batch_reliability_counts(
        probabilities, np.stack([truth for _, truth in pairs]),
        most_probable=predicted if plan.head.labels_are_argmax else None)
    entropy = batch_mean_entropy(probabilities)
    labels = work.label_surfaces.result() if work.label_surfaces is not None else None
    records = []
    for index, (variant, (prediction, truth)) in enumerate(zip(chunk, pairs, strict=True)):
        work.helpers.gate.wait()
        result = work.clean_twin(prediction, truth)
        if result is None:
            result = case_metrics(
                prediction, truth, spacing=case.spacing, classes=list(plan.classes),
                nsd_tolerance_mm=settings.nsd_tolerance_mm, nsd_definition=settings.nsd_definition,
                empty_policy=settings.empty_policy, labels=labels,
            )
        if variant.perturbation == CLEAN:
            work.clean_scored = (prediction, truth, np.count_nonzero(prediction), result)
        records.append(_record(case, variant, result, truth, ece=ece_from(reliability[index]),
                               entropy=float(entropy[index])))
    waited = time.perf_counter()
    if before is not None:
        futures.wait([before])
    waited = time.perf_counter() - waited
    for index, (variant, record, (prediction, truth)) in enumerate(zip(chunk, records, pairs, strict=True)):
        work.add_reliability(variant.perturbation, reliability[index])
        if work.keeper is not None:
            work.keeper.offer(case, variant.perturbation, variant.severity,
                              variant.image[0].cpu().numpy(), truth, prediction, record.metrics.get("dice"))
    work.seconds["metrics"] += time.perf_counter() - start - waited
    work.seconds["metrics_cpu"] += time.thread_time() - cpu_start
    return records


def _scored_pairs(case: Case, chunk: list[_Variant], predictions: np.ndarray,
                  settings: CellSettings) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each variant's prediction and label, ignored voxels set to background in both."""
    pairs = []
    for index, variant in enumerate(chunk):
        if variant.label is None:
            where = case.source.get("image", case.name)
            raise SegrobError(f"{where}: case has no label to score against")
        prediction, truth = predictions[index], variant.label[0].cpu().numpy()
        if settings.labels is not None:
            prediction, truth = settings.labels.mask(prediction, truth)
        pairs.append((prediction, truth))
    return pairs


def _record(case: Case, variant: _Variant, result, truth: np.ndarray, *, ece: float,
            entropy: float) -> CellRecord:
    """One cell's record: ``result``'s metrics and the image's calibration (found for the chunk)."""
    as_dict = result.to_dict()
    mean = {**as_dict["mean"], "ece": ece, "entropy": entropy}
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
