"""Models compared pairwise on shared cases: `report A B` and `recommend --reports` on hand-built audits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from segrob_cli.main import app
from typer.testing import CliRunner

from segrob.audit.aggregate import summarise
from segrob.audit.compare import compare_reports, paired_difference, paired_score_difference
from segrob.audit.records import CLEAN, CellRecord
from segrob.errors import SegrobError
from segrob.metrics import paired_bootstrap_ci
from segrob.recommend import PRIORITY_WEIGHTS, recommend
from segrob.report import AuditReport, load_report, save_report

N = 20
CELLS = [("gamma", 1), ("gamma", 3)]


def _report(path: Path, arch: str, clean: np.ndarray, perturbed: np.ndarray, **settings) -> Path:
    """A schema-valid report whose summary is computed from its records, as an audit's is."""
    records = [CellRecord(case=f"case{i:02d}", perturbation=CLEAN, severity=0, seed=0, params={},
                          metrics={"dice": float(clean[i]), "hd95": float(5 - 3 * clean[i])})
               for i in range(N)]
    records += [CellRecord(case=f"case{i:02d}", perturbation=name, severity=severity, seed=0, params={},
                           metrics={"dice": float(perturbed[i] - 0.05 * severity)})
                for name, severity in CELLS for i in range(N)]
    report = AuditReport(
        model={"path": f"{path.stem}.onnx", "sha256": "0" * 64, "metadata": {"arch": arch},
               "arch": arch, "spatial_dims": 2},
        data={"source": "data/x", "n_cases": N, "cases": [f"case{i:02d}" for i in range(N)],
              "fingerprint": "fp"},
        suite={"name": "shift", "entries": [{"perturbation": "gamma", "severities": [1, 3]}]},
        settings={"seed": 0, "device": "cpu", "providers": ["CPUExecutionProvider"], **settings},
        summary=summarise(records), records=[r.to_dict() for r in records],
        timings={"total": 0.1}, versions={"segrob": "0"},
    )
    save_report(report, path)
    return path


@pytest.fixture
def audits(tmp_path):
    """unet clearly ahead of noskip; attention within noise of unet (noisy, tiny mean lead)."""
    rng = np.random.default_rng(0)
    base = rng.uniform(0.6, 0.9, N)
    worse = base - 0.08 + rng.normal(0, 0.01, N)
    noise = rng.normal(0, 0.06, N)
    near = base + noise - noise.mean() + 0.004  # a lead of exactly +0.004 on clean Dice
    return {
        "unet": _report(tmp_path / "unet.json", "unet", base, base - 0.1),
        "noskip": _report(tmp_path / "noskip.json", "noskip", worse, worse - 0.1),
        "attention": _report(tmp_path / "attention.json", "attention", near, near - 0.1),
    }


def _load(audits, *names):
    return [load_report(audits[n]) for n in names], [str(audits[n]) for n in names]


def test_report_comparison_says_which_differences_are_significant(audits):
    comparison = compare_reports(*_load(audits, "unet", "noskip"))
    clean = next(p for p in comparison.pairwise if p.figure == "clean Dice")
    assert clean.significant and clean.difference == pytest.approx(0.08, abs=0.01)
    assert clean.statement().startswith("unet is significantly ahead of noskip in clean Dice")
    assert comparison.dice_rows[0]["best"] == 0 and comparison.dice_rows[0]["significant"] is True

    near = compare_reports(*_load(audits, "unet", "attention"))
    clean = next(p for p in near.pairwise if p.figure == "clean Dice")
    assert clean.difference == pytest.approx(-0.004) and clean.ci_low < 0 < clean.ci_high
    assert not clean.significant
    assert clean.statement().startswith("no significant difference between unet and attention in clean Dice")
    # attention has the higher mean, so it is marked best, but not as significantly ahead.
    assert near.dice_rows[0]["best"] == 1 and near.dice_rows[0]["significant"] is False
    # Rows that are ratios of means have no per-case values to test.
    assert all(row["significant"] is None for row in near.robustness_rows)


