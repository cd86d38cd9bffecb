"""A report saved by schema 1.0 keeps loading, round-tripping and rendering."""

from __future__ import annotations

import json
from pathlib import Path

from segrob_cli.main import app
from typer.testing import CliRunner

from segrob.audit.summary import AuditSummary
from segrob.report import SCHEMA_VERSION, load_report, report_json, validate_report

SCHEMA_1_0 = Path(__file__).parent / "data" / "report_schema_1_0.json"


def test_saved_schema_1_0_report_loads_and_writes_back_unchanged():
    """A 1.0 report is written back as 1.1 (which only added the optional ``examples``), else as is."""
    stored = json.loads(SCHEMA_1_0.read_text())
    report = load_report(SCHEMA_1_0)
    assert isinstance(report.summary, AuditSummary)
    assert report.to_dict() == {**stored, "schema_version": SCHEMA_VERSION}
    written_as = f'"schema_version": "{SCHEMA_VERSION}"'
    expected = SCHEMA_1_0.read_text().replace('"schema_version": "1.0"', written_as)
    assert report_json(report) == expected  # same keys in the same order


def test_saved_schema_1_0_summary_round_trips_exactly():
    stored = json.loads(SCHEMA_1_0.read_text())["summary"]
    summary = AuditSummary.from_dict(stored)
    assert summary.to_dict() == stored
    assert summary.cell("texture_speckle", 2).mean("dice") == stored["cells"][-1]["dice"]["mean"]
    assert summary.perturbation("texture_speckle").worst_severity == 2
    assert summary.fbr.outside.clean_dice is None and summary.per_class["2"].clean > 0


def test_a_summary_without_its_optional_parts_loads_and_stays_valid():
    """Counts and tables a report lacks stay absent; figures it lacks read as None."""
    data = json.loads(SCHEMA_1_0.read_text())
    summary = data["summary"]
    for key in ("clean_empty", "per_class", "fbr"):
        del summary[key]
    del summary["suite"]["worst"], summary["suite"]["mean_dice"]
    for cell in summary["cells"]:
        del cell["empty"], cell["delta_iou"]
    for row in summary["perturbations"]:
        del row["severities"], row["significant_drops"], row["worst_dice"]
    validate_report(data)
    typed = AuditSummary.from_dict(summary)
    assert typed.clean_empty is None and typed.per_class is None and typed.suite.mean_dice is None
    written = typed.to_dict()
    assert "clean_empty" not in written and "per_class" not in written and written["fbr"] is None
    assert "empty" not in written["cells"][0] and "delta_iou" not in written["cells"][0]
    assert "severities" not in written["perturbations"][0]
    validate_report({**data, "summary": written})


def test_saved_schema_1_0_report_renders():
    result = CliRunner().invoke(app, ["report", str(SCHEMA_1_0)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "texture_speckle" in result.stdout and "rR" in result.stdout
    assert "per class Dice (clean / perturbed): 1: 0.000" in result.stdout
    assert "training FBR range 0.200-0.300" in result.stdout
    assert "gate failed" in result.stderr and "texture_speckle s2: dice 0.029 < 0.05" in result.stderr


def test_saved_schema_1_0_report_compares_with_itself():
    result = CliRunner().invoke(app, ["report", str(SCHEMA_1_0), str(SCHEMA_1_0), "--json"])
    assert result.exit_code == 0, result.output
    comparison = json.loads(result.stdout)
    clean_dice = json.loads(SCHEMA_1_0.read_text())["summary"]["clean"]["dice"]["mean"]
    clean = comparison["dice"][0]
    assert (clean["row"], clean["values"], clean["higher_is_better"]) == ("clean", [clean_dice] * 2, True)
    hd95 = next(row for row in comparison["summary"] if row["row"] == "clean HD95")
    assert hd95["higher_is_better"] is False
