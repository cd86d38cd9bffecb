"""onnxruntime sessions and segrob metadata, on small hand-built ONNX graphs (no export)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from segrob.errors import SegrobError, UsageError
from segrob.onnx.metadata import (
    EXPECTED_KEYS,
    build_metadata,
    load_onnx,
    missing_keys,
    parse_metadata_props,
    set_metadata,
)
from segrob.onnx.session import create_session, read_metadata, run


def conv_model(*, dynamic: bool = True) -> onnx.ModelProto:
    """(N, 1, H, W) -> (N, 2, H, W): a 1x1 convolution with weights (1, -1) and bias (0, 0.5)."""
    dims = ["N", 1, "H", "W"] if dynamic else [2, 1, 8, 8]
    out_dims = ["N", 2, "H", "W"] if dynamic else [2, 2, 8, 8]
    weight = numpy_helper.from_array(np.array([1.0, -1.0], np.float32).reshape(2, 1, 1, 1), "w")
    bias = numpy_helper.from_array(np.array([0.0, 0.5], np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "w", "b"], ["logits"])],
        "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, out_dims)],
        [weight, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model, full_check=True)
    return model


@pytest.fixture
def model_path(tmp_path: Path) -> Path:
    model = set_metadata(conv_model(), {"arch": "tiny", "spatial_dims": 2, "parity": {"ok": 1}})
    model.metadata_props.add(key="author", value="someone")
    path = tmp_path / "tiny.onnx"
    onnx.save(model, path)
    return path


def test_cpu_session_describes_the_model(model_path: Path):
    info = create_session(model_path, device="cpu", threads=1)
    assert info.providers == ["CPUExecutionProvider"]
    assert info.provider == "CPUExecutionProvider" and not info.on_cuda
    assert info.input_names == ["image"] and info.output_names == ["logits"]
    assert info.input_shape == ["N", 1, "H", "W"]
    assert info.output_shape == ["N", 2, "H", "W"]
    assert info.input_type == "tensor(float)"
    assert info.metadata == {"arch": "tiny", "spatial_dims": 2, "parity": {"ok": 1}}
    assert json.loads(json.dumps(info.to_dict()))["providers"] == ["CPUExecutionProvider"]


def test_run_returns_float32_logits_from_numpy_and_torch(model_path: Path):
    import torch

    info = create_session(model_path, device="cpu")
    batch = np.arange(2 * 1 * 4 * 6, dtype=np.float64).reshape(2, 1, 4, 6)
    out = run(info, batch)
    assert out.dtype == np.float32 and out.shape == (2, 2, 4, 6)
    np.testing.assert_allclose(out[:, 0], batch[:, 0])
    np.testing.assert_allclose(out[:, 1], 0.5 - batch[:, 0])
    np.testing.assert_array_equal(run(info, torch.from_numpy(batch)), out)
    np.testing.assert_array_equal(run(info.session, batch), out)  # a bare session works too


def test_auto_reports_what_was_used(model_path: Path):
    import onnxruntime as ort

    info = create_session(model_path, device="auto")
    assert info.provider in ort.get_available_providers()
    assert info.provider == info.session.get_providers()[0]


def test_cuda_never_falls_back_silently(model_path: Path):
    try:
        info = create_session(model_path, device="cuda")
    except SegrobError as error:
        assert "cuda" in str(error).lower()
        assert "\n" not in str(error)
    else:  # a machine where CUDA works: it must really be CUDA
        assert info.provider == "CUDAExecutionProvider"
        batch = np.ones((1, 1, 4, 4), np.float32)
        np.testing.assert_allclose(run(info, batch)[:, 1], -0.5)


def test_cuda_is_asked_for_with_cudnns_heuristic_search(model_path: Path, monkeypatch):
    """onnxruntime's default search times every cuDNN algorithm again whenever a batch size
    changes, which cost an H100 audit most of its time; a CPU-only onnxruntime stands in."""
    import onnxruntime as ort

    asked = []
    real = ort.InferenceSession

    def recorded(source, options, providers):
        asked.append(providers)
        return real(source, options, providers=["CPUExecutionProvider"])

    available = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: available)
    monkeypatch.setattr(ort, "InferenceSession", recorded)
    cuda = ("CUDAExecutionProvider", {"cudnn_conv_algo_search": "HEURISTIC"})
    assert create_session(model_path, device="auto").provider == "CPUExecutionProvider"
    with pytest.raises(SegrobError, match="fell back to CPUExecutionProvider"):
        create_session(model_path, device="cuda")
    assert asked == [[cuda, "CPUExecutionProvider"], [cuda]]


def test_bad_device_and_bad_files(tmp_path: Path, model_path: Path):
    with pytest.raises(UsageError, match="unknown device"):
        create_session(model_path, device="tpu")
    with pytest.raises(SegrobError, match="no such model file"):
        create_session(tmp_path / "missing.onnx", device="cpu")
    text = tmp_path / "notes.onnx"
    text.write_text("this is not a model\n" * 20)
    with pytest.raises(SegrobError, match="cannot load"):
        create_session(text, device="cpu")
    with pytest.raises(SegrobError, match=r"not a readable ONNX model|not an ONNX model"):
        load_onnx(text)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(SegrobError, match="not an ONNX model"):
        load_onnx(empty)


def test_read_metadata_from_path_model_and_session(model_path: Path):
    model = onnx.load(model_path)
    expected = {"arch": "tiny", "spatial_dims": 2, "parity": {"ok": 1}}
    assert read_metadata(model_path) == expected
    assert read_metadata(str(model_path)) == expected
    assert read_metadata(model) == expected
    assert read_metadata(create_session(model_path, device="cpu").session) == expected


def test_metadata_parse_skips_bad_json_and_other_keys():
    values, bad = parse_metadata_props(
        {"segrob.arch": '"unet"', "segrob.broken": "{not json", "producer": "x"}
    )
    assert values == {"arch": "unet"} and bad == ["broken"]
    assert missing_keys(values) == [k for k in EXPECTED_KEYS if k != "arch"]


def test_set_metadata_replaces_old_values_and_keeps_foreign_keys():
    model = conv_model()
    model.metadata_props.add(key="author", value="someone")
    set_metadata(model, {"arch": "a", "spatial_dims": 2})
    set_metadata(model, {"arch": "b"})
    props = {p.key: p.value for p in model.metadata_props}
    assert props == {"author": "someone", "segrob.arch": '"b"'}
    set_metadata(model, {"fbr_range": {"min": float("nan")}})  # strict JSON: NaN -> null
    assert read_metadata(model) == {"fbr_range": {"min": None}}


def test_build_metadata_from_a_run_config():
    class Model:
        spatial_dims, in_channels, out_channels = 3, 2, 3
        size_multiple, min_size, fixed_size = 8, 16, None

        def __init__(self):
            self.options = {"channels": [4, 8]}

    config = {
        "arch": "unet", "options": {"channels": [4, 8]}, "normalization": {"method": "zscore"},
        "patch_size": [32, 32, 32], "fbr_range": {"min": 0.1, "max": 0.3, "p5": 0.1, "p95": 0.3},
        "best": {"epoch": 3, "val_dice": 0.9}, "versions": {"torch": "x"},
        "data": {"path": "/d", "n_cases": 5, "kind": "images-labels", "val_cases": ["a"],
                 "metadata": {"generator": "segrob.synth3d", "level": "high", "blend": 0.8,
                              "cases": [{"i": 1}] * 100}},
    }
    values = build_metadata(Model(), config, precision="fp32",
                            dynamic_axes={"input": ["batch", 2, "d", "h", "w"]}, versions={})
    assert missing_keys(values) == ["parity"]  # the exporter adds it after measuring
    assert values["classes"] == {"0": "background", "1": "class 1", "2": "class 2"}
    assert values["complexity"] == {"generator": "segrob.synth3d", "level": "high", "blend": 0.8}
    assert "cases" not in values["training_data"]["metadata"]
    assert values["training_data"]["n_val_cases"] == 1
    assert values["fbr_range"]["p95"] == 0.3 and values["patch_size"] == [32, 32, 32]
    model = set_metadata(conv_model(), values)  # every value is JSON
    assert read_metadata(model)["size_multiple"] == 8


def test_audit_leaves_the_scorer_a_core_from_four_cores_up(monkeypatch):
    import os

    from segrob.onnx.session import threads_beside

    for cores, expected in ((1, None), (2, None), (3, None), (4, 3), (16, 15)):
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid, n=cores: set(range(n)), raising=False)
        assert threads_beside(1) == expected


def test_the_audits_sessions_wait_asleep_beside_the_scorer(model_path: Path, monkeypatch):
    import segrob.onnx.session as session_module
    from segrob.audit import AuditOptions, audit
    from segrob.audit.data_source import resolve_audit_data

    def spinning(info) -> str:
        options = info.session.get_session_options()
        try:
            return options.get_session_config_entry("session.intra_op.allow_spinning")
        except RuntimeError:  # not set: onnxruntime's own default, spinning
            return "default"

    assert spinning(create_session(model_path, device="cpu", spin=False)) == "0"
    assert spinning(create_session(model_path, device="cpu")) == "default"
    opened = []
    real = session_module.create_session

    def recorded(*args, **kwargs):
        opened.append(real(*args, **kwargs))
        return opened[-1]

    monkeypatch.setattr(session_module, "create_session", recorded)
    data = resolve_audit_data("synth:low", n=1, size=32, spatial_dims=2, seed=0)
    audit(model_path, data, AuditOptions(suite="clean", device="cpu"))
    assert opened and all(spinning(info) == "0" for info in opened)


def test_a_cuda_batch_is_finished_by_torch_before_onnxruntime_reads_it(monkeypatch):
    # onnxruntime reads a bound pointer on its own stream; on an H100 an audit that skipped this
    # wait scored half-written batches (clean Dice .60 where the CPU gave .99).
    import torch

    from segrob.onnx import session as session_module

    events: list[str] = []

    class Stream:
        def synchronize(self):
            events.append("torch finished")

    class Batch:
        is_cuda = True
        shape = (1, 1, 4, 4)
        device = torch.device("cpu")

        def detach(self):
            return self

        float = contiguous = detach

        def data_ptr(self):
            return 0

    class Output:
        def numpy(self):
            return np.zeros((1, 2, 4, 4), dtype=np.float32)

    class Binding:
        def bind_input(self, **_):
            events.append("bound")

        def bind_output(self, *_):
            pass

        def get_outputs(self):
            return [Output()]

    class Session:
        def io_binding(self):
            return Binding()

        def run_with_iobinding(self, _):
            events.append("run")

    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: Stream())
    logits = session_module._run_cuda(Session(), "image", "logits", Batch())
    assert events == ["torch finished", "bound", "run"] and logits.shape == (1, 2, 4, 4)


def test_steady_batches_fill_a_shorter_batch_in_to_the_largest_run_at_its_size():
    # onnxruntime's CUDA convolutions set up again for every new input shape (33 ms a batch on
    # an H100); the audit's batches alternate between two sizes, so it fills the shorter in.
    from types import SimpleNamespace

    import torch

    from segrob.onnx.graph import guarded_run

    def feed(steady: bool) -> list[tuple[int, ...]]:
        seen: list[tuple[int, ...]] = []

        def model(batch):  # each image's output is its own double: mixing would show
            seen.append(tuple(batch.shape))
            return batch.numpy() * 2

        run = guarded_run(None, SimpleNamespace(static_batch=None), model, steady_batches=steady)
        for n, size in ((4, 8), (3, 8), (2, 16), (4, 8), (1, 16), (5, 8)):
            batch = torch.arange(n * size * size, dtype=torch.float32).reshape(n, 1, size, size)
            assert np.array_equal(run(batch), batch.numpy() * 2)
        return seen

    assert feed(steady=True) == [(4, 1, 8, 8), (4, 1, 8, 8), (2, 1, 16, 16), (4, 1, 8, 8),
                                 (2, 1, 16, 16), (5, 1, 8, 8)]
    assert feed(steady=False) == [(4, 1, 8, 8), (3, 1, 8, 8), (2, 1, 16, 16), (4, 1, 8, 8),
                                  (1, 1, 16, 16), (5, 1, 8, 8)]


@pytest.mark.parametrize("provider", ["CUDAExecutionProvider", "CPUExecutionProvider"])
def test_the_audit_keeps_batches_steady_on_cuda_alone(model_path: Path, monkeypatch, provider):
    # On the CPU a filled-in batch would cost its zeros' compute and buy nothing.
    import dataclasses

    import torch

    from segrob.audit.model_spec import model_spec
    from segrob.audit.runner import AuditOptions
    from segrob.onnx import session as session_module

    info = create_session(model_path, device="cpu", threads=1)
    sizes: list[int] = []

    def recorded(session, batch):
        sizes.append(len(batch))
        return run(dataclasses.replace(session, providers=["CPUExecutionProvider"]), batch)

    monkeypatch.setattr(session_module, "run", recorded)
    spec = model_spec(dataclasses.replace(info, providers=[provider]), AuditOptions(device="cpu"))
    for n in (4, 3):
        spec.run(torch.zeros((n, 1, 8, 8)))
    assert sizes == ([4, 4] if provider == "CUDAExecutionProvider" else [4, 3])
