"""``export --optimize``: onnxruntime's offline-optimised graph, same metadata, same parity gate."""

from __future__ import annotations

import numpy as np
import torch

from segrob.models import create_model
from segrob.onnx.export import ExportOptions, export_model
from segrob.onnx.metadata import load_onnx, parse_metadata_props
from segrob.onnx.session import create_session, run


def test_optimized_export_keeps_metadata_and_outputs(tmp_path):
    torch.manual_seed(0)
    model = create_model("unet", spatial_dims=2, in_channels=1, out_channels=2, channels=(4, 8))
    config = {"normalization": {"method": "zscore"}}
    plain = export_model(model, tmp_path / "plain.onnx", config=config)
    optimized = export_model(model, tmp_path / "opt.onnx", config=config,
                             options=ExportOptions(optimize=True))
    assert "graph_optimization" not in plain.metadata
    assert optimized.metadata["graph_optimization"]["level"] == "ORT_ENABLE_EXTENDED"
    assert optimized.parity.passed
    props = {p.key: p.value for p in load_onnx(tmp_path / "opt.onnx").metadata_props}
    values, bad = parse_metadata_props(props)
    assert not bad
    assert values["parity"] == optimized.metadata["parity"]
    assert {k: v for k, v in values.items() if k not in ("parity", "graph_optimization")} == {
        k: v for k, v in parse_metadata_props(
            {p.key: p.value for p in load_onnx(tmp_path / "plain.onnx").metadata_props})[0].items()
        if k != "parity"
    }
    x = np.random.default_rng(0).normal(size=(2, 1, 48, 40)).astype(np.float32)
    a = run(create_session(tmp_path / "plain.onnx", device="cpu"), x)
    b = run(create_session(tmp_path / "opt.onnx", device="cpu"), x)
    np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)
