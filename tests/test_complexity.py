"""Texture distance: the definition, its edge cases, and monotonic fall with the blend."""

from __future__ import annotations

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
