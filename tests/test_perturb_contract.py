"""Contract tests over every registered perturbation, 2D and 3D, on tiny synthetic cases."""

from __future__ import annotations

import itertools

import pytest
import torch

from segrob.data.synth import SynthConfig, generate
from segrob.errors import SegrobError
from segrob.perturb import (
    PERTURBATIONS,
    apply_perturbation,
    create_perturbation,
    list_perturbations,
)

CASES = {
    2: generate(SynthConfig(dims=2, n=1, size=48, seed=4))[0],
    3: generate(SynthConfig(dims=3, n=1, size=24, seed=4))[0],
}
PAIRS = [(name, dims) for name, cls in PERTURBATIONS.items() for dims in cls.spatial_dims]
INTENSITY = [p for p in PAIRS if PERTURBATIONS[p[0]].kind == "intensity"]
GEOMETRIC = [p for p in PAIRS if PERTURBATIONS[p[0]].kind == "geometric"]


def batch(dims: int, scale: float = 1000.0, offset: float = -200.0):
    case = CASES[dims]
    # CT-like units on purpose: everything must be relative to the robust range.
    image = torch.from_numpy(case.image)[None] * scale + offset
    label = torch.from_numpy(case.label)[None].long()
    return image, label


def top(name: str) -> int:
    return create_perturbation(name).n_levels


def psnr(clean: torch.Tensor, changed: torch.Tensor) -> float:
    span = float(clean.max() - clean.min())
    mse = float(((clean.double() - changed.double()) ** 2).mean())
    return float("inf") if mse == 0 else 10.0 * torch.log10(torch.tensor(span**2 / mse)).item()


def test_registry_covers_the_catalog():
    families = {cls.family for cls in PERTURBATIONS.values()}
    assert families == {"noise", "blur", "shift", "artifact", "geometry", "texture"}
    assert list_perturbations() == list(PERTURBATIONS)
    for name, cls in PERTURBATIONS.items():
        member = cls()
        assert member.name == name and member.kind in ("intensity", "geometric")
        assert set(member.spatial_dims) <= {2, 3} and member.description and member.modalities
        assert member.n_levels == (2 if member.family == "texture" else 5)
        # Every parameter has one nominal value per level.
        assert all(len(values) == member.n_levels for values in member.levels.values()), name


@pytest.mark.parametrize(("name", "dims"), PAIRS)
def test_shape_dtype_determinism_and_identity(name, dims):
    image, label = batch(dims)
    severity = top(name)
    out, out_label, applied = apply_perturbation(name, image, label, severity=severity, seed=11)
    assert out.shape == image.shape and out.dtype == image.dtype and out.device == image.device
    assert torch.isfinite(out).all()
    assert applied.name == name and applied.severity == severity and applied.seed == 11
    again, _, applied_again = apply_perturbation(name, image, label, severity=severity, seed=11)
    assert torch.equal(out, again) and applied.params == applied_again.params
    assert not torch.equal(out, image)
    same, same_label, nothing = apply_perturbation(name, image, label, severity=0, seed=11)
    assert same is image and same_label is label and nothing.params == {}
    if create_perturbation(name).kind == "intensity":
        assert torch.equal(out_label, label)
    else:
        assert out_label.shape == label.shape and out_label.dtype == label.dtype
        assert set(out_label.unique().tolist()) <= set(label.unique().tolist())


@pytest.mark.parametrize("name", list(PERTURBATIONS))
def test_seeds_matter_exactly_where_something_is_drawn(name):
    image, label = batch(2)
    member = create_perturbation(name)
    draws = [apply_perturbation(name, image, label, severity=top(name), seed=s)
             for s in range(1, 5)]
    nominal = member.severity_params(top(name))
    if all(d[2].params == nominal for d in draws):
        # Nothing drawn: the seed must not matter.
        assert all(torch.equal(draws[0][0], d[0]) for d in draws[1:])
    else:
        assert any(not torch.equal(draws[0][0], d[0]) for d in draws[1:])


@pytest.mark.parametrize(("name", "dims"), INTENSITY)
def test_quality_falls_with_severity(name, dims):
    image, label = batch(dims)
    values = [psnr(image, apply_perturbation(name, image, label, severity=s, seed=5)[0])
              for s in range(1, top(name) + 1)]
    assert all(a >= b - 0.05 for a, b in itertools.pairwise(values)), values
    assert values[0] > values[-1] + 0.5, values


@pytest.mark.parametrize(("name", "dims"), GEOMETRIC)
def test_geometric_label_follows_image(name, dims):
    _, label = batch(dims)
    image = label[:, None].float() * 100.0  # the image is the label: both must move together
    moved, moved_label, _ = apply_perturbation(name, image, label, severity=4, seed=3)
    assert not torch.equal(moved_label, label)
    agreement = ((moved[:, 0] > 50) == (moved_label > 0)).float().mean()
    assert agreement > 0.97


