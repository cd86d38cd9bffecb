"""The fast paths of the perturbations against the formulas they replaced, bit for bit.

Saved audits record what each seed produced, so a faster route must give the same bits, not
merely close values. Each ``old_*`` below is the previous implementation, kept here as the
reference; the comparison is ``torch.equal`` and the raw bits (which also tell -0.0 from 0.0).
"""

from __future__ import annotations

import math
import multiprocessing
import os

import pytest
import torch
import torch.nn.functional as F

from segrob.errors import SegrobError
from segrob.perturb import PERTURBATIONS, apply_perturbation, create_perturbation, filters, geometry
from segrob.perturb.base import FIELD_BLOCK, random_field, voxel_spacing
from segrob.perturb.seeding import derive_seed, generator
from segrob.perturb.stats import image_stats, stats_for

SEEDS = (0, 5, 2**40 + 1)
SHAPES = [(2, 1, 33, 40), (1, 2, 24, 31), (2, 1, 12, 14, 10), (1, 1, 12, 9, 16),
          (1, 2, 9, 11, 7), (3, 1, 7, 12, 13)]
BITS = {torch.float64: torch.int64, torch.float32: torch.int32, torch.float16: torch.int16}


def same_bits(new, old):
    assert new.dtype == old.dtype and new.shape == old.shape
    assert torch.equal(new, old)
    if new.dtype in BITS:
        assert torch.equal(new.view(BITS[new.dtype]), old.view(BITS[old.dtype]))


