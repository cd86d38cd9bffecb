"""The audit's units of work: records pinned to a saved audit, and independent of how cases are split."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import numpy as np
import pytest

from segrob.audit import AuditOptions
from segrob.audit import audit as run_audit
from segrob.audit.data_source import resolve_audit_data
from segrob.audit.records import CLEAN

DATA = Path(__file__).parent / "data"
MODEL = DATA / "tiny_unet.onnx"  # a 2-level U-Net exported once, so the pin does not depend on torch


def same_values(a, b, path="records") -> None:
    """Equal structure and values; floats equal to 1e-9 relative (what onnxruntime reproduces)."""
    if isinstance(a, float) or isinstance(b, float):
        assert a is not None and b is not None, path
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), f"{path}: {a} != {b}"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), path
        for key in a:
            same_values(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            same_values(x, y, f"{path}[{index}]")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def tiny_data(n: int = 2):
    return resolve_audit_data("synth:low", n=n, size=32, spatial_dims=2, seed=0)


def tiny_cases(n: int) -> list:
    return [case for _, case in tiny_data(n)]


def two_class_model(batch):
    """Background and foreground logits from the image itself: a model without a file."""
    return np.concatenate([-batch, batch], axis=1)


def spy(monkeypatch, owner, name: str, before=None, after=None) -> None:
    """``owner.name`` replaced by itself with ``before(*args)`` called first and ``after()`` last
    (``before`` may raise in its place)."""
    call = getattr(owner, name)

    def spied(*args, **kwargs):
        if before is not None:
            before(*args)
        out = call(*args, **kwargs)
        if after is not None:
            after()
        return out

    monkeypatch.setattr(owner, name, spied)


def test_a_fixed_tiny_audit_gives_the_saved_records():
    report = run_audit(MODEL, tiny_data(), AuditOptions(suite="texture", device="cpu", batch_size=3))
    saved = json.loads((DATA / "tiny_audit_records.json").read_text())
    assert len(saved) == 2 * 5 and saved[0]["perturbation"] == CLEAN
    same_values(report.records, saved)


def tiny_plan(source):
    from segrob.audit.inference import InferencePlan
    from segrob.audit.units import ModelPlan

    inference = InferencePlan(spatial_dims=2, in_channels=1, normalization={"method": "zscore"}, batch_size=3)
    return ModelPlan(source=source, key="tiny-" + type(source).__name__, inference=inference, classes=(1,),
                     device="cpu")


def test_any_split_of_the_cases_gives_the_same_records_and_examples():
    """Case by case from a pickled plan (model bytes, fresh session) or all at once: same cells."""
    from segrob.audit.examples import ExampleKeeper
    from segrob.audit.units import CellSettings, audit_block, audit_cases

    cells = [(CLEAN, 0), ("texture_speckle", 1), ("texture_speckle", 2)]
    cases = [case for _, case in tiny_data()]
    settings = CellSettings(seed=3, examples=True)
    whole = list(audit_cases([(case, cells) for case in cases], tiny_plan(str(MODEL)), settings))
    shipped = pickle.loads(pickle.dumps(tiny_plan(MODEL.read_bytes())))
    split = [result for case in cases for result in audit_block([(case, cells)], shipped, settings)]
    assert [r.case for r in whole] == [r.case for r in split] == [c.name for c in cases]
    same_values([r.to_dict() for w in whole for r in w.records],
                [r.to_dict() for s in split for r in s.records])
    assert all(len(w.records) == 3 for w in whole)
    assert all(set(w.seconds) == {"perturbation", "inference", "metrics", "metrics_cpu", "scorer_wait"}
               for w in whole)
    merged = ExampleKeeper(2)
    for result in split:
        merged.merge(result.examples)
    kept = merged.examples()
    assert len(kept) == 2 and {(e.perturbation, e.severity) for e in kept} == {("texture_speckle", 1),
                                                                             ("texture_speckle", 2)}
    assert all(e.arrays["image"].ndim == 2 for e in kept)


def test_a_block_of_an_unlabelled_case_names_the_case():
    from segrob.audit.units import CellSettings, audit_block
    from segrob.errors import SegrobError

    (_, case), *_ = tiny_data()
    case.label = None
    with pytest.raises(SegrobError, match="no label"):
        audit_block([(case, [(CLEAN, 0)])], tiny_plan(str(MODEL)), CellSettings())


@pytest.mark.skipif(not hasattr(__import__("os"), "setpriority"), reason="thread priorities are POSIX")
def test_the_helper_threads_yield_to_inference(monkeypatch):
    """Perturbing and scoring run off the main thread at the lowest priority, in the gaps
    onnxruntime's threads leave, while the main thread (calling onnxruntime) keeps its own."""
    import os
    import threading

    import segrob.perturb.registry
    from segrob.audit import units

    seen: dict[str, set] = {"perturb": set(), "score": set()}

    def recording(kind):
        def record(*_):
            thread = threading.get_native_id()
            seen[kind].add((thread, os.getpriority(os.PRIO_PROCESS, thread)))
        return record

    spy(monkeypatch, segrob.perturb.registry, "apply_perturbation", recording("perturb"))
    spy(monkeypatch, units, "_score_chunk", recording("score"))
    own = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    run_audit(MODEL, tiny_data(), AuditOptions(suite="texture", device="cpu", batch_size=3))
    for kind, calls in seen.items():
        assert calls and all(thread != threading.get_native_id() for thread, _ in calls), kind
        assert {priority for _, priority in calls} == {units.HELPER_NICENESS}, kind
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == own


