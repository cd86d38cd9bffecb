"""HD95, ASSD and NSD against MONAI, the field's reference, when it is installed (bench extra)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import ndimage

from segrob.metrics import assd, hd95, nsd

monai_metrics = pytest.importorskip("monai.metrics")
torch = pytest.importorskip("torch")


def _masks(seed: int, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    pred = ndimage.binary_opening(rng.random(shape) < 0.35) | (rng.random(shape) < 0.03)
    gt = ndimage.binary_opening(rng.random(shape) < 0.35) | (rng.random(shape) < 0.03)
    pred[tuple(s // 2 for s in shape)] = gt[tuple(s // 2 for s in shape)] = True
    return pred, gt


GRIDS = [((24, 20), (0.7, 1.3)), ((10, 12, 9), (0.5, 1.0, 2.0))]


@pytest.mark.parametrize(("shape", "spacing"), GRIDS)
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_monai(shape, spacing, seed):
    pred, gt = _masks(seed, shape)
    p = torch.from_numpy(pred)[None, None].float()
    g = torch.from_numpy(gt)[None, None].float()
    options = {"include_background": True, "spacing": list(spacing)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI's own deprecation notices
        their_hd95 = monai_metrics.compute_hausdorff_distance(p, g, percentile=95, **options)
        their_assd = monai_metrics.compute_average_surface_distance(p, g, symmetric=True, **options)
        their_nsd = monai_metrics.compute_surface_dice(p, g, class_thresholds=[1.5], **options)
    # MONAI works in float32
    assert hd95(pred, gt, spacing=spacing) == pytest.approx(their_hd95.item(), rel=1e-5)
    assert assd(pred, gt, spacing=spacing) == pytest.approx(their_assd.item(), rel=1e-5)
    ours_nsd = nsd(pred, gt, spacing=spacing, tolerance_mm=1.5)
    assert ours_nsd == pytest.approx(their_nsd.item(), rel=1e-5)
