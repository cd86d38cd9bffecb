"""`segrob data synth`, `data info` and `complexity` through the CLI, bad input included."""

from __future__ import annotations

import json

import numpy as np
import pytest
from segrob_cli.main import app
from typer.testing import CliRunner

from segrob.data import write_array

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def synth_dir(tmp_path):
    out = tmp_path / "high"
    result = invoke("data", "synth", "--complexity", "high", "--n", "4", "--size", "48", "--out", out)
    assert result.exit_code == 0, result.output
    return out


def test_help_lists_commands():
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("data", "complexity"):
        assert command in result.output


def test_synth_writes_dataset_and_json(tmp_path, synth_dir):
    assert len(list((synth_dir / "images").glob("*.tif"))) == 4
    result = invoke("data", "synth", "--blend", "0.3", "--n", "2", "--size", "32",
                    "--dims", "3", "--out", tmp_path / "v", "--json")
    assert result.exit_code == 0, result.output
    meta = json.loads(result.stdout)
    assert meta["dims"] == 3 and meta["blend"] == 0.3 and meta["format"] == "nifti"


def test_synth_refuses_non_empty_out_and_keeps_it(synth_dir):
    before = sorted(p.name for p in (synth_dir / "images").iterdir())
    result = invoke("data", "synth", "--n", "2", "--size", "32", "--out", synth_dir)
    assert result.exit_code == 1
    assert "not empty" in result.stderr and "--overwrite" in result.stderr
    assert sorted(p.name for p in (synth_dir / "images").iterdir()) == before
    result = invoke("data", "synth", "--n", "2", "--size", "32", "--out", synth_dir, "--overwrite")
    assert result.exit_code == 0
    assert len(list((synth_dir / "images").iterdir())) == 2


def test_synth_usage_errors(tmp_path):
    result = invoke("data", "synth", "--complexity", "extreme", "--out", tmp_path / "x")
    assert result.exit_code == 2 and "low, medium, high" in result.stderr
    result = invoke("data", "synth", "--complexity", "low", "--blend", "0.2", "--out", tmp_path / "x")
    assert result.exit_code == 2
    assert not (tmp_path / "x").exists()


def test_info_json(synth_dir):
    result = invoke("data", "info", "--data", synth_dir, "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["n_cases"] == 4 and info["label_values"] == [0, 1]
    assert info["synthetic"]["level"] == "high"
    assert 0 < info["foreground_ratio"]["mean"] < 1


def test_info_table_on_nnunet(nnunet_dataset):
    result = invoke("data", "info", "--data", nnunet_dataset)
    assert result.exit_code == 0, result.output
    assert "nnunet" in result.stdout and "1.250 x 1.250 x 2.500" in result.stdout


def test_complexity_json_and_table(synth_dir):
    result = invoke("complexity", "--data", synth_dir, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert len(report["cases"]) == 4
    assert report["level"] in ("low", "medium", "high")
    assert report["summary"]["median"] > 0
    result = invoke("complexity", "--data", synth_dir, "--cases")
    assert "case_0003" in result.stdout and "complexity:" in result.stdout


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("missing", "folder not found"),
        ("no_label", "image has no label"),
        ("shape", "does not match label shape"),
        ("truncated", "cannot read TIFF"),
        ("nan", "NaN or Inf"),
        ("float_label", "not integers"),
        ("empty", "dataset is empty"),
    ],
)
@pytest.mark.parametrize("command", ["info", "complexity"])
def test_bad_input_is_one_line_exit_1(images_labels_dataset, damage, message, command):
    root = images_labels_dataset
    if damage == "missing":
        root = root / "absent"
    elif damage == "no_label":
        (root / "labels" / "c2.tif").unlink()
    elif damage == "shape":
        write_array(root / "labels" / "c2.tif", np.zeros((4, 4), np.uint8), (1, 1))
    elif damage == "truncated":
        path = root / "images" / "c2.tif"
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "nan":
        write_array(root / "images" / "c2.tif", np.full((20, 24), np.inf, np.float32), (1, 1))
    elif damage == "float_label":
        write_array(root / "labels" / "c2.tif", np.full((20, 24), 0.3, np.float32), (1, 1))
    elif damage == "empty":
        for path in [*(root / "images").iterdir(), *(root / "labels").iterdir()]:
            path.unlink()
    args = ("data", "info", "--data", root) if command == "info" else ("complexity", "--data", root)
    result = invoke(*args)
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error:") and message in result.stderr
    assert "Traceback" not in result.output


def test_debug_flag_shows_traceback(tmp_path):
    result = invoke("--debug", "data", "info", tmp_path / "absent")
    assert result.exit_code != 0
    assert result.exception is not None
