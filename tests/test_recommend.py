"""``segrob recommend``: the evidence file, scores derived from it, the user's audits, the CLI."""

from __future__ import annotations

import copy
import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from segrob_cli.main import app
from typer.testing import CliRunner

from segrob.errors import SegrobError
from segrob.evidence import load_evidence, parse_evidence
from segrob.recommend import complexity_of, rank_architectures, recommend
from segrob.report import AuditReport, load_report, save_report

METRICS = ("dice", "iou", "hd95", "assd", "nsd", "sensitivity", "precision", "ece", "entropy")


def raw_evidence() -> dict:
    text = resources.files("segrob").joinpath("evidence.json").read_text(encoding="utf-8")
    return json.loads(text)


def make_report(
    path: Path, *, arch: str | None, clean: float, rr: float, suite: str = "shift",
    fingerprint: str = "fp-1", dims: int = 2,
) -> Path:
    """A minimal schema-valid audit report with the summary figures recommend reads."""
    stat = {"mean": None, "ci_low": None, "ci_high": None}
    model = {"path": f"{path.stem}.onnx", "sha256": "0" * 64, "metadata": {}, "spatial_dims": dims}
    if arch:
        model.update(arch=arch, metadata={"arch": arch})
    data = {
        "schema_version": "1.0", "kind": "segrob-audit", "created": "", "model": model,
        "data": {"source": "data/x", "n_cases": 2, "cases": ["a", "b"], "fingerprint": fingerprint},
        "suite": {"name": suite, "entries": [{"perturbation": "gamma", "severities": [1, 3]}]},
        "settings": {"seed": 0, "device": "cpu", "providers": ["CPUExecutionProvider"]},
        "versions": {"segrob": "0"}, "timings": {"inference": 0.1},
        "summary": {
            "n_cases": 2,
            "clean": {m: dict(stat, mean=clean) if m == "dice" else dict(stat) for m in METRICS},
            "cells": [], "perturbations": [],
            "suite": {"relative_robustness": rr, "weighted_degradation": clean * (rr - 1),
                      "failure_rate": 0.0, "mean_dice": clean * rr},
        },
        "gates": None, "skipped_cases": [], "records": [],
    }
    save_report(AuditReport.from_dict(data), path)
    return path


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


# --- the evidence file -----------------------------------------------------------------------


def test_evidence_holds_every_published_number_of_design_section_10():
    ev = load_evidence()
    clinical = {(f.fields["dataset"], f.arch): tuple(f.value(k) for k in ("easier", "in_domain",
                                                                        "harder"))
                for f in ev.select("clinical")}
    assert clinical == {
        ("BUSI", "unet"): (0.736, 0.763, 0.723), ("BUSI", "noskip"): (0.749, 0.761, 0.735),
        ("BUSI", "attention"): (0.799, 0.795, 0.646),
        ("heart MRI", "unet"): (0.805, 0.901, 0.492), ("heart MRI", "noskip"): (0.823, 0.833, 0.814),
        ("heart MRI", "attention"): (0.890, 0.929, 0.142),
        ("spleen CT", "unet"): (0.107, 0.746, 0.078), ("spleen CT", "noskip"): (0.271, 0.606, 0.562),
        ("spleen CT", "attention"): (0.299, 0.928, 0.308),
    }
    high = {f.arch: f.value("dice") for f in ev.select("synthetic", complexity="high")}
    assert high == {"attention": 0.727, "noskip": 0.540, "unet": 0.510}
    for level in ("low", "medium"):
        ranges = {f.value("dice") for f in ev.select("synthetic", complexity=level)}
        spreads = {f.value("spread") for f in ev.select("synthetic", complexity=level)}
        assert ranges == {(0.96, 0.99)} and spreads == {(0.01, 0.03)}
    context = {f.arch: f.value("dice") for f in ev.select("context_3d")}
    assert context == {"unet": (0.72, 0.93), "unetr": (0.48, 0.92), "attention": (0.09, 0.64)}
    fbr = {f.arch: f.value("out_of_range") for f in ev.select("fbr_3d")}
    assert fbr == {"unet": 0.976, "attention": 0.714, "unetr": 0.718}
    (texture,) = ev.select("texture_categories")
    assert texture.arch == "noskip"
    assert texture.fields["best_by_dice"] == [5, 8] and texture.fields["best_by_hausdorff"] == [7, 8]
    assert {"kamath2023", "kamath2025", "kamath2022"} == set(ev.sources)
    assert "109364" in ev.sources["kamath2025"].citation


