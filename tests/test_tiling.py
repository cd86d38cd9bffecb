"""One tiling for validation and the audit: padding, windows, Gaussian stitching."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from segrob.tiling import (
    DEFAULT_OVERLAP,
    accepted_size,
    gaussian_importance,
    sliding_window_logits,
    tiled_logits,
    window_starts,
)


def _context_logits(batch: torch.Tensor) -> torch.Tensor:
    """Logits that depend on the whole window (its mean), so overlapping windows disagree."""
    mean = batch.mean(dim=tuple(range(1, batch.dim())), keepdim=True)
    return torch.cat([batch + mean, -batch], dim=1)


def _brute_force_stitch(image: np.ndarray, window: tuple[int, int], overlap: float) -> np.ndarray:
    """Weighted average over every window covering each pixel, from the definitions."""
    weights = gaussian_importance(window).double().numpy()
    total = np.zeros((2, *image.shape[1:]))
    norm = np.zeros(image.shape[1:])
    starts = [window_starts(s, w, overlap) for s, w in zip(image.shape[1:], window, strict=True)]
    for y, x in itertools.product(*starts):
        tile = image[:, y:y + window[0], x:x + window[1]].astype(np.float64)
        logits = np.concatenate([tile + tile.mean(), -tile])
        total[:, y:y + window[0], x:x + window[1]] += logits * weights
        norm[y:y + window[0], x:x + window[1]] += weights
    return total / norm


def test_sliding_window_is_the_gaussian_weighted_average_of_the_windows():
    images = torch.rand(3, 1, 37, 29)
    seen = []

    def predict(batch):
        seen.append(len(batch))
        return _context_logits(batch)

    stitched = sliding_window_logits(images, predict, (16, 12), overlap=0.5, batch_size=5)
    windows_per_image = len(window_starts(37, 16, 0.5)) * len(window_starts(29, 12, 0.5))
    # Windows of all images share batches: every batch is full but the last.
    assert sum(seen) == 3 * windows_per_image and set(seen[:-1]) == {5}
    for index in range(3):
        expected = _brute_force_stitch(images[index].numpy(), (16, 12), 0.5)
        np.testing.assert_allclose(stitched[index].numpy(), expected, rtol=1e-5, atol=1e-5)


def test_gaussian_importance_trusts_the_centre():
    weights = gaussian_importance((9, 16))
    assert weights.shape == (9, 16) and weights.dtype == torch.float32
    assert float(weights.max()) == 1.0 and float(weights[4, 7]) == float(weights[4, 8]) == 1.0
    assert float(weights.min()) == pytest.approx(1e-3)  # corners: floored, never zero
    assert torch.equal(weights, weights.flip(0)) and torch.equal(weights, weights.flip(1))
    assert float(weights[4, 0]) < float(weights[4, 4]) < float(weights[4, 7])


@pytest.mark.parametrize(
    ("size", "multiple", "minimum", "expected"),
    [(37, 16, 1, 48), (48, 16, 1, 48), (5, 8, 16, 16), (17, 1, 1, 17)],
)
def test_accepted_size(size, multiple, minimum, expected):
    assert accepted_size(size, multiple, minimum) == expected


@pytest.mark.parametrize(
    ("shape", "window", "fixed", "seen"),
    [
        ((21, 30), None, False, {(32, 32)}),  # whole, padded to multiples of 16 (min 32)
        ((21, 30), (32, 32), False, {(32, 32)}),  # fits in the patch: whole
        ((40, 30), (32, 32), False, {(32, 32)}),  # larger than the patch: windows
        ((21, 30), (32, 32), True, {(32, 32)}),  # fixed size: padded up to its size
        ((64, 32), (32, 32), True, {(32, 32)}),
    ],
)
def test_tiled_logits_feeds_only_sizes_the_model_takes(shape, window, fixed, seen):
    images = torch.rand(2, 1, *shape)
    shapes = set()

    def predict(batch):
        shapes.add(tuple(batch.shape[2:]))
        return torch.cat([batch, -batch], dim=1)

    logits = tiled_logits(images, predict, window=window, fixed_size=fixed, size_multiple=16,
                          min_size=32, batch_size=3)
    assert shapes == seen
    assert logits.shape == (2, 2, *shape)
    torch.testing.assert_close(logits[:, 0], images[:, 0])


def test_a_fixed_size_model_on_its_own_size_runs_once_per_image():
    images = torch.rand(2, 1, 32, 32)
    calls = []
    logits = tiled_logits(images, lambda b: calls.append(b.shape) or _context_logits(b),
                          window=(32, 32), fixed_size=True, batch_size=8)
    assert calls == [torch.Size([2, 1, 32, 32])]
    assert torch.equal(logits, _context_logits(images))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_tiles_and_stitching_stay_on_the_gpu():
    images = torch.rand(2, 1, 40, 40, 40, device="cuda")
    devices = set()

    def predict(batch):
        devices.add(batch.device.type)
        return torch.cat([batch, -batch], dim=1)

    logits = tiled_logits(images, predict, window=(24, 24, 24), batch_size=4)
    assert devices == {"cuda"} and logits.device.type == "cuda"
    torch.testing.assert_close(logits[:, 0], images[:, 0])


def _write_volumes(root: Path, n: int, size: int) -> Path:
    from segrob.data import write_array

    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        label = np.zeros((size,) * 3, dtype=np.uint8)
        corner = rng.integers(0, size // 2, size=3)
        label[tuple(slice(c, c + size // 2) for c in corner)] = 1
        image = 50.0 + 40.0 * label + 10.0 * rng.standard_normal(label.shape)
        write_array(root / "images" / f"case_{i:02d}.npy", image.astype(np.float32), (1.0,) * 3)
        write_array(root / "labels" / f"case_{i:02d}.npy", label, (1.0,) * 3)
    return root


def test_a_3d_patch_model_scores_the_same_in_validation_and_in_the_audit(tmp_path):
    """The validation Dice stored in the run is the audit's clean Dice of the exported model."""
    from segrob.audit import AuditOptions, audit
    from segrob.audit.data_source import resolve_audit_data
    from segrob.audit.inference import predict
    from segrob.audit.model_spec import model_spec
    from segrob.data import load_dataset
    from segrob.data.normalize import normalize
    from segrob.onnx.export import export_model
    from segrob.onnx.session import create_session
    from segrob.training import TrainConfig, load_run, train
    from segrob.training.inference import predict_logits

    data = _write_volumes(tmp_path / "data", n=4, size=28)
    result = train(TrainConfig(arch="unet", data=str(data), out=str(tmp_path / "run"), epochs=4,
                               lr=0.01, batch_size=2, patch_size=16, pos_ratio=1.0, samples_per_epoch=8,
                               val_fraction=0.25, options={"channels": [4, 8]}, device="cpu"))
    assert result.config.train["val_overlap"] == DEFAULT_OVERLAP
    model, run = load_run(tmp_path / "run")
    assert 0.2 < run.best["val_dice"] < 1.0  # a model that finds part of the box: a Dice to compare
    export_model(model, tmp_path / "unet.onnx", config=run.to_dict())
    (val_name,) = run.data["val_cases"]
    val_data = tmp_path / "val"
    for folder in ("images", "labels"):
        (val_data / folder).mkdir(parents=True)
        (val_data / folder / f"{val_name}.npy").write_bytes((data / folder / f"{val_name}.npy").read_bytes())

    # Same case, same windows and weights: the torch model in validation and the ONNX model in
    # the audit give the same logits.
    case = load_dataset(val_data)[0]
    raw = torch.from_numpy(case.image)[None]
    options = AuditOptions(device="cpu")
    spec = model_spec(create_session(tmp_path / "unet.onnx", device="cpu"), options)
    assert spec.plan(options).window == (16, 16, 16)
    audited = predict(raw, spec.plan(options), spec.run)[0]
    validated = predict_logits(model, normalize(raw, run.normalization)[0], window=(16, 16, 16))
    np.testing.assert_allclose(audited, validated.numpy(), atol=1e-4)

    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps({"name": "one", "perturbation": [{"name": "gaussian_noise",
                                                                   "severities": [1]}]}))
    source = resolve_audit_data(str(val_data), n=None, size=None, spatial_dims=3)
    report = audit(tmp_path / "unet.onnx", source, AuditOptions(suite=str(suite), device="cpu"))
    assert report.summary.clean.mean("dice") == pytest.approx(run.best["val_dice"], abs=1e-6)


def test_inference_modes_choose_the_window():
    import pytest

    from segrob.errors import UsageError
    from segrob.tiling import inference_window

    patch = (16, 16, 16)
    assert inference_window("window", spatial_dims=3, fixed=None, window=None, patch=patch) == patch
    assert inference_window("whole", spatial_dims=3, fixed=None, window=None, patch=patch) is None
    assert inference_window("window", spatial_dims=3, fixed=None, window=(8, 8, 8), patch=patch) == (8, 8, 8)
    assert inference_window("window", spatial_dims=2, fixed=None, window=None, patch=(32, 32)) is None
    assert inference_window("window", spatial_dims=3, fixed=(24,) * 3, window=None, patch=None) == (24,) * 3
    for bad in ({"fixed": (24,) * 3, "window": None}, {"fixed": None, "window": (8, 8, 8)}):
        with pytest.raises(UsageError, match="--inference whole"):
            inference_window("whole", spatial_dims=3, patch=patch, **bad)
    with pytest.raises(UsageError, match="--inference must be one of window, whole"):
        inference_window("halves", spatial_dims=3, fixed=None, window=None, patch=patch)
