"""The studies run end to end at toy size, write every number, and resume without redoing work."""

from __future__ import annotations

import json

import pytest
from segrob_cli.main import app
from typer.testing import CliRunner

from segrob.errors import SegrobError
from segrob.studies.context import ContextStudyConfig, run_context_study
from segrob.studies.skip import SkipStudyConfig, run_skip_study


def test_skip_study_runs_and_resumes(tmp_path):
    config = SkipStudyConfig(out=tmp_path / "s", levels=("low",), archs=("unet", "noskip"), n_train=6,
                             n_test=3, size=32, epochs=1, shift_suite="blur", channels=(4, 8))
    steps: list[str] = []
    result = run_skip_study(config, notify=steps.append)
    assert [row["arch"] for row in result["table"]] == ["unet", "noskip"]
    for row in result["table"]:
        for key in ("in_domain", "easier", "harder", "shift_rr"):
            assert row[key] is not None and 0.0 <= row[key] <= 2.0
    stored = json.loads((tmp_path / "s" / "study.json").read_text())
    assert stored["table"] == result["table"]
    assert any(s.startswith("train low-unet") for s in steps)
    model = tmp_path / "s" / "models" / "low-unet-s0.onnx"
    stamp = model.stat().st_mtime_ns
    again: list[str] = []
    assert run_skip_study(config, notify=again.append)["table"] == result["table"]
    assert again == []  # every step was already done
    assert model.stat().st_mtime_ns == stamp
    changed = SkipStudyConfig(out=tmp_path / "s", levels=("low",), archs=("unet", "noskip"), n_train=6,
                              n_test=3, size=32, epochs=2, shift_suite="blur", channels=(4, 8))
    with pytest.raises(SegrobError, match=r"other settings \(epochs: 1, now 2\)"):
        run_skip_study(changed)


def test_skip_study_cli_rejects_unknown_architecture(tmp_path):
    out = str(tmp_path / "x")
    result = CliRunner().invoke(app, ["study", "skip", "--out", out, "--archs", "unet,resnet"])
    assert result.exit_code == 2 and "'--archs'" in result.stderr and "got 'resnet'" in result.stderr
    result = CliRunner().invoke(app, ["study", "skip", "--out", out, "--levels", "hard"])
    assert result.exit_code == 2 and "'--levels'" in result.stderr and "got 'hard'" in result.stderr


def test_context_study_measures_inside_and_outside_the_training_fbr(tmp_path):
    config = ContextStudyConfig(out=tmp_path / "c", patches=(16,), archs=("unet",), n_train=4, n_test=2,
                                size=32, epochs=1)
    result = run_context_study(config)
    row = result["table"][0]
    assert row["patch"] == 16 and row["arch"] == "unet"
    assert row["dice_same_fbr"] is not None and row["dice_shifted_fbr"] is not None
    cell = result["cells"][0]
    assert cell["train_fbr"]["min"] <= cell["train_fbr"]["max"]
    assert cell["shifted_outside_range"] >= 1  # the shifted test set really leaves the range