def test_the_gate_is_open_only_while_the_main_thread_runs_a_call():
    import threading

    from segrob.audit.units import _HelperGate

    gate, passed = _HelperGate(), threading.Event()
    helper = threading.Thread(target=lambda: (gate.wait(), passed.set()), daemon=True)
    helper.start()
    assert not passed.wait(0.05)  # closed: the helper waits
    assert gate.while_open(lambda x: (passed.wait(5), x), 7) == (True, 7)  # open during the call
    assert not gate._open.is_set()  # closed again after it
    gate.open_for_good()
    assert gate.while_open(lambda: 1) == 1 and gate._open.is_set()  # and it stays open


def helper_events(monkeypatch, n_cases: int = 3) -> list[tuple]:
    """A small audit's events in order: each helper passing the gate, each helper's unit of work
    (one perturbation, one image scored), and whether the gate was open while the main thread
    normalised a batch."""
    import threading

    import segrob.audit.inference
    import segrob.metrics
    import segrob.perturb.registry
    from segrob.audit import units

    events: list[tuple] = []
    gates: list = []

    class Recorded(units._HelperGate):
        def __init__(self) -> None:
            super().__init__()
            gates.append(self)

        def wait(self) -> None:
            super().wait()
            events.append(("pass", threading.get_ident()))

    def unit(kind):
        return lambda *_: events.append(("unit", threading.get_ident(), kind))

    monkeypatch.setattr(units, "_HelperGate", Recorded)
    spy(monkeypatch, segrob.audit.inference, "normalize",
        lambda *_: events.append(("normalise", gates[-1]._open.is_set())))
    spy(monkeypatch, segrob.perturb.registry, "apply_perturbation", unit("perturb"))
    spy(monkeypatch, segrob.metrics, "case_metrics", unit("score"))
    cells = [(CLEAN, 0), ("texture_speckle", 1), ("texture_speckle", 2), ("gaussian_noise", 1)]
    results = list(units.audit_cases([(case, cells) for case in tiny_cases(n_cases)],
                                     tiny_plan(two_class_model), units.CellSettings()))
    assert [len(r.records) for r in results] == [len(cells)] * n_cases
    return events


