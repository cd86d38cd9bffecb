"""The audit's parts on their own: inference plans, gates, resumable records, aggregation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segrob.audit.aggregate import summarise
from segrob.audit.gates import evaluate_gates, parse_bounds
from segrob.audit.inference import InferencePlan, OutputHead, predict
from segrob.audit.records import CLEAN, CellRecord, PartialStore
from segrob.audit.summary import AuditSummary
from segrob.errors import SegrobError, UsageError
from segrob.metrics.table import metric_names
from segrob.tiling import window_starts


def _identity_logits(batch: np.ndarray) -> np.ndarray:
    return np.concatenate([-batch, batch], axis=1)


@pytest.mark.parametrize(
    ("window", "fixed"), [(None, False), ((16, 16), True), ((64, 64), True), ((24, 40), False)]
)
def test_predict_reassembles_the_image_whatever_the_tiling(window, fixed):
    images = torch.rand(3, 1, 37, 50)
    plan = InferencePlan(2, 1, {"method": "none"}, window=window, fixed_size=fixed, batch_size=4)
    seen_shapes = set()

    def run(batch):
        seen_shapes.add(batch.shape[2:])
        return _identity_logits(batch)

    logits = predict(images, plan, run)
    assert logits.shape == (3, 2, 37, 50)
    np.testing.assert_allclose(logits[:, 1], images[:, 0].numpy(), atol=1e-5)
    if fixed:
        assert seen_shapes == {window}
    if window is None:
        assert seen_shapes == {(48, 64)}  # padded up to multiples of 16


def test_predict_applies_the_models_normalisation():
    images = torch.rand(2, 1, 16, 16) * 500 + 100
    logits = predict(images, InferencePlan(2, 1, {"method": "zscore"}), _identity_logits)
    assert abs(float(logits[:, 1].mean())) < 1e-4
    assert float(logits[:, 1].std()) == pytest.approx(1.0, rel=1e-3)


@pytest.mark.parametrize("head", [OutputHead("softmax"), OutputHead("sigmoid"), OutputHead("none"),
                                  OutputHead("sigmoid", binary=True, threshold=0.3)])
def test_a_head_says_whether_its_labels_are_the_most_probable_classes(head):
    """The audit counts calibration against the head's labels where they are the argmax (saving
    a second search), and against the argmax where a binary head's threshold makes them differ."""
    from segrob.metrics.calibration import class_argmax

    rng = np.random.default_rng(0)
    output = rng.normal(size=(2, 1 if head.binary else 3, 8, 8)).astype(np.float32)
    probabilities = head.probabilities(output)
    same = np.array_equal(head.labels(probabilities), class_argmax(probabilities, axis=1))
    assert head.labels_are_argmax == same


def test_window_starts_cover_the_axis():
    assert window_starts(10, 16, 0.5) == [0]
    assert window_starts(64, 32, 0.5) == [0, 16, 32]
    assert window_starts(70, 32, 0.5) == [0, 16, 32, 38]


def test_parse_bounds():
    bounds = parse_bounds("dice=0.8, rr=0.9")
    assert [(b.key, b.minimum) for b in bounds] == [("dice", 0.8), ("rr", 0.9)]
    for bad in ("dice", "dice=high", "speed=3", "dice=0.8,,"):
        with pytest.raises(UsageError):
            parse_bounds(bad)


def _record(case, name, severity, dice, ratio=0.1):
    return CellRecord(
        case=case, perturbation=name, severity=severity, seed=1, params={},
        metrics={"dice": dice, "iou": dice, "hd95": 1.0 - dice, "assd": 0.5, "nsd": dice,
                 "sensitivity": dice, "precision": dice, "ece": 0.1, "entropy": 0.2},
        per_class={"1": {"dice": dice}}, empty={"1": "none"}, foreground_ratio=ratio,
    )


def _records():
    records = []
    for i, case in enumerate(["a", "b", "c", "d"]):
        records.append(_record(case, CLEAN, 0, 0.9, ratio=0.05 + 0.1 * i))
        for severity in range(1, 6):
            records.append(_record(case, "noise", severity, 0.9 - 0.1 * severity - 0.01 * i))
            records.append(_record(case, "gamma", severity, 0.9))
    return records