def test_affine_rotation_is_rigid_on_a_non_square_image():
    image = torch.zeros((1, 1, 40, 80))
    yy, xx = torch.meshgrid(torch.arange(40.0), torch.arange(80.0), indexing="ij")
    disc = ((yy - 19.5) ** 2 + (xx - 39.5) ** 2 <= 10.0**2)
    image[0, 0][disc] = 1.0
    label = disc.long()[None]
    _, moved, applied = apply_perturbation("affine", image, label, severity=5, seed=2)
    # A rotated disc is still a disc, its area scaled by zoom^2 only.
    area = moved.sum().item() / applied.params["zoom"] ** 2
    assert abs(area - label.sum().item()) / label.sum().item() < 0.08
    ys, xs = torch.nonzero(moved[0], as_tuple=True)
    height, width = ys.max() - ys.min(), xs.max() - xs.min()
    assert abs(height - width) <= 2  # not stretched into an ellipse


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_other_float_dtypes_and_label_types_are_kept(dtype):
    for dims in (2, 3):
        image, label = batch(dims, scale=1.0, offset=0.0)
        image, label = image.to(dtype), label.to(torch.int32)
        for name in PERTURBATIONS:
            out, out_label, _ = apply_perturbation(name, image, label, severity=1, seed=0)
            assert out.dtype == dtype and out_label.dtype == torch.int32, name
            assert torch.isfinite(out.float()).all(), name


def test_units_do_not_matter():
    image, label = batch(2, scale=1.0, offset=0.0)
    ct, _ = batch(2, scale=1000.0, offset=-200.0)
    for name in ("gaussian_noise", "bias_field", "gamma_compression", "ghosting", "jpeg", "affine"):
        a = apply_perturbation(name, image, label, severity=3, seed=9)[0]
        b = apply_perturbation(name, ct, label, severity=3, seed=9)[0]
        torch.testing.assert_close((b + 200.0) / 1000.0, a, atol=2e-3, rtol=1e-3)


@pytest.mark.parametrize("dims", [2, 3])
def test_constant_and_nearly_constant_images_stay_finite(dims):
    shape = (1, 1, *(16,) * dims)
    constant = torch.full(shape, 7.0)
    sparse = torch.zeros(shape)
    sparse.view(-1)[:3] = 50.0  # 3 bright voxels: the 0.5-99.5 percentile range is empty
    label = torch.zeros((1, *(16,) * dims), dtype=torch.long)
    for name, cls in PERTURBATIONS.items():
        for image in (constant, sparse):
            out = apply_perturbation(name, image, label, severity=cls().n_levels, seed=0)[0]
            assert torch.isfinite(out).all(), name
    # The full range stands in for an empty robust range, so noise still shows.
    noisy = apply_perturbation("gaussian_noise", sparse, label, severity=5, seed=0)[0]
    assert (noisy - sparse).std() > 1.0


def test_jpeg_compresses_a_volume_slice_by_slice():
    # Five grey levels, each common: the robust range is [0, 1] for a slice and for the volume.
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 20), torch.linspace(0, 1, 28), indexing="ij")
    plane = torch.round(4 * (0.5 * xx + 0.5 * torch.sin(6 * yy) ** 2)) / 4
    image = plane[None, None]
    volume = plane.expand(6, -1, -1)[None, None].contiguous()  # (1, 1, D, H, W), same slices
    flat = apply_perturbation("jpeg", image, None, severity=4, seed=0)[0]
    out = apply_perturbation("jpeg", volume, None, severity=4, seed=0)[0]
    assert not torch.equal(flat, image)
    for depth in range(volume.shape[2]):
        torch.testing.assert_close(out[:, :, depth], flat, atol=1e-5, rtol=0)


def test_background_blur_keeps_the_foreground():
    image, label = batch(2)
    out = apply_perturbation("texture_blur_background", image, label, severity=2, seed=0)[0]
    foreground = (label > 0)[:, None]
    assert torch.equal(out[foreground], image[foreground])
    assert not torch.equal(out[~foreground], image[~foreground])
    with pytest.raises(SegrobError, match="needs a label"):
        apply_perturbation("texture_blur_background", image, None, severity=1, seed=0)


def test_bad_names_severities_and_shapes():
    image, label = batch(2)
    with pytest.raises(SegrobError, match=r"unknown perturbation 'noize'.*gaussian_noise"):
        apply_perturbation("noize", image, label, severity=1, seed=0)
    for severity in (6, -1, 2.0, True):
        with pytest.raises(SegrobError, match=r"0 = clean, 1..5"):
            apply_perturbation("gaussian_noise", image, label, severity=severity, seed=0)
    with pytest.raises(SegrobError, match=r"1..2"):
        apply_perturbation("texture_speckle", image, label, severity=3, seed=0)
    with pytest.raises(SegrobError, match="2D or 3D"):
        apply_perturbation("gaussian_noise", image[0], label, severity=1, seed=0)
    with pytest.raises(SegrobError, match="float tensor"):
        apply_perturbation("gaussian_noise", image.long(), label, severity=1, seed=0)
    with pytest.raises(SegrobError, match="does not match"):
        apply_perturbation("affine", image, label[:, :-1], severity=1, seed=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", list(PERTURBATIONS))
def test_same_draws_on_cuda(name):
    image, label = batch(3, scale=1.0, offset=0.0)
    cpu = apply_perturbation(name, image, label, severity=top(name), seed=7)
    gpu = apply_perturbation(name, image.cuda(), label.cuda(), severity=top(name), seed=7)
    assert gpu[0].device.type == "cuda" and cpu[2].params == gpu[2].params
    torch.testing.assert_close(gpu[0].cpu(), cpu[0], atol=2e-3, rtol=1e-3)
    # Labels of geometric members may differ where a sample point sits on a voxel boundary.
    assert (gpu[1].cpu() == cpu[1]).float().mean() > 0.99