def image_of(shape, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(shape, generator=g) * 500.0 - 120.0
    image[..., :2] = -120.0  # a background at the minimum, as scans have
    return image.to(dtype)


def label_of(shape, kind="long", seed=0):
    g = torch.Generator().manual_seed(seed + 1)
    ids = (torch.rand((shape[0], *shape[2:]), generator=g) * 4).long()
    if kind == "uint8":
        return ids.to(torch.uint8)
    if kind == "bool":
        return ids > 1
    if kind == "ignore":  # an ignore index below 0: int16 carries it
        return ids.where(ids != 3, torch.tensor(-1)).to(torch.int32)
    if kind == "huge":  # beyond float32's whole numbers: the float copy rounds them, as before
        return ids * (2**24 + 3) + 1
    return ids


def drawn(name, image, severity, seed):
    return create_perturbation(name).make_params(severity, generator(seed),
                                                 image_shape=tuple(image.shape))


def old_warp(image, label, grid, stats):
    low = stats_for(image, stats).low
    moved = F.grid_sample(image.float() - low, grid, mode="bilinear", padding_mode="zeros",
                          align_corners=False).add_(low)
    out_label = None
    if label is not None:
        out_label = F.grid_sample(label[:, None].float(), grid, mode="nearest",
                                  padding_mode="zeros", align_corners=False)
        out_label = out_label[:, 0].to(label.dtype)
    return moved.to(image.dtype), out_label


def old_affine(image, label, params, stats):
    dims = image.ndim - 2
    rotation = geometry._rotation(dims, params["degrees"], params["axis"] or [0, 0, 1])
    rotation = rotation / params["zoom"]
    extent = [n * s for n, s in zip(image.shape[2:], voxel_spacing(params, dims), strict=True)]
    half = torch.tensor([e / 2.0 for e in reversed(extent)])
    matrix = rotation * half[None, :] / half[:, None]
    theta = torch.cat([matrix, torch.tensor(params["shift"])[:, None]], dim=1)
    theta = theta.to(image.device, torch.float32).expand(image.shape[0], -1, -1)
    return old_warp(image, label, geometry.affine_grid(theta, list(image.shape)), stats)


def old_elastic(image, label, params, stats):
    dims = image.ndim - 2
    spatial = image.shape[2:]
    coarse = random_field(params, (1, dims, *([6] * dims)), image)
    mode = "bicubic" if dims == 2 else "trilinear"
    field = F.interpolate(coarse, size=tuple(spatial), mode=mode, align_corners=True)
    field = field / field.abs().amax().clamp_min(1e-6)
    voxels = [params["displacement"] / s for s in voxel_spacing(params, dims)]
    scale = torch.tensor([2.0 * v / s for v, s in zip(reversed(voxels), reversed(spatial),
                                                      strict=True)])
    displacement = field[0].flip(0).movedim(0, -1) * scale
    theta = torch.eye(dims, dims + 1)[None].expand(image.shape[0], -1, -1)
    grid = geometry.affine_grid(theta, list(image.shape)).add_(displacement)
    return old_warp(image, label, grid, stats)


def check_geometry(name, image, label, severity, seed, use_stats):
    stats = image_stats(image) if use_stats else None
    new_image, new_label, _ = apply_perturbation(name, image, label, severity=severity,
                                                 seed=seed, stats=stats)
    params = drawn(name, image, severity, seed)
    old = old_affine if name == "affine" else old_elastic
    old_image, old_label = old(image, label, params, stats)
    same_bits(new_image, old_image)
    if label is None:
        assert new_label is None
    else:
        same_bits(new_label, old_label)


@pytest.mark.parametrize("use_stats", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", ["affine", "elastic"])
def test_geometry_samples_as_grid_sample_did(name, shape, use_stats):
    image = image_of(shape)
    for severity in (1, 3, 5):
        for seed in SEEDS:
            check_geometry(name, image, label_of(shape, seed=seed), severity, seed, use_stats)


@pytest.mark.parametrize("kind", ["uint8", "bool", "ignore", "huge", None])
def test_every_label_dtype_moves_as_before(kind):
    for shape in ((2, 1, 10, 12, 9), (1, 1, 16, 13)):
        label = None if kind is None else label_of(shape, kind)
        for name in ("affine", "elastic"):
            check_geometry(name, image_of(shape), label, 4, 7, True)


@pytest.mark.parametrize("threads", [1, 3, 4])
def test_a_single_volume_split_across_threads_is_unchanged(threads):
    """One volume is sampled as slabs of planes, one per thread, where the depth divides."""
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        for shape in ((1, 1, 12, 10, 11), (1, 2, 12, 7, 9), (1, 1, 13, 8, 8)):
            for name in ("affine", "elastic"):
                check_geometry(name, image_of(shape, dtype=torch.float64), label_of(shape), 5, 3,
                               False)
    finally:
        torch.set_num_threads(before)


def test_rounding_halfway_and_far_outside_as_grid_sample():
    """Grid points exactly between voxels (round half to even), far outside, on the edges."""
    label = (torch.arange(2 * 6 * 5 * 4) % 7).view(2, 6, 5, 4)
    axes = [torch.linspace(-1.5, 1.5, 25), torch.tensor([-3.0, -1.0, -0.8, 0.0, 0.6, 1.0, 7.0])]
    for values in axes:
        grid = torch.stack(torch.meshgrid(values, values, values, indexing="ij"), dim=-1)
        grid = grid[None].expand(2, -1, -1, -1, -1)
        expected = F.grid_sample(label[:, None].float(), grid, mode="nearest",
                                 padding_mode="zeros", align_corners=False)[:, 0].long()
        same_bits(geometry._nearest(label, grid), expected)
        same_bits(geometry._nearest(label, grid.contiguous()), expected)


def old_field(params, shape):
    """The random field as drawn before: block k from its own seed, one after another."""
    field = torch.empty(shape, dtype=torch.float32)
    flat = field.view(-1)
    for start in range(0, flat.numel(), FIELD_BLOCK):
        seed = params["field_seed"] if start == 0 else \
            derive_seed(params["field_seed"], "block", start // FIELD_BLOCK)
        flat[start:start + FIELD_BLOCK].normal_(generator=generator(seed))
    return field


def old_gaussian_noise(image, params, stats):
    stats = stats_for(image, stats)
    noise = old_field(params, tuple(image.shape))
    noise.mul_(stats.span * params["variance"] ** 0.5)
    if noise.dtype == image.dtype:
        return noise.add_(image)
    return (image + noise).to(image.dtype)


# Blocks straddle images and channels: 2 x 3 x 95 x 70 is two blocks and a part.
NOISE_SHAPES = [(2, 1, 33, 40), (16, 1, 64, 64), (2, 3, 95, 70), (1, 1, 12, 14, 10),
                (2, 3, 20, 70, 33), (1, 1, 48, 48, 48)]


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("shape", NOISE_SHAPES)
def test_gaussian_noise_is_scaled_and_added_as_before(shape, threads):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        for dtype in (torch.float32, torch.float64):
            image = image_of(shape, dtype=dtype)
            for use_stats in (False, True):
                stats = image_stats(image) if use_stats else None
                for severity, seed in ((1, 0), (3, 5), (5, 2**40 + 1)):
                    new, _, _ = apply_perturbation("gaussian_noise", image, None,
                                                   severity=severity, seed=seed, stats=stats)
                    params = drawn("gaussian_noise", image, severity, seed)
                    same_bits(new, old_gaussian_noise(image, params, stats))
    finally:
        torch.set_num_threads(before)


def test_a_non_contiguous_image_takes_the_plain_path():
    image = image_of((2, 1, 20, 30)).transpose(2, 3)
    new, _, _ = apply_perturbation("gaussian_noise", image, None, severity=2, seed=4)
    same_bits(new, old_gaussian_noise(image, drawn("gaussian_noise", image, 2, 4), None))


def _draw_in_child(queue):
    queue.put(random_field({"field_seed": 77}, (3, FIELD_BLOCK + 5), torch.zeros(1)).numpy())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX only")
def test_a_forked_child_draws_with_threads_of_its_own():
    """The draw threads are kept between fields; a child forked after a draw starts its own."""
    before = torch.get_num_threads()
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_draw_in_child, args=(queue,), daemon=True)
    try:
        torch.set_num_threads(max(2, before))
        parent = random_field({"field_seed": 77}, (3, FIELD_BLOCK + 5), torch.zeros(1))
        child.start()
        drawn_there = torch.from_numpy(queue.get(timeout=60))
        child.join(timeout=60)
    finally:
        torch.set_num_threads(before)
        if child.is_alive():
            child.kill()
    assert child.exitcode == 0
    same_bits(drawn_there, parent)


def test_the_wide_index_routes_for_large_volumes(monkeypatch):
    """Volumes beyond 2^24 (float64 index) and 2^31 voxels (int64 index), shrunk to test size."""
    monkeypatch.setattr(geometry, "FLOAT32_WHOLE", 100)
    monkeypatch.setattr(geometry, "INT32_INDEX", 100)
    shape = (2, 1, 9, 11, 10)
    for name in ("affine", "elastic"):
        check_geometry(name, image_of(shape), label_of(shape), 5, 11, True)


def _on_threads(threads: int, work):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        return work()
    finally:
        torch.set_num_threads(before)


# Each gave other bits than on one thread on some of 2-16 threads before the products' threads
# were capped: the single images on two to four, the batches on eight or sixteen. How MKL splits
# a product is the machine's: where it rounds alike on every count this passes either way; on
# this project's CI machine every case fails without the cap (``_product_threads`` returning the
# thread count).
BLUR_THREAD_CASES = [((1, 1, 104, 10), 2.6), ((1, 1, 19, 19, 6), 2.6), ((1, 1, 46, 19, 67), 2.2),
                     ((2, 1, 71, 99), 1.4), ((2, 1, 97, 68), 1.8)]


@pytest.mark.parametrize(("shape", "sigma"), BLUR_THREAD_CASES)
def test_the_blur_gives_one_threads_bits_on_any_thread_count(shape, sigma):
    image = torch.rand(shape, generator=torch.Generator().manual_seed(1)) * 1000
    one = _on_threads(1, lambda: filters.gaussian_blur(image, sigma))
    for threads in (2, 3, 4, 8, 16):
        assert torch.equal(_on_threads(threads, lambda: filters.gaussian_blur(image, sigma)), one), threads


def test_the_blur_caps_its_products_threads_and_gives_them_back(monkeypatch):
    """A single image's products on one thread, a batch's on at most four, a GPU's untouched
    (a ``meta`` tensor stands in for it); the caller's thread count back afterwards."""
    seen = []
    build = filters.filter_matrix

    def recorded(n, kernel):
        seen.append(torch.get_num_threads())
        return build(n, kernel)

    monkeypatch.setattr(filters, "filter_matrix", recorded)

    def blur_all() -> int:
        filters.gaussian_blur(torch.rand(1, 1, 9, 9), 1.0)
        filters.gaussian_blur(torch.rand(2, 1, 9, 9), 1.0)
        filters.gaussian_blur(torch.empty((1, 1, 9, 9), device="meta"), 1.0)
        return torch.get_num_threads()

    assert _on_threads(8, blur_all) == 8
    assert seen == [1, 1] + [filters.PRODUCT_MAX_THREADS] * 2 + [8, 8]


# Sizes whose halves end in a partial vector step, so torch's own pow on two threads takes the
# scalar routine where one thread takes the vector one.
POW_SIZES = (183_600, 216_810, 282_321, 1_000_003, 65_537, 98_331, 131_075, 400_009)


def test_thread_independent_pow_gives_one_threads_bits_on_any_thread_count():
    from segrob.perturb.base import thread_independent

    plain_differs = False
    for size in POW_SIZES:
        values = torch.rand(size, generator=torch.Generator().manual_seed(size))
        one = _on_threads(1, lambda values=values: values.clone().pow_(2.2))
        for threads in (2, 3, 4):
            ours = _on_threads(threads, lambda values=values: thread_independent(
                values.clone(), lambda part: part.pow_(2.2)))
            same_bits(ours, one)
        plain = _on_threads(2, lambda values=values: values.clone().pow_(2.2))
        plain_differs |= not torch.equal(plain, one)
    # Without the split these sizes do differ, so the comparison above can fail.
    assert plain_differs


def test_thread_independent_product_gives_one_threads_bits_on_any_thread_count():
    from segrob.perturb.base import thread_independent_product

    plain_differs = False
    shapes = [(1, 1, 287, 155), (3, 1, 223, 235), (2, 2, 40, 33, 29), (16, 1, 256, 129)]
    for index, shape in enumerate(shapes):
        gen = torch.Generator().manual_seed(index)
        batch = torch.randn(shape, dtype=torch.complex64, generator=gen)
        factor = torch.randn(shape[2:], dtype=torch.complex64, generator=gen)
        one = _on_threads(1, lambda batch=batch, factor=factor: batch * factor)
        for threads in (2, 3):
            same_bits(_on_threads(threads, lambda batch=batch, factor=factor: thread_independent_product(
                batch, factor)), one)
        plain = _on_threads(2, lambda batch=batch, factor=factor: batch * factor)
        plain_differs |= not torch.equal(plain, one)
    assert plain_differs
    with pytest.raises(SegrobError, match="does not match"):
        thread_independent_product(torch.zeros(1, 1, 4, 4), torch.zeros(4, 5))


# Each a case that gave other bits on two threads than on one before the member was changed.
@pytest.mark.parametrize(("name", "shape", "severity", "image_seed"), [
    ("gamma_compression", (3, 1, 17, 60, 60), 1, 0),
    ("gamma_expansion", (3, 1, 17, 60, 60), 1, 0),
    ("contrast", (1, 1, 39, 42, 39), 5, 14),
    ("bias_field", (2, 1, 66, 55, 13), 5, 0),
    ("mri_motion", (1, 1, 287, 155), 5, 0),
    ("motion_blur", (3, 1, 191, 203), 5, 1),
    ("ghosting", (2, 1, 32, 54, 63), 5, 0),
    ("gibbs_ringing", (3, 1, 42, 70, 64), 5, 0),
    ("gaussian_blur", (1, 1, 104, 10), 3, 0),
    ("motion_blur", (3, 1, 23, 28, 12), 2, 7),
    ("motion_blur", (3, 1, 9, 20), 4, 61),
    ("mri_motion", (3, 1, 12, 13, 10), 1, 10),
    ("mri_motion", (2, 1, 13, 10, 12), 3, 59),
    # These two, and the three motion cases above, on a CPU with AVX-512 FP16 and AMX, where MKL's
    # forward transforms round by the thread count too.
    ("gibbs_ringing", (1, 1, 9, 16, 13), 3, 60),
    ("spike", (1, 1, 36, 37, 27), 5, 19),
])
def test_members_give_the_same_bits_on_one_and_two_threads(name, shape, severity, image_seed):
    image = torch.rand(shape, generator=torch.Generator().manual_seed(image_seed)) * 1000 - 200
    one, two = (_on_threads(t, lambda: apply_perturbation(name, image, None, severity=severity, seed=3)[0])
                for t in (1, 2))
    same_bits(two, one)


def old_mri_motion(image, params):
    """The translation's phase over the whole k-space, as before it was taken on the corrupted
    lines alone."""
    from segrob.perturb.artifact import _axis_frequencies, _kspace, _signed_image
    from segrob.perturb.base import thread_independent_product

    k, spatial = _kspace(image), image.shape[2:]
    direction = torch.tensor(params["direction"])
    direction = direction / direction.norm().clamp_min(1e-6) * params["shift"]
    phase = torch.zeros(spatial)
    for axis, n in enumerate(spatial):
        shape = [1] * len(spatial)
        shape[axis] = n
        phase = phase + (_axis_frequencies(n, image.device) * float(direction[axis])).view(shape)
    moved = thread_independent_product(k, torch.exp(-2j * math.pi * phase))
    axis = params["axis"]
    frequency = _axis_frequencies(spatial[axis], image.device)
    corrupted = (frequency - params["centre"]).abs() <= params["lines"] / 2.0
    shape = [1] * len(spatial)
    shape[axis] = spatial[axis]
    return _signed_image(torch.where(corrupted.view(shape), moved, k), image)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("severity", [1, 3, 5])
def test_mri_motion_moves_the_corrupted_lines_as_the_whole_phase_did(shape, severity):
    image = torch.rand(shape, generator=torch.Generator().manual_seed(severity)) * 1000 - 200
    new, _, applied = apply_perturbation("mri_motion", image, None, severity=severity, seed=1)
    same_bits(new, old_mri_motion(image, applied.params))


def old_gibbs(image, keep_share):
    from segrob.perturb.artifact import _axis_frequencies

    spatial, dims = image.shape[2:], tuple(range(2, image.ndim))
    spectrum = torch.fft.rfftn(image.float(), dim=dims)
    for axis, n in enumerate(spatial):
        keep = _axis_frequencies(n, image.device).abs() <= keep_share / 2.0
        if axis == len(spatial) - 1:
            keep = keep[: n // 2 + 1]
        spectrum *= keep.view([-1 if a == axis else 1 for a in range(image.ndim - 2)])
    return torch.fft.irfftn(spectrum, s=spatial, dim=dims).to(image.dtype)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("severity", [1, 3, 5])
def test_gibbs_zeroes_the_cut_lines_as_the_mask_did(shape, severity):
    image = torch.rand(shape, generator=torch.Generator().manual_seed(severity)) * 1000 - 200
    new, _, applied = apply_perturbation("gibbs_ringing", image, None, severity=severity, seed=1)
    same_bits(new, old_gibbs(image, applied.params["keep"]))


MEMBER_BITS = """
import hashlib, json, torch
from segrob.perturb import PERTURBATIONS, apply_perturbation
digests = {}
for name, member in PERTURBATIONS.items():
    digest = hashlib.sha1()
    for shape in ((2, 1, 20, 26, 18), (3, 1, 44, 38)):
        if len(shape) - 2 not in member.spatial_dims:
            continue
        image = torch.rand(shape, generator=torch.Generator().manual_seed(len(shape))) * 1000 - 200
        label = (image[:, 0] > 300).long()
        for severity in sorted({1, member().n_levels}):
            moved = apply_perturbation(name, image, label, severity=severity, seed=5)[0]
            digest.update(moved.numpy().tobytes())
    digests[name] = digest.hexdigest()
print(json.dumps(digests))
"""


@pytest.mark.skipif(not torch.backends.mkl.is_available(), reason="torch without Intel MKL")
def test_members_not_said_cpu_dependent_give_the_same_bits_on_another_mkl_code_path():
    """``MKL_CBWR=COMPATIBLE`` makes MKL run the code it runs on the oldest x86 CPUs: a member
    whose ``cpu_dependent_bits`` is False must give the same bits under it."""
    import json
    import subprocess
    import sys

    def digests(**env):
        done = subprocess.run([sys.executable, "-c", MEMBER_BITS], capture_output=True, text=True,
                              env={**os.environ, **env}, check=True)
        return json.loads(done.stdout)

    native, compatible = digests(), digests(MKL_CBWR="COMPATIBLE")
    moved = {name for name in native if native[name] != compatible[name]}
    if not moved:
        pytest.skip("MKL ran the same code under MKL_CBWR=COMPATIBLE on this CPU")
    assert not {name for name in moved if not PERTURBATIONS[name].cpu_dependent_bits}
