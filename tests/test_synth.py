"""Synthetic generators: deterministic bytes, blend semantics, 2D and 3D, foreground control."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from segrob.data import load_dataset
from segrob.data.blend import blend_textures
from segrob.data.synth import SynthConfig, generate, synthetic_metadata, write_synthetic
from segrob.data.textures import TEXTURE_FAMILIES, make_texture
from segrob.errors import SegrobError


def _tree_bytes(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(("dims", "fmt"), [(2, "tiff"), (2, "nifti"), (3, "nifti"), (3, "npy")])
def test_same_seed_same_bytes(tmp_path, dims, fmt):
    config = SynthConfig(dims=dims, n=3, size=20 if dims == 3 else 32, seed=7, fmt=fmt)
    write_synthetic(config, tmp_path / "a")
    write_synthetic(config, tmp_path / "b")
    assert _tree_bytes(tmp_path / "a") == _tree_bytes(tmp_path / "b")
    other = SynthConfig(dims=dims, n=3, size=20 if dims == 3 else 32, seed=8, fmt=fmt)
    write_synthetic(other, tmp_path / "c")
    assert _tree_bytes(tmp_path / "a") != _tree_bytes(tmp_path / "c")


def test_written_dataset_reads_back_with_metadata(tmp_path):
    config = SynthConfig(dims=2, n=4, size=32, blend=0.5, level="medium", seed=1)
    write_synthetic(config, tmp_path / "d")
    dataset = load_dataset(tmp_path / "d")
    assert len(dataset) == 4
    meta = json.loads((tmp_path / "d" / "segrob.json").read_text())
    assert meta["generator"] == "segrob.synth2d"
    assert meta["blend"] == 0.5 and meta["level"] == "medium" and meta["seed"] == 1
    assert {c["name"] for c in meta["cases"]} == set(dataset.names)
    case = dataset[0]
    assert case.image.shape == (1, 32, 32)
    assert set(np.unique(case.label)) == {0, 1}
    generated = generate(config)[0]
    np.testing.assert_array_equal(case.label, generated.label)


def test_case_does_not_depend_on_dataset_size():
    small = generate(SynthConfig(n=2, size=32, seed=3))
    large = generate(SynthConfig(n=5, size=32, seed=3))
    np.testing.assert_array_equal(small[1].image, large[1].image)


def test_3d_foreground_fraction_follows_request():
    low = generate(SynthConfig(dims=3, n=3, size=32, fg_fraction=(0.03, 0.04), seed=0))
    high = generate(SynthConfig(dims=3, n=3, size=32, fg_fraction=(0.25, 0.3), seed=0))
    assert max(c.foreground_ratio for c in low) < min(c.foreground_ratio for c in high)
    assert all(0.01 < c.foreground_ratio < 0.06 for c in low)


def test_blend_zero_keeps_foreground_texture_and_blend_near_one_erases_it():
    rng = np.random.default_rng(0)
    fg, bg = rng.normal(size=(16, 16)), rng.normal(size=(16, 16))
    mask = np.zeros((16, 16), bool)
    mask[4:12, 4:12] = True
    np.testing.assert_allclose(blend_textures(fg, bg, mask, 0.0)[mask], fg[mask], rtol=1e-6)
    np.testing.assert_allclose(blend_textures(fg, bg, mask, 0.0)[~mask], bg[~mask], rtol=1e-6)
    nearly = blend_textures(fg, bg, mask, 0.999)
    assert np.abs(nearly[mask] - bg[mask]).max() < 0.01


@pytest.mark.parametrize("family", sorted(TEXTURE_FAMILIES))
def test_textures_are_standardised_and_seeded(family):
    a = make_texture(family, (40, 40), np.random.default_rng(1))
    b = make_texture(family, (40, 40), np.random.default_rng(1))
    c = make_texture(family, (40, 40), np.random.default_rng(2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert abs(a.mean()) < 1e-4 and abs(a.std() - 1.0) < 1e-3


def test_bad_configs_are_refused():
    with pytest.raises(SegrobError, match="dims"):
        SynthConfig(dims=4).check()
    with pytest.raises(SegrobError, match="blend"):
        SynthConfig(blend=1.0).check()
    with pytest.raises(SegrobError, match="unknown texture family 'wood'"):
        SynthConfig(families=("wood", "fractal")).check()
    with pytest.raises(SegrobError, match="2D only"):
        SynthConfig(dims=3, families=("photo", "fractal")).check()


def test_paper_texture_pair_and_mask_set_are_shared_across_blends():
    base = SynthConfig(n=3, size=32, seed=0, texture_pair=("cellular", "fractal"), mask_seed=5)
    low, high = generate(replace(base, blend=0.1)), generate(replace(base, blend=0.8))
    for a, b in zip(low, high, strict=True):
        assert np.array_equal(a.label, b.label) and not np.array_equal(a.image, b.image)
    assert not np.array_equal(low[0].label, low[1].label)
    # Outside the mask the image is the background crop alone: at any blend, the same pixels.
    outside = low[0].label == 0
    assert np.array_equal(low[0].image[0][outside], high[0].image[0][outside])
    # Every case is a different crop of the one background sheet.
    assert not np.array_equal(low[0].image[0][:8, :8], low[1].image[0][:8, :8])
    meta = synthetic_metadata(base.check(), [{"foreground_ratio": 0.1}])
    assert meta["texture_pair"] == ["cellular", "fractal"] and meta["mask_seed"] == 5
    with pytest.raises(SegrobError, match="two different families"):
        SynthConfig(texture_pair=("cellular", "cellular")).check()
