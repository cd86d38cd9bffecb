"""Texture distance: the definition, its edge cases, and monotonic fall with the blend."""

from __future__ import annotations

import json

import numpy as np
import pytest

from segrob.data.blend import COMPLEXITY_LEVELS
from segrob.data.complexity import (
    complexity_level,
    kl_bits,
    measure_complexity,
    texture_distance,
)
from segrob.data.synth import SynthConfig, generate
from segrob.errors import SegrobError


def test_kl_bits_matches_the_definition():
    p = np.array([4, 4, 0, 8])
    q = np.array([8, 2, 6, 0])
    # only bins 0 and 1 are non-zero in both: .25*log2(.25/.5) + .25*log2(.25/.125)
    assert kl_bits(p, q) == pytest.approx(0.25 * -1 + 0.25 * 1)
    assert kl_bits(p, p) == 0.0


def test_identical_texture_inside_and_out_has_near_zero_distance():
    rng = np.random.default_rng(0)
    image = rng.normal(size=(1, 96, 96))
    label = np.zeros((96, 96), np.int32)
    label[20:70, 20:70] = 1
    assert texture_distance(image, label) < 0.05


def test_no_foreground_gives_none_and_is_counted():
    cases = generate(SynthConfig(n=2, size=32, seed=0))
    cases[0].label[:] = 0
    report = measure_complexity(cases)
    assert report.cases[0].texture_distance is None
    assert report.skipped == 1
    assert report.summary["n"] == 1


@pytest.mark.parametrize("dims", [2, 3])
def test_distance_falls_monotonically_with_blend(dims):
    size, n = (96, 24) if dims == 2 else (32, 6)
    medians = []
    for blend in (0.1, 0.5, 0.8):
        cases = generate(SynthConfig(dims=dims, n=n, size=size, blend=blend, seed=11))
        medians.append(measure_complexity(cases).summary["median"])
    assert medians[0] > medians[1] > medians[2]


def test_named_levels_are_measured_as_themselves():
    for level, blend in COMPLEXITY_LEVELS.items():
        cases = generate(SynthConfig(n=30, size=128, blend=blend, seed=5))
        assert measure_complexity(cases).level == level


def test_level_thresholds():
    assert complexity_level(None) is None
    assert complexity_level(2.0) == "low"
    assert complexity_level(0.1) == "medium"
    assert complexity_level(0.01) == "high"


def test_resize_256_is_the_identity_at_256_px():
    cases = generate(SynthConfig(n=1, size=256, blend=0.5, seed=2))
    image, label = cases[0].image, cases[0].label
    assert texture_distance(image, label, resize=256) == pytest.approx(texture_distance(image, label))


def test_resize_256_measures_the_upsampled_image_and_bilinear_label():
    from skimage.feature import local_binary_pattern
    from skimage.transform import resize

    case = generate(SynthConfig(n=1, size=64, blend=0.3, seed=4))[0]
    low, high = np.percentile(case.image, [0.5, 99.5])
    grey = np.round((np.clip(case.image[0], low, high) - low) / (high - low) * 255.0)
    # The reference, by hand: quantise, resize to 256, call foreground every pixel the bilinearly
    # resized label leaves above 0 (the authors' rule), and take KL of the two LBP histograms.
    big = np.round(resize(grey, (256, 256), anti_aliasing=True, preserve_range=True)).astype(np.uint8)
    mask = resize(case.label.astype(float), (256, 256), order=1, anti_aliasing=False) > 0
    codes = local_binary_pattern(big, 24, 3, method="uniform").astype(int)
    expected = kl_bits(np.bincount(codes[mask], minlength=26), np.bincount(codes[~mask], minlength=26))
    assert texture_distance(case.image, case.label, resize=256) == pytest.approx(expected, abs=1e-9)
    assert mask.sum() > (case.label > 0).sum() * 16  # the bilinear label grows the foreground


def test_level_thresholds_follow_the_resize_setting():
    assert complexity_level(0.07, resize=256) == "medium"
    assert complexity_level(0.07) == "high"
    with pytest.raises(SegrobError, match="--resize takes 256"):
        complexity_level(0.1, resize=128)
    cases = generate(SynthConfig(n=4, size=64, seed=1))
    report = measure_complexity(cases, resize=256)
    data = report.to_dict()
    assert data["resize"] == 256 and "256 x 256" in data["method"]
    assert data["thresholds_bits"]["low"] == "TD >= 0.27"
    assert measure_complexity(cases).to_dict()["resize"] is None


def test_cli_resize_says_which_measure_it_used(tmp_path):
    from segrob_cli.main import app
    from typer.testing import CliRunner

    from segrob.data.synth import write_synthetic

    folder = tmp_path / "d"
    folder.mkdir()
    meta = write_synthetic(SynthConfig(n=3, size=32, seed=0), folder)
    assert meta["texture_distance"]["resize"] == 256 and meta["texture_distance"]["cases"] == 3
    result = CliRunner().invoke(app, ["complexity", "--data", str(folder), "--resize", "256", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["resize"] == 256
    result = CliRunner().invoke(app, ["complexity", "--data", str(folder), "--resize", "128"])
    assert result.exit_code == 2 and "--resize takes 256" in result.stderr
