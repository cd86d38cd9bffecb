"""`segrob suites` and `segrob perturb` through the CLI, bad input included."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from segrob_cli.main import app
from typer.testing import CliRunner

from segrob.data import load_dataset, read_array
from segrob.perturb import derive_seed

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_suites_json_lists_every_suite_and_perturbation():
    result = invoke("suites", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    names = {s["name"] for s in data["suites"]}
    assert {"noise", "shift", "texture", "all", "mri", "histology"} <= names
    bias = next(p for p in data["perturbations"] if p["name"] == "bias_field")
    assert bias["severities"]["1"]["coefficient"] == 0.3
    assert bias["severities"]["5"]["coefficient"] == 1.5
    assert bias["kind"] == "intensity" and bias["spatial_dims"] == [2, 3]


def test_one_suite_as_json_and_as_a_table():
    result = invoke("suites", "--suite", "shift", "--json")
    assert result.exit_code == 0, result.output
    shift = json.loads(result.stdout)
    assert shift["name"] == "shift"
    gamma = next(m for m in shift["members"] if m["name"] == "gamma_compression")
    assert gamma["severities"]["1"] == {"gamma": 0.86}
    assert gamma["suite_severities"] == [1, 2, 3, 4, 5]
    table = invoke("suites", "--suite", "texture")
    assert table.exit_code == 0, table.output
    assert "texture_blur_background" in table.stdout and "sigma" in table.stdout
    assert "–" in table.stdout  # severities 3..5 are not the paper's
    everything = invoke("suites")
    assert everything.exit_code == 0
    assert "elastic" in everything.stdout and "histology" in everything.stdout


def test_unknown_suite_is_one_line_exit_2():
    result = invoke("suites", "--suite", "shfit")
    assert result.exit_code == 2
    assert "got 'shfit'" in result.output and "Traceback" not in result.output


def test_perturb_writes_cases_and_their_record(images_labels_dataset, tmp_path):
    out = tmp_path / "bf4"
    result = invoke("perturb", "--data", images_labels_dataset, "--perturbation", "bias_field",
                    "--severity", 4, "--out", out)
    assert result.exit_code == 0, result.output
    record = json.loads((out / "perturbations.json").read_text())
    assert len(record["applied"]) == 3 and record["seed"] == 0
    first = record["applied"][0]
    assert first["name"] == "bias_field" and first["severity"] == 4
    assert first["seed"] == derive_seed(0, first["case"], "bias_field", 4)  # the audit's seed
    assert len(first["params"]["coefficients"]) == len(first["params"]["terms"])
    perturbed = load_dataset(out)
    assert len(perturbed) == 3 and perturbed.names[0] == f"{first['case']}__bias_field_s4"
    clean = load_dataset(images_labels_dataset).case(first["case"])
    case = perturbed[0]
    assert case.image.shape == clean.image.shape and not np.array_equal(case.image, clean.image)
    np.testing.assert_array_equal(case.label, clean.label)  # intensity: labels untouched
    assert (out / "images" / f"{perturbed.names[0]}.tif").is_file()


def test_perturb_refuses_to_overwrite_or_write_into_the_input(images_labels_dataset, tmp_path):
    out = tmp_path / "o"
    args = ("perturb", "--data", images_labels_dataset, "--perturbation", "affine", "--severity", 2,
            "--out", out)
    assert invoke(*args).exit_code == 0
    again = invoke(*args)
    assert again.exit_code == 1 and "--overwrite" in again.output
    assert invoke(*args, "--overwrite").exit_code == 0
    inside = invoke("perturb", "--data", images_labels_dataset, "--perturbation", "affine", "--severity", 1,
                    "--out", images_labels_dataset / "p")
    assert inside.exit_code == 1 and "inside the input" in inside.output


def test_geometric_perturbation_moves_labels_on_3d_data(nnunet_dataset, tmp_path):
    out = tmp_path / "aff"
    result = invoke("perturb", "--data", nnunet_dataset, "--perturbation", "affine", "--severity", 5,
                    "--out", out, "--n", 1, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert len(summary["applied"]) == 1 and summary["out"] == str(out)
    label_file = next((out / "labels").iterdir())
    label, spacing = read_array(label_file)
    assert label.shape == (10, 12, 8) and spacing == pytest.approx((1.25, 1.25, 2.5))
    assert set(np.unique(label)) <= {0, 1, 2}


@pytest.mark.parametrize("fixture", ["images_labels_dataset", "nnunet_dataset"])
def test_preview_contact_sheet(fixture, request, tmp_path):
    data = request.getfixturevalue(fixture)
    png = tmp_path / "sheet.png"
    result = invoke("perturb", "--data", data, "--suite", "artifact", "--preview", png)
    assert result.exit_code == 0, result.output
    sheet = np.asarray(Image.open(png).convert("RGB")).astype(int)
    rows = 8  # the artifact members
    assert sheet.shape[0] > rows * 60 and sheet.shape[1] > 6 * 60
    # The row names (left) are dark text on white, and the label is drawn as a green contour.
    assert (sheet[:, :100] < 128).any() and not list(tmp_path.glob(".*"))
    red, green, blue = sheet[..., 0], sheet[..., 1], sheet[..., 2]
    assert ((green > 150) & (red < 100) & (blue < 150)).sum() > 50


def test_preview_of_one_severity_leaves_the_others_blank(images_labels_dataset):
    from segrob.data import load_dataset
    from segrob.perturb.apply_dataset import single_suite
    from segrob.perturb.preview import contact_sheet

    sheet = contact_sheet(load_dataset(images_labels_dataset), single_suite("gaussian_noise", (3,)))
    assert sheet.columns == 4 and sorted(sheet.cells) == [(0, 0), (0, 3)]
    clean, noisy = sheet.cells[0, 0][0], sheet.cells[0, 3][0]
    assert noisy.std() > clean.std()


def test_preview_of_an_anisotropic_volume_keeps_its_proportions(nnunet_dataset):
    from segrob.data import load_dataset
    from segrob.perturb.preview import contact_sheet
    from segrob.perturb.suites import resolve_suite

    sheet = contact_sheet(load_dataset(nnunet_dataset), resolve_suite("blur"))
    # Spacing (1.25, 1.25, 2.5): the 2.5 mm axis is the through-plane one, so the view is the
    # in-plane (10 x 12) slice where the label is largest, with square pixels.
    assert sheet.view.axis == 2 and sheet.view.aspect == pytest.approx(1.0)
    image, label = sheet.cells[0, 0]
    assert image.shape[:2] == (10, 12) and label.shape == (10, 12) and label.any()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("--perturbation", "noize", "--severity", 1), 2, "got 'noize'"),
        (("--perturbation", "gaussian_noise", "--severity", 7), 2, "between 0 and 5"),
        (("--perturbation", "texture_speckle", "--severity", 3), 2, "0..2"),
        (("--suite", "shfit"), 2, "got 'shfit'"),
        (("--suite", "noise", "--perturbation", "spike"), 2, "not both"),
        (("--suite", "noise", "--severity", 2), 2, "--severity goes with --perturbation"),
        (("--suite", "noise", "--out", "x", "--n", 0), 2, "'--n': must be at least 1, got 0"),
        (("--suite", "noise"), 2, "--out DIR, --preview PNG"),
    ],
)
def test_bad_input_is_one_line(images_labels_dataset, tmp_path, args, code, message):
    args = tuple(tmp_path / a if a == "x" else a for a in args)
    if "--preview" not in args and "--out" not in args and code == 1:
        args = (*args, "--out", tmp_path / "o")
    result = invoke("perturb", "--data", images_labels_dataset, *args)
    assert result.exit_code == code, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o").exists()


def test_suite_file_typo_is_one_line(images_labels_dataset, tmp_path):
    suite = tmp_path / "mine.toml"
    suite.write_text('[[perturbation]]\nname = "bias_feild"\n')
    result = invoke("perturb", "--data", images_labels_dataset, "--suite", suite, "--out", tmp_path / "o")
    assert result.exit_code == 1
    assert "mine.toml: perturbation entry 1: unknown perturbation 'bias_feild'" in result.output
    assert len(result.output.strip().splitlines()) == 1
