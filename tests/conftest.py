"""Shared fixtures: tiny datasets written in each supported layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

# Two cores are shared by everything in CI; one thread per test process avoids oversubscription.
torch.set_num_threads(1)


@pytest.fixture
def cuda_provider() -> None:
    """Skips the test unless onnxruntime's CUDA provider and a GPU are both here."""
    import onnxruntime as ort

    if not (torch.cuda.is_available() and "CUDAExecutionProvider" in ort.get_available_providers()):
        pytest.skip("needs onnxruntime's CUDA provider and a GPU")


def make_pair(shape: tuple[int, ...], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A random image and a label with a box of class 1 (and a corner of class 2)."""
    rng = np.random.default_rng(seed)
    image = rng.normal(100.0, 20.0, size=shape).astype(np.float32)
    label = np.zeros(shape, dtype=np.uint8)
    centre = tuple(slice(s // 4, 3 * s // 4) for s in shape)
    label[centre] = 1
    label[tuple(slice(0, 2) for _ in shape)] = 2
    return image, label


@pytest.fixture
def images_labels_dataset(tmp_path: Path) -> Path:
    from segrob.data import write_array

    root = tmp_path / "il"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(3):
        image, label = make_pair((20, 24), seed=i)
        write_array(root / "images" / f"c{i}.tif", image, (0.5, 0.7))
        write_array(root / "labels" / f"c{i}.tif", label, (0.5, 0.7))
    return root


@pytest.fixture
def nnunet_dataset(tmp_path: Path) -> Path:
    """nnU-Net v2 raw layout with two channels per case, 3D NIfTI."""
    from segrob.data import write_array

    root = tmp_path / "Dataset002_Heart"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    for i in range(2):
        image, label = make_pair((10, 12, 8), seed=i)
        spacing = (1.25, 1.25, 2.5)
        write_array(root / "imagesTr" / f"heart_{i:03d}_0000.nii.gz", image, spacing)
        write_array(root / "imagesTr" / f"heart_{i:03d}_0001.nii.gz", image * 2, spacing)
        write_array(root / "labelsTr" / f"heart_{i:03d}.nii.gz", label, spacing)
    description = {
        "channel_names": {"0": "T1", "1": "T2"},
        "labels": {"background": 0, "left": 1, "right": 2},
        "numTraining": 2,
        "file_ending": ".nii.gz",
    }
    (root / "dataset.json").write_text(json.dumps(description))
    return root


@pytest.fixture
def msd_dataset(tmp_path: Path) -> Path:
    """MSD layout: dataset.json lists pairs; images are 4D (X, Y, Z, C) NIfTI."""
    from segrob.data import write_array

    root = tmp_path / "Task01"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    training = []
    for i in range(2):
        image, label = make_pair((10, 12, 8), seed=i)
        stacked = np.stack([image, image + 1.0])  # channels first for write_array
        write_array(root / "imagesTr" / f"brain_{i}.nii.gz", stacked, (1.0, 1.0, 1.0))
        write_array(root / "labelsTr" / f"brain_{i}.nii.gz", label, (1.0, 1.0, 1.0))
        training.append(
            {"image": f"./imagesTr/brain_{i}.nii.gz", "label": f"./labelsTr/brain_{i}.nii.gz"}
        )
    (root / "dataset.json").write_text(json.dumps({"name": "BRATS", "training": training}))
    return root
