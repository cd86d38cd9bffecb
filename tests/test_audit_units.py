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
def test_the_scoring_thread_yields_to_inference(monkeypatch):
    """Scoring runs at the lowest priority, in the gaps onnxruntime's threads leave, while the
    main thread (perturbing, calling onnxruntime) keeps its own."""
    import os
    import threading

    from segrob.audit import units

    seen = []
    score = units._score_chunk

    def recording(*args, **kwargs):
        seen.append((threading.get_native_id(), os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))
        return score(*args, **kwargs)

    monkeypatch.setattr(units, "_score_chunk", recording)
    own = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    run_audit(MODEL, tiny_data(), AuditOptions(suite="texture", device="cpu", batch_size=3))
    assert seen and all(thread != threading.get_native_id() for thread, _ in seen)
    assert {priority for _, priority in seen} == {units.SCORER_NICENESS}
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == own


def test_scoring_waits_while_the_main_thread_perturbs(monkeypatch):
    """The scorer works while the model runs or the main thread waits for scores, never while
    the main thread perturbs (where every torch call would wait on a scorer holding the GIL)."""
    import time

    import segrob.metrics
    import segrob.perturb.registry
    from segrob.audit.units import CellSettings, audit_cases

    phase = ["main"]
    seen = []
    perturb, score = segrob.perturb.registry.apply_perturbation, segrob.metrics.case_metrics

    def perturbing(*args, **kwargs):
        phase[0] = "perturbing"
        time.sleep(0.02)  # long enough for a scorer that ignores the main thread to start
        try:
            return perturb(*args, **kwargs)
        finally:
            phase[0] = "main"

    def scoring(*args, **kwargs):
        seen.append(phase[0])
        return score(*args, **kwargs)

    monkeypatch.setattr(segrob.perturb.registry, "apply_perturbation", perturbing)
    monkeypatch.setattr(segrob.metrics, "case_metrics", scoring)
    cells = [(CLEAN, 0), ("texture_speckle", 1), ("texture_speckle", 2)]
    cases = tiny_cases(4)
    results = list(audit_cases([(case, cells) for case in cases], tiny_plan(two_class_model), CellSettings()))
    assert [len(r.records) for r in results] == [3] * 4
    assert len(seen) == 12 and "perturbing" not in seen


def test_a_failure_while_perturbing_ends_the_audit_without_waiting_on_the_scorer(monkeypatch):
    """The first case's scores are still due when the second case fails: the error reaches the
    caller, and the scorer, waiting for its turn, is let go rather than waited on for ever."""
    import threading

    import segrob.perturb.registry
    from segrob.audit.units import CellSettings, audit_cases

    perturb, calls = segrob.perturb.registry.apply_perturbation, []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("disk full")
        return perturb(*args, **kwargs)

    monkeypatch.setattr(segrob.perturb.registry, "apply_perturbation", failing)
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


def test_a_model_that_reuses_its_output_buffer_scores_as_one_that_does_not():
    """Logits are scored on another thread after the next batch has run: they must not be the
    model's own buffer, which it may fill again (as engines with preallocated outputs do)."""
    from segrob.audit.units import CellSettings, audit_cases

    buffers: dict[tuple, np.ndarray] = {}

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