def test_paired_difference_is_the_bootstrap_of_the_per_case_differences():
    a = {"x": 0.9, "y": 0.7, "z": 0.8, "w": float("nan")}
    b = {"x": 0.8, "y": 0.5, "z": 0.9, "v": 0.1}
    result = paired_difference("A", "B", "clean Dice", a, b)
    # Only x, y and z are scored by both: differences +0.1, +0.2, -0.1.
    assert result.n_cases == 3 and result.difference == pytest.approx(0.2 / 3)
    low, high = paired_bootstrap_ci([0.8, 0.5, 0.9], [0.9, 0.7, 0.8])
    assert (result.ci_low, result.ci_high) == (low, high)
    alone = paired_difference("A", "B", "clean Dice", {"x": 0.9}, {"x": 0.1})
    assert alone.ci_low is None and not alone.significant and "not testable" in alone.statement()


def test_score_difference_matches_the_ranked_scores(audits):
    reports, paths = _load(audits, "unet", "noskip")
    from segrob.audit.compare import case_values

    tables = [case_values(r, "dice") for r in reports]
    weights = PRIORITY_WEIGHTS["robustness"]
    result = paired_score_difference("unet", "noskip", *tables, weights)
    rec = recommend(reports=reports, report_paths=paths)
    scores = {m.arch: m.score for m in rec.models}
    assert result.difference == pytest.approx(scores["unet"] - scores["noskip"])
    assert result.ci_low <= result.difference <= result.ci_high
    same = paired_score_difference("unet", "unet", tables[0], tables[0], weights)
    assert same.difference == 0 and not same.significant


def test_recommend_does_not_crown_a_winner_inside_the_noise(audits):
    reports, paths = _load(audits, "unet", "noskip")
    clear = recommend(reports=reports, report_paths=paths)
    assert clear.verdict.startswith("deploy unet")
    assert "significantly ahead of every other model" in clear.verdict
    assert [c.significant for c in clear.comparisons] == [True]

    reports, paths = _load(audits, "unet", "attention")
    tied = recommend(reports=reports, report_paths=paths)
    leader = tied.models[0].label
    assert tied.verdict.startswith("no significant difference between") and "deploy" not in tied.verdict
    assert "leads on point estimates only" in tied.verdict and leader in tied.verdict
    assert tied.to_dict()["comparisons"][0]["significant"] is False


def test_cli_report_and_recommend_show_the_pairwise_results(audits):
    runner = CliRunner()
    shown = runner.invoke(app, ["report", str(audits["unet"]), str(audits["attention"])],
                          env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "Pairwise" in shown.stdout and "no significant difference" in shown.stdout
    as_json = runner.invoke(app, ["report", str(audits["unet"]), str(audits["noskip"]), "--json"])
    pairwise = json.loads(as_json.stdout)["pairwise"]
    assert {p["figure"] for p in pairwise} == {"clean Dice", "mean perturbed Dice"}
    assert all(p["significant"] for p in pairwise)
    ranked = runner.invoke(app, ["recommend", "--reports", str(audits["unet"]), str(audits["attention"]),
                                 "--json"])
    assert ranked.exit_code == 0, ranked.output
    data = json.loads(ranked.stdout)
    assert data["verdict"].startswith("no significant difference")
    assert data["comparisons"][0]["figure"] == "robustness score"


def test_reports_scored_differently_are_not_compared(tmp_path, audits):
    rng = np.random.default_rng(1)
    values = rng.uniform(0.5, 0.9, N)
    area = _report(tmp_path / "area.json", "unet", values, values, nsd_definition="area")
    with pytest.raises(SegrobError, match=r"scored with nsd_definition 'voxel'.*with 'area'"):
        compare_reports([load_report(area), load_report(audits["unet"])], [str(area), str(audits["unet"])])