def test_helpers_pass_the_gate_before_each_unit_and_find_it_shut_while_the_main_thread_works(monkeypatch):
    """Perturbing and scoring go on while the model runs or the main thread waits for them,
    not while the main thread normalises and stitches (where every torch call would wait on a
    helper holding the GIL): each unit of a helper's work starts through the gate, which the
    main thread keeps shut between its calls."""
    import threading

    events = helper_events(monkeypatch)
    units = [e for e in events if e[0] == "unit"]
    assert len(units) == 3 * 3 + 3 * 4 and {e[1] for e in units}.isdisjoint({threading.get_ident()})
    last: dict[int, str] = {}
    for event in events:
        if event[0] == "pass":
            last[event[1]] = "pass"
        elif event[0] == "unit":
            assert last.get(event[1]) == "pass", "a unit of work started without passing the gate"
            last[event[1]] = "unit"
    assert [e[1] for e in events if e[0] == "normalise"] == [False] * 6


def test_the_next_batch_is_perturbed_while_the_model_runs(monkeypatch):
    """Each batch's images are made while the batch before it runs, the next case's first batch
    while the current case's last one does: the model, inferring a batch, sees the next batch's
    perturbations done without returning first. Off, they are made between inferences."""
    import threading

    import segrob.perturb.registry
    from segrob.audit import units
    from segrob.audit.units import CellSettings, audit_cases

    done = []
    progress = threading.Condition()

    def perturbed():
        with progress:
            done.append(threading.get_ident())
            progress.notify_all()

    # Batches of 3 cells, case by case [clean, speckle 1, speckle 2], [noise 1]: perturbations
    # through each batch (the first holds 2, the second 1).
    cells = [(CLEAN, 0), ("texture_speckle", 1), ("texture_speckle", 2), ("gaussian_noise", 1)]
    through = [2, 3, 5, 6, 8, 9]

    def run(timeout: float) -> list[bool]:
        seen = []

        def model(batch):
            batches = len(seen)
            if batches + 1 < len(through):  # waits until the next batch is perturbed, or gives up
                with progress:
                    seen.append(progress.wait_for(lambda: len(done) >= through[batches + 1], timeout))
            else:
                seen.append(True)
            return two_class_model(batch)

        done.clear()
        list(audit_cases([(case, cells) for case in tiny_cases(3)], tiny_plan(model), CellSettings()))
        return seen

    spy(monkeypatch, segrob.perturb.registry, "apply_perturbation", after=perturbed)
    assert run(timeout=10) == [True] * 6
    assert threading.get_ident() not in done
    monkeypatch.setattr(units, "PERTURB_AHEAD", False)
    assert run(timeout=0.05) == [False] * 5 + [True]
    assert set(done) == {threading.get_ident()}


def test_a_case_that_cannot_be_read_fails_after_the_results_due_before_it():
    """The next case is read ahead of time, but its error comes where a case-by-case audit would
    meet it: after the first case's results, with the second still being scored."""
    from segrob.audit.units import CellSettings, audit_cases
    from segrob.errors import SegrobError

    cells = [(CLEAN, 0), ("texture_speckle", 1)]

    def work():
        for case in tiny_cases(2):
            yield case, cells
        raise SegrobError("case_0002.nii.gz: not a NIfTI file")

    results = audit_cases(work(), tiny_plan(two_class_model), CellSettings())
    assert next(results).case == tiny_cases(1)[0].name
    with pytest.raises(SegrobError, match="case_0002"):
        next(results)


def test_images_are_perturbed_on_the_main_threads_torch_thread_count(monkeypatch):
    """The perturbing thread takes the main thread's torch thread count, not the count set last
    on another thread (which a new thread would start from), so its bits are the main thread's."""
    import threading

    import torch

    import segrob.perturb.registry
    from segrob.audit.units import CellSettings, audit_cases

    counts = []

    def set_elsewhere(n: int) -> None:
        setter = threading.Thread(target=torch.set_num_threads, args=(n,))
        setter.start()
        setter.join()

    spy(monkeypatch, segrob.perturb.registry, "apply_perturbation",
        lambda *_: counts.append(torch.get_num_threads()))
    own = torch.get_num_threads()
    set_elsewhere(own + 1)
    try:
        cells = [(CLEAN, 0), ("texture_speckle", 1)]
        list(audit_cases([(case, cells) for case in tiny_cases(2)], tiny_plan(two_class_model),
                         CellSettings()))
    finally:
        set_elsewhere(own)
    assert torch.get_num_threads() == own and counts == [own, own]


