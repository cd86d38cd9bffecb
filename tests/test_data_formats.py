"""Readers and writers round-trip every format, keep spacing, and reject bad files clearly."""

from __future__ import annotations

import numpy as np
import pytest

from segrob.data import read_array, write_array
from segrob.errors import SegrobError


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".tif", ".npy", ".npz"])
@pytest.mark.parametrize("shape", [(12, 16), (6, 12, 16)])
def test_round_trip_keeps_values_and_spacing(tmp_path, suffix, shape):
    rng = np.random.default_rng(0)
    array = rng.normal(size=shape).astype(np.float32)
    spacing = (0.5, 0.8, 1.5)[-len(shape) :]
    path = write_array(tmp_path / f"x{suffix}", array, spacing)
    back, read_spacing = read_array(path)
    np.testing.assert_array_equal(back, array)
    if suffix == ".npy":
        assert read_spacing is None  # .npy carries no spacing
    else:
        np.testing.assert_allclose(read_spacing, spacing, rtol=1e-5)


def test_nifti_multichannel_is_stored_channels_last(tmp_path):
    import nibabel as nib

    array = np.zeros((2, 5, 6, 7), dtype=np.float32)
    array[1] = 1.0
    write_array(tmp_path / "m.nii.gz", array, (1.0, 2.0, 3.0))
    stored = nib.load(str(tmp_path / "m.nii.gz"))
    assert stored.shape == (5, 6, 7, 2)
    assert stored.header.get_zooms()[:3] == (1.0, 2.0, 3.0)


def test_nifti_writes_are_byte_identical(tmp_path):
    array = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
    write_array(tmp_path / "a.nii.gz", array, (1.0, 1.0, 1.0))
    write_array(tmp_path / "b.nii.gz", array, (1.0, 1.0, 1.0))
    assert (tmp_path / "a.nii.gz").read_bytes() == (tmp_path / "b.nii.gz").read_bytes()


@pytest.mark.parametrize("suffix", [".nii.gz", ".tif", ".npy"])
def test_truncated_file_is_a_clear_error(tmp_path, suffix):
    path = write_array(tmp_path / f"t{suffix}", np.ones((32, 32), np.float32), (1.0, 1.0))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(SegrobError, match=str(path.name)):
        read_array(path)


def test_missing_and_unsupported_files(tmp_path):
    with pytest.raises(SegrobError, match="file not found"):
        read_array(tmp_path / "nope.nii.gz")
    other = tmp_path / "x.png"
    other.write_bytes(b"\x89PNG")
    with pytest.raises(SegrobError, match="unsupported file type"):
        read_array(other)
