"""The shared CLI options: one spelling and one validation each, old spellings kept with a warning,
and the one output object (JSON alone on stdout, unbroken tables when piped)."""

from __future__ import annotations

import json

import pytest
from segrob_cli.main import app
from segrob_cli.output import Output, console, table
from typer.testing import CliRunner

runner = CliRunner()


def invoke(*args, env=None):
    return runner.invoke(app, [str(a) for a in args], env=env)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("data", "synth", "--seed", "-1"), "'--seed': must be at least 0, got -1"),
        (("data", "synth", "--n", "0"), "'--n': must be at least 1, got 0"),
        (("data", "synth", "--size", "8"), "'--size': must be between 16 and 1024, got 8"),
        (("data", "synth", "--dims", "4"), "'--dims': must be between 2 and 3, got 4"),
        (("data", "synth", "--n", "many"), "'--n': takes a whole number, got 'many'"),
        (("study", "skip", "--epochs", "0"), "'--epochs': must be at least 1, got 0"),
        (("study", "skip", "--device", "tpu"), "'--device': must be one of auto, cpu, cuda; got 'tpu'"),
        (("demo", "--n-train", "0"), "'--n-train': must be at least 1, got 0"),
        (("audit", "m.onnx", "--data", "d", "--batch-size", "0"), "'--batch-size': must be at least 1"),
        (("audit", "m.onnx", "--data", "d", "--threads", "0"), "'--threads': must be at least 1"),
        (("audit", "m.onnx", "--data", "d", "--overlap", "1"), "'--overlap': must be in [0, 1), got 1"),
        (("train", "--out", "x", "--seed", "-2"), "'--seed': must be at least 0, got -2"),
    ],
)
def test_bad_values_are_usage_errors_naming_option_and_range(tmp_path, args, message):
    args = tuple(tmp_path / a if a in ("x", "d", "m.onnx") else a for a in args)
    if args[:2] in (("data", "synth"), ("study", "skip")) or args[0] == "demo":
        args = (*args, "--out", tmp_path / "out")
    result = invoke(*args, env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "out").exists() and not (tmp_path / "x").exists()