def test_a_failure_while_perturbing_ends_the_audit_without_waiting_on_the_scorer(monkeypatch):
    """The first case's scores are still due when the second case fails: the error reaches the
    caller, and the scorer, waiting for its turn, is let go rather than waited on for ever."""
    import threading

    import segrob.perturb.registry
    from segrob.audit.units import CellSettings, audit_cases

    calls = []

    def failing(*_):
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("disk full")

    spy(monkeypatch, segrob.perturb.registry, "apply_perturbation", failing)
    cells = [(CLEAN, 0), ("texture_speckle", 1)]
    cases = tiny_cases(2)
    raised = []

    def audit_all():
        try:
            list(audit_cases([(case, cells) for case in cases], tiny_plan(str(MODEL)), CellSettings()))
        except RuntimeError as error:
            raised.append(str(error))

    worker = threading.Thread(target=audit_all, daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive() and raised == ["disk full"]


def test_a_model_that_reuses_its_output_buffer_scores_as_one_that_does_not(monkeypatch):
    """Logits are scored on another thread after the next batch has run: they must not be the
    model's own buffer, which it may fill again (as engines with preallocated outputs do). Whether
    a shared buffer is overwritten before it is scored depends on timing, so the scorer's logits
    are also checked not to share the buffer's memory."""
    from segrob.audit import units
    from segrob.audit.units import CellSettings, audit_cases

    buffers: dict[tuple, np.ndarray] = {}
    shared = []
    spy(monkeypatch, units, "_score_chunk", lambda chunk, logits, *_: shared.append(
        any(np.shares_memory(logits, buffer) for buffer in buffers.values())))

    def reusing(batch):
        shape = (batch.shape[0], 2, *batch.shape[2:])
        out = buffers.setdefault(shape, np.empty(shape, dtype=np.float32))
        out[:] = two_class_model(batch)
        return out

    cells = [(CLEAN, 0), ("texture_speckle", 1), ("texture_speckle", 2)]
    cases = tiny_cases(3)
    records = [[r.to_dict() for result in audit_cases([(c, cells) for c in cases], tiny_plan(model),
                                                       CellSettings()) for r in result.records]
               for model in (two_class_model, reusing)]
    same_values(records[1], records[0])
    assert len(shared) == 6 and not any(shared)


def test_scoring_threads_follow_where_the_model_runs(monkeypatch):
    """One scoring thread beside a model on the CPU, whose cores run it; beside a GPU model, the
    cores that the main and the perturbing thread leave, up to GPU_SCORING_THREADS."""
    import segrob.onnx.session as sessions
    from segrob.audit.units import GPU_SCORING_THREADS, scoring_threads

    for cores, on_gpu in ((2, 1), (3, 1), (5, 3), (64, GPU_SCORING_THREADS)):
        monkeypatch.setattr(sessions, "usable_cores", lambda cores=cores: cores)
        assert (scoring_threads(False), scoring_threads(True)) == (1, on_gpu)


def test_a_model_on_a_gpu_is_known_as_one():
    """What decides the scoring threads: onnxruntime's provider, or a torch module's device."""
    import torch

    from segrob.api import _TorchPredict
    from segrob.audit.units import runtime_for

    module = torch.nn.Identity()
    assert runtime_for(tiny_plan(_TorchPredict(module, "cuda"))).on_gpu
    assert not runtime_for(tiny_plan(_TorchPredict(module, "cpu"))).on_gpu
    assert not runtime_for(tiny_plan(two_class_model)).on_gpu
    assert not runtime_for(tiny_plan(str(MODEL))).on_gpu


def test_batches_scored_side_by_side_are_booked_in_the_order_they_ran(monkeypatch):
    """With several scoring threads a later batch can finish scoring first (here each case's
    clean batch is made slow); it books its reliability counts and example candidates after the
    batches before it, so records, sums and examples are one thread's."""
    import time

    from segrob.audit import units
    from segrob.audit.units import CellSettings, audit_cases

    cells = [(CLEAN, 0), ("texture_speckle", 1), ("texture_speckle", 2),
             ("gaussian_noise", 1), ("gaussian_noise", 2), ("gaussian_noise", 3)]  # two batches per case
    cases = tiny_cases(3)
    settings = CellSettings(seed=1, examples=True)

    def audited():
        results = list(audit_cases([(c, cells) for c in cases], tiny_plan(two_class_model), settings))
        return ([r.to_dict() for result in results for r in result.records],
                [{scope: sums.tobytes() for scope, sums in result.reliability.items()} for result in results],
                [(e.case, e.perturbation, e.severity, e.dice, {k: a.tobytes() for k, a in e.arrays.items()})
                 for result in results for e in result.examples])

    one_thread = audited()
    events: list = []
    monkeypatch.setattr(units, "scoring_threads", lambda on_gpu: 3)
    spy(monkeypatch, units, "_record",
        lambda case, variant, *_: variant.perturbation == CLEAN and time.sleep(0.2),
        lambda: events.append("scored"))
    spy(monkeypatch, units._CaseWork, "add_reliability",
        lambda work, perturbation, _: events.append(("booked", work.case.name, perturbation)))
    three_threads = audited()
    same_values(three_threads[0], one_thread[0])
    assert three_threads[1:] == one_thread[1:]
    assert {(c, p) for c, p, *_ in one_thread[2]} >= {(cases[0].name, "gaussian_noise")}
    # Not vacuous: more cells were scored before the first case's clean cell was booked than its
    # own first batch holds, so a later batch finished scoring first (one thread gives 3).
    first_booked = events.index(("booked", cases[0].name, CLEAN))
    assert events[:first_booked].count("scored") > 3


def test_a_cell_predicted_as_its_clean_image_takes_the_clean_cells_metrics(monkeypatch):
    """Brightness and contrast shifts that z-score normalisation undoes leave the prediction as
    the clean image's, bit for bit: those cells take the clean cell's metrics instead of being
    scored again, and the records are the ones scoring each cell gives."""
    import segrob.metrics
    from segrob.audit import units
    from segrob.audit.units import CellSettings, audit_cases

    cells = [(CLEAN, 0), ("brightness", 1), ("brightness", 3), ("contrast", 1), ("contrast", 3),
             ("gaussian_noise", 3)]
    cases = tiny_cases(3)
    scored: list = []
    spy(monkeypatch, segrob.metrics, "case_metrics", lambda *_: scored.append(1))

    def audited() -> list:
        results = audit_cases([(c, cells) for c in cases], tiny_plan(str(MODEL)), CellSettings())
        return [r.to_dict() for result in results for r in result.records]

    reused = audited()
    assert len(scored) == 2 * len(cases)  # the clean cell and the noise cell of each case
    scored.clear()
    monkeypatch.setattr(units._CaseWork, "clean_twin", lambda self, prediction, truth: None)
    assert audited() == reused and len(scored) == len(cells) * len(cases)


def test_only_the_very_same_prediction_and_label_take_the_clean_cells_metrics():
    from types import SimpleNamespace

    from segrob.audit.units import _CaseWork

    prediction, truth = np.zeros((4, 4), np.int64), np.zeros((4, 4), np.int64)
    prediction[1, 1] = truth[1, 1] = 1
    work = SimpleNamespace(clean_scored=(prediction, truth, 1, "clean metrics"))
    moved = np.roll(prediction, 1)  # as many foreground pixels, elsewhere
    assert _CaseWork.clean_twin(work, prediction.copy(), truth.copy()) == "clean metrics"
    assert _CaseWork.clean_twin(work, moved, truth) is None
    assert _CaseWork.clean_twin(work, prediction, np.roll(truth, 1)) is None
    assert _CaseWork.clean_twin(work, prediction[:3], truth[:3]) is None
    assert _CaseWork.clean_twin(SimpleNamespace(clean_scored=None), prediction, truth) is None
