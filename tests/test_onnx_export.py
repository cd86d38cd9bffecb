"""Registry contract for export: every registered architecture, 2D and 3D, round-trips to ONNX.

Each model is exported with a dynamic batch (and dynamic spatial size unless it is fixed-size),
passes the ONNX checker and the fp32 parity gate, carries segrob metadata, and the file then
runs at a batch and a size other than the ones it was traced with.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from segrob.models import MODELS, create_model
from segrob.onnx.export import ExportOptions, export_model
from segrob.onnx.metadata import EXPECTED_KEYS
from segrob.onnx.session import create_session, read_metadata, run

TINY_OPTIONS = {
    "unetr": {"img_size": 16, "patch_size": 4, "hidden_size": 16, "num_layers": 2,
              "num_heads": 2, "feature_size": 4},
}
UNET_TINY = {"channels": (4, 8)}

CASES = [(name, dims) for name, spec in MODELS.items() for dims in spec.dims]


def tiny_model(name: str, dims: int) -> torch.nn.Module:
    torch.manual_seed(0)
    options = TINY_OPTIONS.get(name, UNET_TINY)
    return create_model(name, spatial_dims=dims, in_channels=1, out_channels=2, **options).eval()


def test_every_registered_model_is_covered():
    assert {name for name, _ in CASES} == set(MODELS)
    assert len(CASES) >= 2 * len(MODELS) - 1  # 2D and 3D wherever the registry allows


@pytest.mark.parametrize(("name", "dims"), CASES, ids=[f"{n}-{d}d" for n, d in CASES])
def test_export_round_trip(name: str, dims: int, tmp_path: Path):
    model = tiny_model(name, dims)
    out = tmp_path / f"{name}.onnx"
    result = export_model(model, out, options=ExportOptions())
    fixed = MODELS[name].fixed_size

    # The file: single, valid, opset >= 18, dynamic batch (and spatial unless fixed).
    assert out.is_file() and not list(tmp_path.glob(".*"))  # no temporary file left
    assert not list(tmp_path.glob("*.data"))  # no external data
    proto = onnx.load(out)
    onnx.checker.check_model(proto, full_check=True)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 18
    assert result.dynamic_batch
    assert result.dynamic_spatial is (not fixed)
    assert result.input_shape[0] == "batch" and result.input_shape[1] == 1
    names = ["height", "width"] if dims == 2 else ["depth", "height", "width"]
    assert result.input_shape[2:] == (list(model.fixed_size) if fixed else names)

    # Parity passed the fp32 gate on synthetic inputs (no run config given).
    assert result.parity.passed
    assert result.parity.argmax_agreement >= 0.999 and result.parity.mask_dice >= 0.99
    assert result.parity.max_abs_diff < 1e-3
    assert "synthetic" in result.parity.inputs

    # Metadata: every key written, values match the model.
    meta = read_metadata(out)
    assert set(EXPECTED_KEYS) <= set(meta)
    assert meta["arch"] == name and meta["spatial_dims"] == dims
    assert meta["in_channels"] == 1 and meta["out_channels"] == 2
    assert meta["precision"] == "fp32" and meta["parity"]["passed"] is True
    assert meta["fixed_size"] == (list(model.fixed_size) if fixed else None)

    # It runs at another batch size (3) and, unless fixed, another valid spatial size.
    if fixed:
        spatial = tuple(model.fixed_size)
    else:
        spatial = tuple(model.min_size + (axis + 1) * model.size_multiple for axis in range(dims))
    x = torch.randn(3, 1, *spatial, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(x).numpy()
    got = run(create_session(out, device="cpu"), x.numpy())
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-3)
