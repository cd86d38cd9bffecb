"""Every layout reads into the same Case API, lazily, with validation on load."""

from __future__ import annotations

import numpy as np
import pytest

from segrob.data import load_dataset, write_array
from segrob.errors import SegrobError


def test_images_labels_layout(images_labels_dataset):
    dataset = load_dataset(images_labels_dataset)
    assert dataset.kind == "images-labels"
    assert dataset.names == ["c0", "c1", "c2"]
    case = dataset[1]
    assert case.image.shape == (1, 20, 24) and case.image.dtype == np.float32
    assert case.label.shape == (20, 24) and case.label.dtype == np.int32
    assert case.spacing == pytest.approx((0.5, 0.7))
    assert set(np.unique(case.label)) == {0, 1, 2}


def test_nnunet_layout_stacks_channel_files(nnunet_dataset):
    dataset = load_dataset(nnunet_dataset)
    assert dataset.kind == "nnunet"
    assert dataset.names == ["heart_000", "heart_001"]
    case = dataset.case("heart_001")
    assert case.image.shape == (2, 10, 12, 8)
    np.testing.assert_allclose(case.image[1], case.image[0] * 2, rtol=1e-6)
    assert case.spacing == pytest.approx((1.25, 1.25, 2.5))


def test_msd_layout_reads_4d_images_channels_first(msd_dataset):
    dataset = load_dataset(msd_dataset)
    assert dataset.kind == "msd"
    case = dataset[0]
    assert case.image.shape == (2, 10, 12, 8)
    np.testing.assert_allclose(case.image[1], case.image[0] + 1.0, rtol=1e-6)


def test_dataset_is_lazy(images_labels_dataset, monkeypatch):
    import segrob.data.dataset as module

    loaded = []
    real = module.load_case
    monkeypatch.setattr(module, "load_case", lambda files: loaded.append(files.name) or real(files))
    dataset = load_dataset(images_labels_dataset)
    assert loaded == []
    _ = dataset[2]
    assert loaded == ["c2"]


def test_missing_folder_and_empty_dataset(tmp_path):
    with pytest.raises(SegrobError, match="folder not found"):
        load_dataset(tmp_path / "absent")
    (tmp_path / "empty" / "images").mkdir(parents=True)
    (tmp_path / "empty" / "labels").mkdir()
    with pytest.raises(SegrobError, match="empty"):
        load_dataset(tmp_path / "empty")
    (tmp_path / "random").mkdir()
    with pytest.raises(SegrobError, match="no dataset found"):
        load_dataset(tmp_path / "random")


def test_image_without_label(images_labels_dataset):
    (images_labels_dataset / "labels" / "c1.tif").unlink()
    with pytest.raises(SegrobError, match=r"c1\.tif: image has no label"):
        load_dataset(images_labels_dataset)


def test_mismatched_shapes(images_labels_dataset):
    write_array(images_labels_dataset / "labels" / "c0.tif", np.zeros((5, 5), np.uint8), (1, 1))
    with pytest.raises(SegrobError, match="does not match label shape"):
        load_dataset(images_labels_dataset)[0]


def test_nan_voxels(images_labels_dataset):
    image = np.ones((20, 24), np.float32)
    image[3, 4] = np.nan
    write_array(images_labels_dataset / "images" / "c0.tif", image, (1, 1))
    with pytest.raises(SegrobError, match="1 NaN or Inf"):
        load_dataset(images_labels_dataset)[0]


def test_non_integer_labels(images_labels_dataset):
    label = np.full((20, 24), 0.5, np.float32)
    write_array(images_labels_dataset / "labels" / "c0.tif", label, (1, 1))
    with pytest.raises(SegrobError, match="not integers"):
        load_dataset(images_labels_dataset)[0]


def test_integer_valued_float_labels_are_accepted(images_labels_dataset):
    label = np.zeros((20, 24), np.float32)
    label[2:5, 2:5] = 1.0
    write_array(images_labels_dataset / "labels" / "c0.tif", label, (1, 1))
    assert load_dataset(images_labels_dataset)[0].label.sum() == 9


def test_nnunet_missing_channel(nnunet_dataset):
    (nnunet_dataset / "imagesTr" / "heart_001_0001.nii.gz").unlink()
    with pytest.raises(SegrobError, match=r"heart_001 lacks channel file\(s\) \[1\]"):
        load_dataset(nnunet_dataset)
