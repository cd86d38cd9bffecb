"""`segrob demo` end to end at toy size: every step's table and a verdict, all in one folder."""

from __future__ import annotations

import json

from segrob_cli.main import app
from typer.testing import CliRunner


def test_demo_runs_the_whole_loop(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(
        app, ["demo", "--out", str(out), "--epochs", "1", "--size", "32", "--n-train", "8"],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    for heading in ("task complexity", "skip study", "side by side", "recommendation", "verdict:"):
        assert heading in result.stdout
    study = json.loads((out / "study.json").read_text())
    assert {(row["level"], row["arch"]) for row in study["table"]} == {
        (level, arch) for level in ("low", "high") for arch in ("unet", "noskip", "attention")
    }
    assert len(list((out / "models").glob("*.onnx"))) == 6
    assert len(list((out / "audits").glob("*.json"))) == 12
