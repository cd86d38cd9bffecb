"""Parity and calibration inputs: sizes fitted to what a model accepts, normalised as deployed."""

from __future__ import annotations

import numpy as np

from segrob.onnx.samples import SizeRules, fit_case, stack_groups, synthetic_samples

ZSCORE = {"method": "zscore"}


def test_target_sizes_follow_the_model_rules():
    unet = SizeRules(spatial_dims=2, size_multiple=8, min_size=16)
    assert unet.target((30, 8)) == (32, 16)  # rounded up to 8, at least 16
    patched = SizeRules(spatial_dims=3, size_multiple=4, min_size=8, window=(16, 16, 16))
    assert patched.target((40, 10, 16)) == (16, 12, 16)  # capped by the training patch
    fixed = SizeRules(spatial_dims=2, size_multiple=4, fixed_size=(16, 16))
    assert fixed.target((40, 3)) == (16, 16)


def test_fit_crops_centre_pads_end_and_keeps_the_region():
    rng = np.random.default_rng(0)
    image = rng.normal(50.0, 10.0, size=(1, 20, 6)).astype(np.float32)
    label = np.zeros((20, 6), np.int32)
    label[5:15] = 1
    rules = SizeRules(spatial_dims=2, size_multiple=4, min_size=8, fixed_size=(16, 8))
    sample = fit_case("a", image, label, rules, ZSCORE)
    assert sample.image.shape == (1, 16, 8) and sample.image.dtype == np.float32
    assert sample.region == (slice(0, 16), slice(0, 6))
    assert sample.label.shape == (16, 6)
    np.testing.assert_array_equal(sample.label, label[2:18])  # centre crop of 20 -> 16
    assert np.all(sample.image[:, :, 6:] == 0)  # padding is the normalised mean
    kept = sample.image[0, :, :6]
    whole = (image[0] - image[0].mean()) / image[0].std()
    np.testing.assert_allclose(kept, whole[2:18], atol=1e-5)  # normalised before cropping


def test_synthetic_samples_and_batches():
    rules = SizeRules(spatial_dims=2, size_multiple=16, min_size=32)
    samples, described = synthetic_samples(rules, in_channels=2, normalization=ZSCORE, n=3)
    assert "3 synthetic" in described
    assert all(s.image.shape == (2, 64, 64) for s in samples)
    assert all(s.label is not None and s.label.max() >= 1 for s in samples)
    groups = stack_groups(samples, batch_size=2)
    assert [g[0] for g in groups] == [[0, 1], [2]]
    assert groups[0][1].shape == (2, 2, 64, 64)
