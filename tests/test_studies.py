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
        for key in ("in_domain", "easier", "easiest", "harder", "hardest", "shift_rr"):
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
    result = CliRunner().invoke(app, ["study", "skip", "--out", out, "--protocol", "miccai"])
    assert result.exit_code == 2 and "'--protocol'" in result.stderr and "got 'miccai'" in result.stderr
    result = CliRunner().invoke(app, ["study", "skip", "-o", out, "--capacity", "paper", "--archs", "unetr"])
    assert result.exit_code == 1 and "sizes the U-Net family" in result.stderr


def test_context_study_measures_inside_and_outside_the_training_fbr(tmp_path):
    config = ContextStudyConfig(out=tmp_path / "c", patches=(16,), archs=("unet",), n_train=4, n_test=2,
                                size=32, epochs=1)
    result = run_context_study(config)
    row = result["table"][0]
    assert row["patch"] == 16 and row["arch"] == "unet"
    assert all(row[f"dice_{key}_fbr"] is not None for key in ("same", "smaller", "larger"))
    cell = result["cells"][0]
    assert cell["train_fbr"]["min"] <= cell["train_fbr"]["max"]
    assert cell["larger_outside_range"] >= 1  # the larger share really leaves the patch FBR range
    # Random patches can hold almost no foreground, so the smaller share need not leave the patch
    # range; what it must do is lie below the training volumes' share, as the larger lies above.
    assert cell["smaller_outside_range"] is not None
    metas = {name: json.loads((tmp_path / "c" / "data" / name / "segrob.json").read_text())
             for name in ("test-smaller-fbr", "train", "test-shifted-fbr")}
    means = [m["foreground_ratio"]["mean"] for m in metas.values()]
    assert means == sorted(means) and len(set(means)) == 3


def test_context_study_refuses_shifts_that_do_not_bracket_the_training_share(tmp_path):
    config = ContextStudyConfig(out=tmp_path / "c", fg_fraction_smaller=(0.05, 0.08))
    with pytest.raises(SegrobError, match="below and above the training share"):
        run_context_study(config)


def test_skip_study_paper_protocol_shares_masks_and_tests_every_level(tmp_path):
    config = SkipStudyConfig.build("paper", out=tmp_path / "p", levels=("low", "high"), archs=("unet",),
                                   n_train=6, n_test=3, size=32, epochs=1, shift_suite=None)
    assert (config.protocol, config.capacity) == ("paper", "paper")
    assert config.shift_suite is None  # None here is "no shift suite", not "not given"
    default = SkipStudyConfig.build("paper", out=tmp_path, n_train=None, capacity=None)
    assert (default.n_train, default.epochs, default.size, default.capacity) == (80, 100, 256, "paper")
    assert SkipStudyConfig.build("segrob", out=tmp_path, epochs=None).capacity == "matched"
    result = run_skip_study(config)
    assert result["protocol"] == "paper" and result["capacity"] == "paper"
    data = tmp_path / "p" / "data"
    low, high = (json.loads((data / f"{lv}-test" / "segrob.json").read_text()) for lv in ("low", "high"))
    # One mask set across blend levels, one texture pair for every case.
    assert [c["foreground_ratio"] for c in low["cases"]] == [c["foreground_ratio"] for c in high["cases"]]
    pairs = {(c["fg_family"], c["bg_family"]) for c in low["cases"] + high["cases"]}
    assert pairs == {("cellular", "fractal")}
    run = json.loads((tmp_path / "p" / "runs" / "low-unet-s0" / "config.json").read_text())
    assert run["train"]["batch_size"] == 8 and run["train"]["lr"] == 1e-3
    assert run["options"]["channels"] == [9, 18, 36, 71, 143]  # the paper capacity's narrowed U-Net
    (row,) = [r for r in result["matrix"] if r["train"] == "low"]
    cell = next(c for c in result["cells"] if c["level"] == "low")
    assert row["low"] == cell["in_domain"] and row["high"] is not None
    assert (tmp_path / "p" / "audits" / "low-unet-s0-on-high.json").is_file()
    for key in ("easier", "easiest", "harder", "hardest"):
        assert 0.0 <= result["table"][0][key] <= 1.0


def test_paper_capacity_gives_attention_the_papers_parameter_ratio():
    from segrob.studies.skip import PAPER_ATTENTION_RATIO, _parameters, paper_capacity

    attention = _parameters("attention", paper_capacity("attention"))
    ratio = attention / _parameters("unet", paper_capacity("unet"))
    assert abs(ratio / PAPER_ATTENTION_RATIO - 1) < 0.02
    assert paper_capacity("attention") == (16, 32, 64, 128, 256)


def test_skip_study_settings_keep_old_folders_resumable(tmp_path):
    config = SkipStudyConfig(out=tmp_path / "s")
    assert "protocol" not in config.settings() and "capacity" not in config.settings()
    assert SkipStudyConfig(out=tmp_path, capacity="paper").settings()["capacity"] == "paper"
    with pytest.raises(SegrobError, match="U-Net family"):
        SkipStudyConfig(out=tmp_path, capacity="paper", archs=("unet", "unetr")).check()
    with pytest.raises(SegrobError, match="unknown protocol"):
        SkipStudyConfig(out=tmp_path, protocol="miccai").check()