def test_evidence_architectures_are_the_registry_names():
    from segrob.models.registry import MODELS

    assert set(load_evidence().architectures) == set(MODELS)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["clinical"][0].update(source="nobody2020"), "unknown source"),
        (lambda d: d["clinical"][0].update(arch="segformer"), "unknown architecture"),
        (lambda d: d["clinical"][0].update(harder=1.7), "Dice must lie in [0, 1]"),
        (lambda d: d["synthetic"][0].update(dice=[0.99, 0.96]), "a range is [low, high]"),
        (lambda d: d.update(kind="other"), "not a segrob evidence file"),
        (lambda d: d.pop("fbr_3d"), "malformed evidence file"),
    ],
)
def test_a_defective_evidence_file_is_one_clear_error(edit, message):
    data = raw_evidence()
    edit(data)
    with pytest.raises(SegrobError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_evidence(data)


def test_scores_follow_the_data_file_not_constants():
    data = raw_evidence()
    ranking = rank_architectures(parse_evidence(data), level="high", dims=2, priority="robustness",
                                 archs=["unet", "noskip", "attention"])
    assert ranking[0].arch == "noskip"
    changed = copy.deepcopy(data)
    for finding in changed["clinical"]:
        if finding["arch"] == "noskip":
            finding["harder"] = 0.05
    ranking = rank_architectures(parse_evidence(changed), level="high", dims=2,
                                 priority="robustness", archs=["unet", "noskip", "attention"])
    assert ranking[0].arch == "unet" and ranking[-1].arch == "noskip"


# --- published ranking ---------------------------------------------------------------------


def test_retention_is_harder_over_in_domain_averaged_over_clinical_datasets():
    rec = recommend(complexity="high")
    noskip = next(r for r in rec.ranking if r.arch == "noskip")
    expected = np.mean([0.735 / 0.761, 0.814 / 0.833, 0.562 / 0.606])
    assert noskip.expectation.retention == pytest.approx(expected)
    assert noskip.expectation.in_domain == pytest.approx(0.540)
    assert noskip.score == pytest.approx(0.3 * 0.540 + 0.7 * expected)
    assert "BUSI" in noskip.expectation.evidence_line() and "Kamath et al. 2023" in noskip.why + \
        noskip.expectation.evidence_line()


def test_high_complexity_priority_decides_between_noskip_and_attention():
    robust = recommend(complexity="high")
    accurate = recommend(complexity="high", priority="accuracy")
    assert [r.arch for r in robust.ranking[:3]] == ["noskip", "unet", "attention"]
    assert accurate.ranking[0].arch == "attention"
    assert robust.verdict.startswith("noskip") and "attention" in robust.verdict
    assert accurate.verdict.startswith("attention") and "noskip" in accurate.verdict


def test_low_complexity_in_domain_ties_so_robustness_decides():
    rec = recommend(complexity="low", priority="accuracy")
    direct = [r for r in rec.ranking if r.expectation.coverage == "direct"]
    assert {r.expectation.in_domain_shown for r in direct} == {".96-.99"}
    assert direct[0].arch == "noskip"
    assert all("on par" in r.why for r in direct)


def test_gated_and_unetr_are_ranked_honestly_in_2d():
    rec = recommend(complexity="medium")
    by_arch = {r.arch: r for r in rec.ranking}
    assert [r.arch for r in rec.ranking][-2:] == ["unetr", "gated"]
    assert by_arch["gated"].score is None and by_arch["gated"].expectation.findings == ()
    assert "no published evidence" in by_arch["gated"].why and "study skip" in by_arch["gated"].why
    assert by_arch["unetr"].expectation.coverage == "other-dims"
    assert by_arch["unetr"].expectation.dims == 3


def test_a_verdict_without_evidence_says_so():
    rec = recommend(complexity="low", archs=["gated", "unetr"])
    assert [r.arch for r in rec.ranking] == ["unetr", "gated"]
    assert rec.verdict.startswith("unetr") and "no published 2D evidence" in rec.verdict
    rec = recommend(complexity="low", archs=["gated"])
    assert "no published evidence" in rec.verdict and "segrob study skip" in rec.verdict


def test_dims_3_brings_in_context_and_foreground_ratio_findings():
    rec = recommend(complexity="low", dims=3, priority="accuracy")
    assert [r.arch for r in rec.ranking[:3]] == ["unet", "unetr", "attention"]
    by_arch = {r.arch: r for r in rec.ranking}
    assert by_arch["noskip"].expectation.coverage == "other-dims"
    assert by_arch["unet"].expectation.retention == pytest.approx(0.976 / 0.98)
    notes = " ".join(rec.notes)
    assert "larger patches" in notes and "0.72 -> 0.93" in notes
    assert "prefer unet" in notes and ".714" in notes and ".718" in notes


def test_bad_inputs_raise_one_clear_error():
    cases = [
        (dict(complexity="extreme"), "unknown complexity level 'extreme'"),
        (dict(complexity="low", priority="speed"), "unknown priority"),
        (dict(complexity="low", archs=["resnet"]), "unknown architecture 'resnet'"),
        (dict(complexity="low", dims=4), "--dims must be 2 or 3"),
        (dict(reports=[]), "no audit reports given"),
        (dict(), "nothing to advise on"),
    ]
    for kwargs, message in cases:
        with pytest.raises(SegrobError, match=message):
            recommend(**kwargs)


# --- the user's audits ---------------------------------------------------------------------


def test_user_reports_are_ranked_by_measured_numbers_and_outweigh_evidence(tmp_path):
    paths = [
        make_report(tmp_path / "unet.json", arch="unet", clean=0.90, rr=0.95),
        make_report(tmp_path / "noskip.json", arch="noskip", clean=0.60, rr=0.70),
        make_report(tmp_path / "plain.json", arch=None, clean=0.50, rr=0.50),
    ]
    reports = [load_report(p) for p in paths]
    rec = recommend(complexity="high", reports=reports, report_paths=[str(p) for p in paths])
    assert [m.arch for m in rec.models] == ["unet", "noskip", None]
    assert rec.models[0].score == pytest.approx(0.3 * 0.90 + 0.7 * 0.95)
    assert rec.ranking[0].arch == "noskip"  # the published ranking is still shown
    assert "deploy unet" in rec.verdict and "outweigh" in rec.verdict and "noskip" in rec.verdict
    assert rec.models[0].expected.in_domain == pytest.approx(0.510)
    assert rec.models[2].expected is None
    data = rec.to_dict()
    assert data["basis"].startswith("your audit reports") and data["suite"] == "shift"
    assert data["models"][1]["expected"]["retention"] == pytest.approx(rec.models[1].expected.retention)


def test_priority_reorders_measured_models(tmp_path):
    paths = [
        make_report(tmp_path / "a.json", arch="attention", clean=0.95, rr=0.60),
        make_report(tmp_path / "n.json", arch="noskip", clean=0.70, rr=0.95),
    ]
    reports = [load_report(p) for p in paths]
    robust = recommend(reports=reports, report_paths=[str(p) for p in paths])
    accurate = recommend(reports=reports, report_paths=[str(p) for p in paths], priority="accuracy")
    assert robust.models[0].arch == "noskip" and accurate.models[0].arch == "attention"
    assert robust.complexity is None and any("no complexity level" in n for n in robust.notes)


def test_reports_of_different_suites_or_data_are_refused(tmp_path):
    a = make_report(tmp_path / "a.json", arch="unet", clean=0.9, rr=0.9)
    b = make_report(tmp_path / "b.json", arch="noskip", clean=0.9, rr=0.9, suite="noise")
    c = make_report(tmp_path / "c.json", arch="noskip", clean=0.9, rr=0.9, fingerprint="fp-2")
    for other, message in ((b, "suite"), (c, "different data")):
        with pytest.raises(SegrobError, match=message):
            recommend(reports=[load_report(a), load_report(other)], report_paths=[str(a), str(other)])


def test_report_dims_select_the_evidence(tmp_path):
    path = make_report(tmp_path / "v.json", arch="unetr", clean=0.8, rr=0.9, dims=3)
    rec = recommend(reports=[load_report(path)], report_paths=[str(path)])
    assert rec.dims == 3 and rec.models[0].expected.coverage == "direct"


# --- measured data -------------------------------------------------------------------------


def _dataset(root: Path, shape: tuple[int, ...]) -> Path:
    from segrob.data import write_array

    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        label = np.zeros(shape, dtype=np.uint8)
        label[tuple(slice(s // 4, 3 * s // 4) for s in shape)] = 1
        image = np.where(label > 0, 1.0, rng.normal(0, 1, shape)).astype(np.float32)
        write_array(root / "images" / f"c{i}.npy", image, (1.0,) * len(shape))
        write_array(root / "labels" / f"c{i}.npy", label, (1.0,) * len(shape))
    return root


def test_data_is_measured_and_its_dims_used(tmp_path):
    root = _dataset(tmp_path / "d2", (32, 32))
    level, report, dims = complexity_of(root)
    rec = recommend(data=root)
    assert rec.complexity == level == report.level and rec.complexity_source == "measured"
    assert rec.dims == dims == 2 and rec.measured_data["path"] == str(root)
    vol = _dataset(tmp_path / "d3", (16, 16, 16))
    assert recommend(data=vol).dims == 3
    with pytest.raises(SegrobError, match="not both"):
        recommend(complexity="low", data=root)


# --- CLI -----------------------------------------------------------------------------------


def test_cli_table_and_json():
    result = invoke("recommend", "--complexity", "high")
    assert result.exit_code == 0, result.output
    assert "verdict:" in result.output and "noskip" in result.output
    assert "Kamath et al., MICCAI 2023" in result.output
    result = invoke("recommend", "--complexity", "low", "--dims", "3", "--priority", "accuracy",
                    "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["dims"] == 3 and data["priority"] == "accuracy"
    assert data["ranking"][0]["arch"] == "unet" and data["verdict"].startswith("unet")
    assert all("citation" in item for item in data["evidence"])


def test_cli_reports(tmp_path):
    a = make_report(tmp_path / "a.json", arch="attention", clean=0.95, rr=0.60)
    n = make_report(tmp_path / "n.json", arch="noskip", clean=0.70, rr=0.95)
    result = invoke("recommend", "--reports", str(a), str(n), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [m["arch"] for m in data["models"]] == ["noskip", "attention"]
    result = invoke("recommend", "--reports", str(a), str(n), "-c", "high")
    assert result.exit_code == 0, result.output
    assert "Your audited models" in result.output and "Published evidence" in result.output


def test_cli_bad_inputs_are_one_line(tmp_path):
    a = make_report(tmp_path / "a.json", arch="unet", clean=0.9, rr=0.9)
    b = make_report(tmp_path / "b.json", arch="unet", clean=0.9, rr=0.9, suite="noise")
    for args in (
        ("--complexity", "extreme"),
        ("--complexity", "low", "--archs", "unet,resnet"),
        ("--reports",),
        ("--reports", str(a), str(b)),
        ("--reports", str(tmp_path / "*.json")),
    ):
        result = invoke("recommend", *args)
        assert result.exit_code == 1, (args, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:"), (args, result.output)
    assert invoke("recommend", str(a)).exit_code == 2