def test_out_has_a_short_spelling_everywhere(tmp_path):
    result = invoke("data", "synth", "--n", "2", "--size", "16", "-o", tmp_path / "s", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["n"] == 2 and (tmp_path / "s" / "images").is_dir()


@pytest.mark.parametrize("command", [("data", "info"), ("complexity",)])
def test_positional_data_still_works_and_warns(images_labels_dataset, command):
    old = invoke(*command, images_labels_dataset, "--json")
    new = invoke(*command, "--data", images_labels_dataset, "--json")
    assert old.exit_code == 0 and new.exit_code == 0, old.output
    assert json.loads(old.stdout) == json.loads(new.stdout)
    assert "deprecated" in old.stderr and f"--data {images_labels_dataset}" in old.stderr
    assert "deprecated" not in new.stderr


def test_perturb_positional_data_still_works_and_warns(images_labels_dataset, tmp_path):
    result = invoke("perturb", images_labels_dataset, "--perturbation", "gaussian_noise",
                    "--severity", "2", "--out", tmp_path / "o", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["out"] == str(tmp_path / "o")
    assert "deprecated" in result.stderr


def test_data_is_required_and_not_given_twice(images_labels_dataset):
    missing = invoke("complexity")
    assert missing.exit_code == 2 and "--data" in missing.stderr
    twice = invoke("complexity", images_labels_dataset, "--data", images_labels_dataset)
    assert twice.exit_code == 2


def test_output_json_mode_prints_only_json(capsys):
    shown = []
    Output(as_json=True).result({"value": float("nan"), "items": (1, 2)}, shown.append)
    assert json.loads(capsys.readouterr().out) == {"value": None, "items": [1, 2]}
    assert shown == []
    Output().result({"value": 1}, shown.append)
    assert shown == [{"value": 1}] and capsys.readouterr().out == ""


def test_piped_tables_do_not_break_words(capsys, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    long_cell = "texture_blur_background degrades least out of domain on every harder category"
    console.print(table("t", ("name", "why"), [("noskip", long_cell)]))
    assert long_cell in capsys.readouterr().out  # wider than rich's default 80 columns
    monkeypatch.setenv("COLUMNS", "60")
    console.print(table("t", ("name", "why"), [("noskip", long_cell)]))
    assert long_cell not in capsys.readouterr().out


@pytest.mark.parametrize(
    "args",
    [
        ("audit", "none.onnx", "--data", "d", "--fail-under", "dice=0,iou=1,rr=0,suite_rr=2.5",
         "--failure-dice", "1", "--nsd-tolerance", "1e-6", "--overlap", "0", "--window", "16,16",
         "--seed", "0", "--spatial-dims", "3", "--in-channels", "1", "--examples", "0"),
        ("train", "--out", "x", "--data", "d", "--lr", "1e-9", "--val-fraction", "0", "--pos-ratio", "1",
         "--samples-per-epoch", "1", "--patch", "16x16", "--channels", "1,1", "--option", "a=1"),
        ("export", "d", "--out", "x.onnx", "--opset", "18", "--min-dice", "0", "--min-agreement", "1",
         "--max-abs-diff", "0", "--parity-cases", "1", "--calibration-cases", "1", "--precision", "int8"),
        ("perturb", "--data", "d", "--perturbation", "gamma_compression", "--severity", "0", "--case", "0",
         "--preview", "x.png"),
        ("complexity", "--data", "d", "--allow-outside"),
        ("recommend", "--data", "d", "--priority", "accuracy", "--archs", "unet,unetr", "--allow-outside"),
    ],
)
def test_values_at_their_limits_pass_the_parser(tmp_path, args):
    """Each command gets past parsing (exit 1 for the missing input, not 2 for an option)."""
    args = tuple(tmp_path / a if a in ("x", "d", "none.onnx", "x.onnx", "x.png") else a for a in args)
    result = invoke(*args, env={"COLUMNS": "200"})
    assert result.exit_code == 1, result.output
    assert "Invalid value" not in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize("command", [("data", "info"), ("complexity",), ("perturb",), ("train",),
                                     ("audit",), ("recommend",)])
def test_every_command_that_reads_a_dataset_takes_allow_outside(command):
    result = invoke(*command, "--help", env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "--allow-outside" in result.stdout


def test_allow_outside_reads_a_case_linked_from_outside(images_labels_dataset, tmp_path):
    outside = tmp_path / "elsewhere.tif"
    (images_labels_dataset / "images" / "c0.tif").rename(outside)
    (images_labels_dataset / "images" / "c0.tif").symlink_to(outside)
    refused = invoke("data", "info", "--data", images_labels_dataset, "--json")
    assert refused.exit_code == 1 and "outside the dataset" in refused.stderr
    allowed = invoke("data", "info", "--data", images_labels_dataset, "--json", "--allow-outside")
    assert allowed.exit_code == 0, allowed.output
    assert json.loads(allowed.stdout)["n_cases"] == 3


def test_gate_bounds_refuse_what_no_metric_can_reach():
    from segrob.audit.gates import parse_bounds
    from segrob.errors import UsageError

    assert [b.minimum for b in parse_bounds("dice=0,nsd=1,rr=0,suite_rr=1.2")] == [0, 1, 0, 1.2]
    for text in ("dice=nan", "dice=1.0001", "iou=-0.5", "rr=-1e-9", "rr=inf", "suite_rr=nan",
                 "clean_dice=2", "sensitivity=-inf"):
        with pytest.raises(UsageError, match=text.split("=")[0]):
            parse_bounds(text)


def test_export_reads_a_runs_cases_from_outside_only_where_training_was_allowed_to(
        images_labels_dataset, tmp_path):
    from segrob.onnx.samples import SizeRules, run_samples
    from segrob.training.prepare import load_training_data

    outside = tmp_path / "elsewhere.tif"
    (images_labels_dataset / "images" / "c0.tif").rename(outside)
    (images_labels_dataset / "images" / "c0.tif").symlink_to(outside)
    data = load_training_data(images_labels_dataset, seed=0, val_fraction=0.34,
                              normalization={"method": "zscore"}, allow_outside=True)
    described = data.describe()
    assert described["allow_outside"] is True
    rules = SizeRules(spatial_dims=2)
    config = {"data": described, "normalization": {"method": "zscore"}}
    assert run_samples(config, rules, split="train", max_cases=4) is not None
    refused = {"data": {k: v for k, v in described.items() if k != "allow_outside"},
               "normalization": {"method": "zscore"}}
    assert run_samples(refused, rules, split="train", max_cases=4) is None  # synthetic inputs instead
