"""Spacing-aware perturbations: lengths in mm follow the voxel spacing, resolution loss thickens
the slices of an anisotropic volume, and 1 mm (or no spacing) is today's voxel behaviour."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from segrob.data.synth import SynthConfig, generate
from segrob.errors import SegrobError
from segrob.perturb import PERTURBATIONS, apply_perturbation, create_perturbation
from segrob.perturb.blur import line_kernel
from segrob.perturb.filters import gaussian_blur

CASES = {
    2: generate(SynthConfig(dims=2, n=1, size=40, seed=7))[0],
    3: generate(SynthConfig(dims=3, n=1, size=20, seed=7))[0],
}


def batch(dims: int):
    case = CASES[dims]
    return torch.from_numpy(case.image)[None] * 500.0, torch.from_numpy(case.label)[None].long()


@pytest.mark.parametrize("name", list(PERTURBATIONS))
def test_one_mm_is_no_spacing(name):
    for dims in PERTURBATIONS[name].spatial_dims:
        image, label = batch(dims)
        plain = apply_perturbation(name, image, label, severity=2, seed=3)
        one_mm = apply_perturbation(name, image, label, severity=2, seed=3, spacing=(1.0,) * dims)
        assert one_mm[2] == plain[2]  # same record: no spacing key, same draws
        assert torch.equal(one_mm[0], plain[0]) and torch.equal(one_mm[1], plain[1])


def test_every_parameter_has_a_unit_and_lengths_are_in_mm():
    for name, cls in PERTURBATIONS.items():
        described = create_perturbation(name).to_dict()
        assert set(described["units"]) == set(cls.levels) and all(described["units"].values()), name
        assert described["cpu_dependent_bits"] is cls.cpu_dependent_bits, name
    assert PERTURBATIONS["gaussian_blur"].units == {"sigma": "mm"}
    assert PERTURBATIONS["elastic"].units == {"displacement": "mm"}
    assert PERTURBATIONS["motion_blur"].units == {"length": "mm"}


def test_blur_sigma_is_in_mm_along_each_axis():
    image, label = batch(3)
    out, _, applied = apply_perturbation("gaussian_blur", image, label, severity=3, seed=0,
                                         spacing=(0.5, 1.0, 4.0))
    sigma = applied.params["sigma"]
    assert applied.params["spacing"] == [0.5, 1.0, 4.0]
    assert torch.allclose(out, gaussian_blur(image, [sigma / 0.5, sigma, sigma / 4.0]), atol=1e-3)
    # Isotropic 2 mm voxels: a 2.2 mm sigma is 1.1 voxels.
    image2, label2 = batch(2)
    out2, _, _ = apply_perturbation("gaussian_blur", image2, label2, severity=3, seed=0, spacing=(2.0, 2.0))
    assert torch.allclose(out2, gaussian_blur(image2, sigma / 2.0), atol=1e-3)


def test_motion_length_in_mm_spans_fewer_voxels_on_coarse_axes():
    along_rows = line_kernel(9, torch.tensor([1.0, 0.0]), (1.0, 3.0))
    along_cols = line_kernel(9, torch.tensor([0.0, 1.0]), (1.0, 3.0))
    assert along_rows.shape == (9, 1) and along_cols.shape == (1, 3)
    assert torch.equal(line_kernel(9, torch.tensor([0.6, 0.8])),
                       line_kernel(9, torch.tensor([0.6, 0.8]), None))


def test_elastic_displacement_is_in_mm():
    elastic = create_perturbation("elastic")
    image, label = batch(2)
    params = {"displacement": 6.0, "field_seed": 11}
    coarse = elastic.apply(image, label, {**params, "spacing": [2.0, 2.0]})
    voxels = elastic.apply(image, label, {"displacement": 3.0, "field_seed": 11})
    assert torch.allclose(coarse[0], voxels[0], atol=1e-3) and torch.equal(coarse[1], voxels[1])


def test_affine_is_rigid_in_mm_on_anisotropic_pixels():
    """A physically square image stored with 2 mm columns, rotated, matches the rotation of the
    same image stored with 1 mm pixels; rotating voxel indices would shear it."""
    affine = create_perturbation("affine")
    square = torch.zeros(1, 1, 64, 64)
    square[..., 16:48, 28:36] = 1.0  # a bar, so a shear shows
    params = {"degrees": 30.0, "axis": None, "shift": [0.0, 0.0], "zoom": 1.0}
    truth = affine.apply(square, None, params)[0]
    coarse = F.avg_pool2d(square, (1, 2))  # 64 x 32 pixels of 1 x 2 mm
    back = lambda x: F.interpolate(x, size=(64, 64), mode="bilinear", align_corners=False)  # noqa: E731
    in_mm = back(affine.apply(coarse, None, {**params, "spacing": [1.0, 2.0]})[0])
    in_voxels = back(affine.apply(coarse, None, params)[0])
    assert (in_mm - truth).abs().mean() < 0.5 * (in_voxels - truth).abs().mean()


def test_resolution_loss_thickens_slices_of_anisotropic_volumes():
    image, label = batch(3)
    flat = image.mean(dim=4, keepdim=True).expand_as(image).contiguous()  # constant along axis 2
    out, _, applied = apply_perturbation("resolution_loss", flat, label, severity=4, seed=0,
                                         spacing=(0.8, 0.8, 4.0))
    assert applied.params["axes"] == [2]
    assert torch.allclose(out, flat, atol=1e-3)  # in-plane detail untouched
    isotropic, _, record = apply_perturbation("resolution_loss", flat, label, severity=4, seed=0,
                                              spacing=(1.5, 1.5, 1.5))
    assert "axes" not in record.params and not torch.allclose(isotropic, flat, atol=1e-3)


def test_a_spacing_that_does_not_fit_is_refused():
    image, label = batch(2)
    with pytest.raises(SegrobError, match=r"gaussian_blur: spacing must be 2 positive numbers"):
        apply_perturbation("gaussian_blur", image, label, severity=1, seed=0, spacing=(1.0, 1.0, 1.0))
    with pytest.raises(SegrobError, match=r"spacing must be 2 positive numbers"):
        apply_perturbation("gaussian_blur", image, label, severity=1, seed=0, spacing=(1.0, 0.0))


@pytest.mark.parametrize("name", [n for n, cls in PERTURBATIONS.items() if cls.uses_spacing])
def test_spacing_aware_members_keep_shapes_and_differ_from_voxel_units(name):
    image, label = batch(3)
    spacing = (0.7, 0.7, 3.5)
    out, out_label, applied = apply_perturbation(name, image, label, severity=3, seed=5, spacing=spacing)
    assert out.shape == image.shape and out.dtype == image.dtype and out_label.shape == label.shape
    voxels, _, _ = apply_perturbation(name, image, label, severity=3, seed=5)
    assert not torch.allclose(out, voxels)
    again, _, _ = apply_perturbation(name, image, label, severity=3, seed=5, spacing=spacing)
    assert torch.equal(out, again)
    # The record alone reproduces it.
    assert torch.equal(create_perturbation(name).apply(image, label, applied.params)[0], out)
