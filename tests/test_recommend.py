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
from segrob.evidence import parse_evidence
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


# --- scores -------------------------------------------------------------------------------


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


def test_2d_in_domain_and_retention_both_come_from_the_clinical_datasets():
    rec = recommend(complexity="high")
    noskip = next(r for r in rec.ranking if r.arch == "noskip")
    retention = np.mean([0.735 / 0.761, 0.814 / 0.833, 0.562 / 0.606])
    in_domain = np.mean([0.761, 0.833, 0.606])
    assert noskip.expectation.retention == pytest.approx(retention)
    assert noskip.expectation.in_domain == pytest.approx(in_domain)
    assert noskip.expectation.data == "clinical"
    assert noskip.score == pytest.approx(0.3 * in_domain + 0.7 * retention)
    assert "BUSI" in noskip.expectation.evidence_line() and "Kamath et al. 2023" in noskip.why + \
        noskip.expectation.evidence_line()


def test_the_levels_synthetic_dice_is_shown_but_not_scored():
    low, high = recommend(complexity="low"), recommend(complexity="high")
    assert {r.arch: r.score for r in low.ranking} == {r.arch: r.score for r in high.ranking}
    high_notes = " ".join(high.notes)
    assert "at blend 0.8 (segrob's 'high') attention .938, noskip .890, unet .844" in high_notes
    assert "at blend 0.9 attention .727, noskip .540, unet .510" in high_notes
    assert "one seed, one blend direction" in high_notes and "not scored" in high_notes
    assert "at blend 0.1 (segrob's 'low') attention .997, unet .990, noskip .988" in " ".join(low.notes)
    attention = next(r for r in high.ranking if r.arch == "attention")
    assert "synthetic high (blend 0.8, one seed): .938" in attention.expectation.evidence_line()


def test_high_complexity_priority_decides_between_noskip_and_attention():
    robust = recommend(complexity="high")
    accurate = recommend(complexity="high", priority="accuracy")
    assert [r.arch for r in robust.ranking[:3]] == ["noskip", "unet", "attention"]
    assert accurate.ranking[0].arch == "attention"
    assert robust.verdict.startswith("noskip") and "attention if deployment data will match" \
        in robust.verdict
    assert accurate.verdict.startswith("attention") and "noskip" in accurate.verdict


def test_the_no_skip_group_result_is_not_credited_to_noskip_alone():
    noskip = next(r for r in recommend(complexity="medium").ranking if r.arch == "noskip")
    assert "the No-Skip group (no-skip U-Net and no-skip V-Net) best on 5/8" in noskip.why


def test_evidence_from_the_other_dimensionality_is_never_scored():
    rec = recommend(complexity="medium")
    by_arch = {r.arch: r for r in rec.ranking}
    assert [r.arch for r in rec.ranking][-2:] == ["unetr", "gated"]
    assert by_arch["gated"].score is None and by_arch["gated"].expectation.findings == ()
    assert "no published evidence" in by_arch["gated"].why and "study skip" in by_arch["gated"].why
    assert by_arch["unetr"].expectation.coverage == "other-dims"
    assert by_arch["unetr"].expectation.dims == 3 and by_arch["unetr"].score is None
    assert "not scored" in by_arch["unetr"].why
    noskip_3d = next(r for r in recommend(complexity="low", dims=3).ranking if r.arch == "noskip")
    assert noskip_3d.expectation.coverage == "other-dims" and noskip_3d.score is None


def test_a_verdict_without_evidence_says_so():
    rec = recommend(complexity="low", archs=["gated", "unetr"])
    assert [r.arch for r in rec.ranking] == ["unetr", "gated"]
    assert rec.verdict.startswith("unetr") and "no published 2D evidence" in rec.verdict
    rec = recommend(complexity="low", archs=["gated"])
    assert "no published evidence" in rec.verdict and "segrob study skip" in rec.verdict


def test_3d_scores_use_the_synthetic_volumes_alone():
    rec = recommend(complexity="low", dims=3, priority="accuracy")
    assert [r.arch for r in rec.ranking[:3]] == ["unet", "unetr", "attention"]
    by_arch = {r.arch: r.expectation for r in rec.ranking}
    assert (by_arch["unet"].in_domain, by_arch["attention"].in_domain) == (0.994, 0.970)
    assert by_arch["unet"].retention == pytest.approx(0.976 / 0.994)
    assert by_arch["attention"].retention == pytest.approx(0.714 / 0.970)
    assert by_arch["unetr"].data == "synthetic volumes, patch 96"
    assert "spleen CT patch 32 -> 96: .721 -> .932" in by_arch["unet"].evidence_line()
    notes = " ".join(rec.notes)
    assert "larger patches" in notes and "unet .721 -> .932" in notes
    assert "prefer unet" in notes and "attention .970 -> .714" in notes and ".718" in notes
    assert "155 below, 94 above" in notes


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
    assert rec.models[0].expected.in_domain == pytest.approx(np.mean([0.763, 0.901, 0.746]))
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
    assert all("citation" in item and item["cite"] for item in data["evidence"])
    assert any(item.get("id") == "fbr_both_directions" for item in data["evidence"])


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
    for args, code in (
        (("--complexity", "extreme"), 2),
        (("--complexity", "low", "--archs", "unet,resnet"), 2),
        (("--reports",), 2),
        (("--reports", str(a), str(b)), 1),
        (("--reports", str(tmp_path / "*.json")), 1),
    ):
        result = invoke("recommend", *args)
        assert result.exit_code == code, (args, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:"), (args, result.output)
    assert invoke("recommend", str(a)).exit_code == 2
