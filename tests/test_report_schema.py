"""A report saved by schema 1.0 keeps loading, round-tripping and rendering."""

from __future__ import annotations

import json
from pathlib import Path

from segrob_cli.main import app
from typer.testing import CliRunner

from segrob.report import load_report

SCHEMA_1_0 = Path(__file__).parent / "data" / "report_schema_1_0.json"


def test_saved_schema_1_0_report_loads_and_writes_back_unchanged():
    stored = json.loads(SCHEMA_1_0.read_text())
    report = load_report(SCHEMA_1_0)
    assert report.to_dict() == stored


def test_saved_schema_1_0_report_renders():
    result = CliRunner().invoke(app, ["report", str(SCHEMA_1_0)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "texture_speckle" in result.stdout and "rR" in result.stdout
    assert "per class Dice (clean / perturbed): 1: 0.000" in result.stdout
    assert "training FBR range 0.200-0.300" in result.stdout
    assert "gate failed" in result.stderr and "texture_speckle s2: dice 0.029 < 0.05" in result.stderr
