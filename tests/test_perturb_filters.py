"""The shared filters and the separable bias field against independent references."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy import ndimage

from segrob.perturb import filters
from segrob.perturb.blur import line_kernel
from segrob.perturb.filters import fft_convolve, gaussian_blur
from segrob.perturb.shift import BiasField


@pytest.mark.parametrize("shape", [(2, 1, 19, 23), (1, 2, 9, 12, 15)])
def test_gaussian_blur_matches_scipy(shape):
    image = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    ours = gaussian_blur(image, 2.0)
    def scipy_blur(channel):
        return ndimage.gaussian_filter(channel.numpy(), 2.0, mode="mirror", truncate=3.0)

    reference = np.stack([[scipy_blur(channel) for channel in item] for item in image])
    np.testing.assert_allclose(ours.numpy(), reference, atol=1e-5)


def test_long_axes_take_the_convolution_path_with_the_same_result(monkeypatch):
    image = torch.rand((1, 1, 40, 30), generator=torch.Generator().manual_seed(1))
    by_matrix = gaussian_blur(image, 1.5)
    monkeypatch.setattr(filters, "MATRIX_MAX", 8)
    by_conv = gaussian_blur(image, 1.5)
    torch.testing.assert_close(by_conv, by_matrix, atol=1e-5, rtol=0)


@pytest.mark.parametrize("sigma", [1.5, [1.5, 0.0, 2.0]])
def test_the_blur_builds_its_filter_matrices_on_the_cpu_for_any_device(monkeypatch, sigma):
    # On a GPU the build is some forty tiny kernel launches, longer than the blur's products;
    # built on the CPU and copied, the GPU's blur also gets the CPU's matrices, bit for bit.
    built_on = []
    build = filters.filter_matrix

    def recorded(n, kernel):
        built_on.append(kernel.device.type)
        return build(n, kernel)

    monkeypatch.setattr(filters, "filter_matrix", recorded)
    out = gaussian_blur(torch.empty((1, 1, 6, 7, 8), device="meta"), sigma)
    assert out.device.type == "meta" and out.shape == (1, 1, 6, 7, 8)
    assert built_on == ["cpu"] * (3 if isinstance(sigma, float) else 2)


def test_blur_keeps_the_mean_on_tiny_axes():
    image = torch.rand((1, 1, 1, 3, 40))
    out = gaussian_blur(image, 4.0)
    assert out.shape == image.shape and torch.isfinite(out).all()
    kernel = line_kernel(17, torch.tensor([0.0, 0.6, 0.8]))
    smeared = fft_convolve(image, kernel)
    assert abs(smeared.mean() - image.mean()) < 0.05


def test_bias_field_is_the_polynomial_it_records():
    shape = (1, 1, 6, 7, 8)
    params = BiasField().make_params(5, torch.Generator().manual_seed(3), image_shape=shape)
    image = torch.ones(shape) + torch.arange(6.0).view(1, 1, 6, 1, 1)  # robust range [1, 6]
    out = BiasField().apply(image, None, params)[0]
    grids = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape[2:]], indexing="ij")
    log_field = sum(c * np.prod([g**p for g, p in zip(grids, powers, strict=True)], axis=0)
                    for powers, c in zip(params["terms"], params["coefficients"], strict=True))
    field = np.exp(log_field - log_field.mean())
    low, span = 1.0, 5.0
    expected = ((image[0, 0].numpy() - low) / span * field) * span + low
    np.testing.assert_allclose(out[0, 0].numpy(), expected, rtol=1e-4, atol=1e-4)
    expected_terms = [p for p in itertools.product(range(4), repeat=3) if sum(p) <= 3]
    assert len(params["terms"]) == len(expected_terms) == 20