def test_summary_figures_follow_their_formulas():
    summary = summarise(_records(), failure_dice=0.45, fbr_range={"min": 0.0, "max": 0.2})
    assert summary.n_cases == 4
    assert summary.clean.mean("dice") == pytest.approx(0.9)
    noise = {c.severity: c for c in summary.cells if c.perturbation == "noise"}
    means = np.array([noise[s].mean("dice") for s in range(1, 6)])
    np.testing.assert_allclose(means, [0.9 - 0.1 * s - 0.015 for s in range(1, 6)])
    assert noise[3].significant_drop and noise[3].deltas["dice"].mean == pytest.approx(-0.315)
    per = {p.perturbation: p for p in summary.perturbations}
    assert per["noise"].relative_robustness == pytest.approx(means.mean() / 0.9)
    weights = (2 / 3) ** np.arange(1, 6)
    expected_wd = (weights * (means - 0.9)).sum() / weights.sum()
    assert per["noise"].weighted_degradation == pytest.approx(expected_wd)
    assert per["noise"].worst_severity == 5
    # only severity 5 (Dice .40 to .37) falls under 0.45: 4 of 20 cases
    assert per["noise"].failure_rate == pytest.approx(4 / 20)
    assert per["gamma"].relative_robustness == pytest.approx(1.0)
    assert not any(c.significant_drop for c in summary.cells if c.perturbation == "gamma")
    assert summary.suite.relative_robustness == pytest.approx(
        (per["noise"].relative_robustness + 1.0) / 2
    )
    assert summary.fbr.inside.n_cases == 2 and summary.fbr.outside.n_cases == 2


def test_summary_json_form_round_trips_and_follows_the_metric_table():
    summary = summarise(_records(), fbr_range={"min": 0.0, "max": 0.2})
    data = summary.to_dict()
    assert AuditSummary.from_dict(data) == summary
    assert list(data["clean"]) == [*metric_names(), "failure_rate"]
    cell = data["cells"][0]
    assert [k for k in cell if k.removeprefix("delta_") in metric_names()] == [
        key for name in metric_names() for key in (name, f"delta_{name}")
    ]
    noise = next(c for c in data["cells"] if (c["perturbation"], c["severity"]) == ("noise", 1))
    assert noise["delta_hd95"]["mean"] == pytest.approx(0.115)  # HD95 is 1 - Dice in these records


def test_gates_name_the_failing_rows():
    summary = summarise(_records())
    failures = evaluate_gates(summary, parse_bounds("dice=0.6,rr=0.9"))
    rows = {(f.key, f.row) for f in failures}
    assert ("dice", "noise s3") in rows and ("dice", "noise s5") in rows
    assert ("dice", "noise s2") not in rows and ("dice", "clean") not in rows
    assert ("rr", "noise") in rows and ("rr", "gamma") not in rows
    assert evaluate_gates(summary, parse_bounds("clean_dice=0.85")) == []


def test_every_gateable_metric_of_the_table_is_a_gate_key():
    summary = summarise(_records())
    for name in metric_names(gateable=True):
        failures = evaluate_gates(summary, parse_bounds(f"{name}=0.6"))
        assert {f.row for f in failures} == {"noise s3", "noise s4", "noise s5"}
    for name in metric_names(gateable=False):
        with pytest.raises(UsageError):
            parse_bounds(f"{name}=0.6")


def test_partial_store_resumes_and_refuses_another_audit(tmp_path):
    path = tmp_path / "audit.json.partial.jsonl"
    store = PartialStore(path, {"model": "abc", "seed": 0})
    assert store.open(resume=True) == {}
    first, second = _records()[:2]
    store.append(first)
    store.append(second)
    store.close(remove=False)
    with open(path, "a") as handle:
        handle.write('{"case": "torn')  # an interrupted write
    again = PartialStore(path, {"model": "abc", "seed": 0})
    done = again.open(resume=True)
    assert set(done) == {first.key, second.key}
    again.close(remove=True)
    assert not path.exists()
    PartialStore(path, {"model": "abc", "seed": 0}).open(resume=False)
    with pytest.raises(SegrobError, match="differs in seed"):
        PartialStore(path, {"model": "abc", "seed": 1}).open(resume=True)


def test_a_records_dict_is_asdicts_and_its_own():
    """The same dict as ``dataclasses.asdict`` (containers at every depth, tuples kept), and a
    copy: changing it leaves the record as it was."""
    from collections import namedtuple
    from dataclasses import asdict

    sigma = namedtuple("Sigma", "low high")
    record = CellRecord(case="c", perturbation="affine", severity=2, seed=7,
                        params={"angles": (1.5, -2.0), "box": [[0, 1], [2, 3]], "nested": {"k": [4.0]},
                                "sigma": sigma(0.5, 2.0)},
                        metrics={"dice": 0.5, "hd95": None}, per_class={"1": {"dice": 0.5}},
                        empty={"1": "none"}, foreground_ratio=0.25)
    as_dict = record.to_dict()
    assert as_dict == asdict(record) and type(as_dict["params"]["angles"]) is tuple
    as_dict["params"]["box"][0].append(9)
    as_dict["params"]["nested"]["k"].clear()
    as_dict["per_class"]["1"]["dice"] = 0.0
    assert record.params["box"][0] == [0, 1] and record.params["nested"]["k"] == [4.0]
    assert record.per_class["1"]["dice"] == 0.5
