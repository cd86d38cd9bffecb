"""The fast routes of the perturbations against their textbook formulas, and the statistics hook.

Each reference below is the definition computed the plain way in float64 (full k-space
transforms, the unit-range round trip, the sum of sines, ``F.affine_grid``); the members must
agree with it to float32 precision.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from segrob.data.normalize import robust_range
from segrob.errors import SegrobError
from segrob.perturb import PERTURBATIONS, apply_perturbation, create_perturbation
from segrob.perturb.base import FIELD_BLOCK, random_field
from segrob.perturb.geometry import affine_grid
from segrob.perturb.stats import image_stats


def volume(shape, seed=0, offset=0.0):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 300.0 + offset


def applied(name, image, severity=4, seed=3):
    out, _, record = apply_perturbation(name, image, None, severity=severity, seed=seed)
    return out, record.params


def unit_range(image):
    stats = image_stats(image)
    return (image.double() - stats.low.double()) / stats.span.double(), stats


def close(ours, reference, image):
    """Equal to float32 precision, relative to the image's magnitude."""
    scale = float(image.abs().max())
    torch.testing.assert_close(ours.double(), reference, rtol=0, atol=2e-6 * scale)


def kspace_reference(image, change):
    dims = tuple(range(2, image.ndim))
    k = torch.fft.fftn(image.double(), dim=dims)
    return torch.fft.ifftn(change(k), dim=dims).real


@pytest.mark.parametrize("offset", [0.0, -150.0])  # the DC shortcut and the full spectrum
@pytest.mark.parametrize("shape", [(2, 1, 12, 15, 10), (1, 2, 24, 31)])
def test_spike_is_one_kspace_point(shape, offset):
    image = volume(shape, offset=offset)
    out, params = applied("spike", image)
    spatial = image.shape[2:]
    index = tuple(round(p * n) % n for p, n in zip(params["position"], spatial, strict=True))

    def change(k):
        peak = k.abs().flatten(2).amax(dim=2)
        k = k.clone()
        k[(slice(None), slice(None), *index)] += peak * params["intensity"]
        return k

    close(out, kspace_reference(image, change), image)


@pytest.mark.parametrize("shape", [(1, 1, 16, 30), (2, 1, 9, 31, 13)])  # 4 divides 16, not 31
def test_ghosting_scales_every_nth_line(shape):
    image = volume(shape)
    for seed in range(4):  # several axes
        out, params = applied("ghosting", image, seed=seed)
        axis = 2 + params["axis"]
        lines = torch.arange(image.shape[axis])
        hit = (lines % int(params["ghosts"]) == 0) & (lines != 0)
        view = [-1 if a == axis else 1 for a in range(image.ndim)]
        scale = torch.where(hit, 1.0 - params["intensity"], 1.0).double().view(view)
        close(out, kspace_reference(image, lambda k, s=scale: k * s), image)


@pytest.mark.parametrize("shape", [(1, 1, 17, 30), (2, 1, 12, 9, 15)])
def test_gibbs_ringing_truncates_kspace(shape):
    image = volume(shape)
    out, params = applied("gibbs_ringing", image)
    mask = torch.ones(image.shape[2:], dtype=torch.bool)
    for axis, n in enumerate(image.shape[2:]):
        view = [-1 if a == axis else 1 for a in range(image.ndim - 2)]
        mask = mask & (torch.fft.fftfreq(n).abs() <= params["keep"] / 2.0).view(view)
    close(out, kspace_reference(image, lambda k: k * mask), image)


def test_histogram_warp_is_the_sum_of_sines():
    image = volume((2, 1, 20, 18, 6), offset=-40.0)
    out, params = applied("histogram_warp", image)
    unit, stats = unit_range(image)
    x = unit.clamp(0, 1)
    warp = sum(w * torch.sin(torch.pi * k * x) / (torch.pi * k)
               for k, w in enumerate(params["weights"], start=1))
    close(out, (x + params["strength"] * warp) * stats.span + stats.low, image)


def test_brightness_and_noise_are_their_unit_range_formulas():
    image = volume((1, 2, 40, 60, 70), offset=-100.0)  # more than one block of random values
    unit, stats = unit_range(image)
    span, low = stats.span.double(), stats.low.double()
    out, params = applied("brightness", image)
    close(out, (unit + params["sign"] * params["offset"]) * span + low, image)
    out, params = applied("gaussian_noise", image)
    noise = random_field(params, tuple(image.shape), image).double()
    close(out, (unit + noise * params["variance"] ** 0.5) * span + low, image)
    out, params = applied("speckle_noise", image)
    noise = random_field(params, tuple(image.shape), image).double()
    close(out, (unit + unit.clamp_min(0) * noise * params["variance"] ** 0.5) * span + low, image)


@pytest.mark.parametrize("shape", [[2, 1, 7, 12, 9], [3, 1, 10, 17], [1, 1, 1, 5]])
def test_affine_grid_matches_torch(shape):
    dims = len(shape) - 2
    theta = torch.randn((shape[0], dims, dims + 1), generator=torch.Generator().manual_seed(1))
    expected = F.affine_grid(theta, shape, align_corners=False)
    torch.testing.assert_close(affine_grid(theta, shape), expected, rtol=0, atol=1e-6)


def test_random_field_depends_on_the_seed_alone():
    params = {"field_seed": 12345}
    like = torch.zeros(1)
    shape = (3, FIELD_BLOCK + 1000)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = random_field(params, shape, like)
        torch.set_num_threads(max(2, threads))
        parallel = random_field(params, shape, like)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(single, parallel)
    flat = single.view(-1)
    # The first block is torch's own draw from the seed; later blocks are not repeats of it.
    gen = torch.Generator().manual_seed(12345)
    assert torch.equal(flat[:FIELD_BLOCK], torch.randn(FIELD_BLOCK, generator=gen))
    assert not torch.equal(flat[FIELD_BLOCK:2 * FIELD_BLOCK], flat[:FIELD_BLOCK])
    assert abs(float(flat.mean())) < 0.01 and abs(float(flat.std()) - 1.0) < 0.01
    uniform = random_field(params, shape, like, kind="uniform")
    assert float(uniform.min()) >= 0.0 and float(uniform.max()) < 1.0


def test_image_stats_are_the_robust_range():
    image = volume((2, 3, 10, 11, 12), offset=-60.0)
    stats = image_stats(image)
    low, high = robust_range(image)
    assert torch.equal(stats.low, low) and torch.equal(stats.span, high - low)
    sparse = torch.zeros((1, 1, 16, 16))
    sparse.view(-1)[:3] = 50.0  # the robust range is empty: the full range stands in
    assert float(image_stats(sparse).span) == 50.0
    assert float(image_stats(torch.full((1, 1, 4, 4), 3.0)).span) > 0  # never zero


@pytest.mark.parametrize("name", list(PERTURBATIONS))
def test_given_statistics_give_the_same_result(name):
    image = volume((1, 1, 14, 16, 12), offset=-30.0)
    label = (image[:, 0] > 150).long()
    severity = create_perturbation(name).n_levels
    own = apply_perturbation(name, image, label, severity=severity, seed=5)
    given = apply_perturbation(name, image, label, severity=severity, seed=5,
                               stats=image_stats(image))
    assert torch.equal(own[0], given[0]) and torch.equal(own[1], given[1])


def test_statistics_of_another_batch_are_refused():
    image = volume((2, 1, 8, 8, 8))
    with pytest.raises(SegrobError, match="image_stats"):
        apply_perturbation("gaussian_noise", image, None, severity=1, seed=0,
                           stats=image_stats(image[:1]))


def test_texture_speckle_is_the_speckle_clipped_to_the_image_range():
    # As skimage's random_noise(mode="speckle") clips to [0, 1] for images in [0, 1].
    image = torch.rand(2, 1, 24, 24, generator=torch.Generator().manual_seed(0))
    speckle, params = applied("speckle_noise", image, severity=5)
    clipped, texture_params = applied("texture_speckle", image, severity=2)
    assert params["variance"] == texture_params["variance"] == 0.3
    assert speckle.min() < 0 or speckle.max() > 1  # the unclipped one leaves the range
    low = image.amin(dim=(2, 3), keepdim=True)
    high = image.amax(dim=(2, 3), keepdim=True)
    assert torch.equal(clipped, torch.maximum(torch.minimum(speckle, high), low))
