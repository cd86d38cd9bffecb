"""Deployment checks of an ONNX file: is it valid, described, runnable, fast and deterministic?

``check_model_file(path)`` works on any ONNX segmentation model; segrob's metadata makes the
checks sharper (accepted sizes, channels) and is reported as missing when absent. Checks:

* the ONNX checker with full shape inference (a failure is an error: the file is broken);
* ``segrob.*`` metadata present, parseable and consistent with the graph's inputs/outputs;
* accepted input shapes: static or dynamic per axis, and shapes tried that work or fail;
* the execution provider that really ran (``session.get_providers()``);
* latency percentiles over ``runs`` timed runs and throughput (images per second);
* determinism: the same input ``repeats`` times gives bitwise-equal outputs;
* with the training run folder (``run``): this file's speed beside torch eager on the same input,
  on the same kind of device (the CPU, or CUDA where both onnxruntime and torch have it), in
  alternating rounds, with their argmax agreement (run it on each exported precision to compare
  them). Without the run there is no checkpoint to time, and the item says so.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from segrob.errors import SegrobError, UsageError
from segrob.io_utils import file_sha256
from segrob.onnx.graph import contract_text, read_contract
from segrob.onnx.metadata import checker_problem, load_onnx, missing_keys, parse_metadata_props
from segrob.onnx.probes import (
    ShapeProbe,
    base_shape,
    measure_determinism,
    measure_latency,
    probe_shapes,
    random_input,
    shape_text,
)
from segrob.onnx.session import create_session, torch_device_for


@dataclass
class CheckItem:
    """One line of the verdict: ``status`` is ``pass``, ``warn``, ``fail`` or ``skip``."""

    name: str
    status: str
    detail: str


@dataclass
class CheckReport:
    """Everything ``segrob check`` measured; ``passed`` is false when any item failed."""

    path: str
    size_bytes: int
    sha256: str
    ir_version: int
    opsets: dict[str, int]
    producer: str
    checker: dict[str, Any]
    metadata: dict[str, Any]
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    shapes: list[ShapeProbe]
    providers: dict[str, Any]
    latency: dict[str, Any] | None
    determinism: dict[str, Any] | None
    items: list[CheckItem] = field(default_factory=list)
    #: What the graph and probes say about feeding it (:class:`segrob.onnx.graph.GraphContract`).
    graph: dict[str, Any] | None = None
    #: this file against torch eager on the same input (``None``: not measured, see the items)
    speed: dict[str, Any] | None = None

    @property
    def passed(self) -> bool:
        return all(item.status != "fail" for item in self.items)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["passed"] = self.passed
        return out


def _value_info(value: Any) -> dict[str, Any]:
    import onnx

    tensor = value.type.tensor_type
    shape = [d.dim_param if d.dim_param else (int(d.dim_value) if d.dim_value > 0 else None)
             for d in tensor.shape.dim]
    return {
        "name": value.name,
        "type": onnx.TensorProto.DataType.Name(tensor.elem_type).lower(),
        "shape": shape,
        "dynamic": [not isinstance(s, int) for s in shape],
    }


def check_model_file(
    path: str | os.PathLike,
    *,
    device: str = "auto",
    runs: int = 20,
    warmup: int = 3,
    repeats: int = 3,
    batch_size: int = 1,
    threads: int | None = None,
    run: str | os.PathLike | None = None,
) -> CheckReport:
    """Run the deployment checks on ``path`` (see the module docstring); ``run`` is the training
    run folder whose checkpoint torch eager is timed with.

    Raises:
        UsageError: ``runs``, ``repeats`` or ``batch_size`` out of range.
        SegrobError: the file is missing, not ONNX, fails the ONNX checker, cannot be loaded by
            onnxruntime, or ``device="cuda"`` cannot be honoured.
    """

    if runs < 1 or repeats < 2 or batch_size < 1 or warmup < 0:
        raise UsageError("--runs and --batch-size must be >= 1, repeats >= 2, warmup >= 0")
    report = _static_report(Path(path))
    if len(report.inputs) != 1:
        report.items.append(CheckItem("inputs", "fail",
                                      f"{len(report.inputs)} inputs; a segmentation model takes one image"))
        return report
    _runtime_checks(report, device=device, runs=runs, warmup=warmup, repeats=repeats,
                    batch_size=batch_size, threads=threads, run=run)
    return report


def _static_report(model_path: Path) -> CheckReport:
    """What the file itself says: the ONNX checker, the metadata, the inputs and outputs."""
    model = load_onnx(model_path)
    problem = checker_problem(model_path)
    if problem is not None:
        raise SegrobError(f"{model_path}: fails the ONNX checker: {problem}")
    props = {p.key: p.value for p in model.metadata_props}
    values, bad = parse_metadata_props(props)
    metadata = {
        "segrob": bool(values or bad),
        "values": values,
        "missing": missing_keys(values),
        "unparseable": bad,
        "other_keys": sorted(k for k in props if not k.startswith("segrob.")),
    }
    initializers = {i.name for i in model.graph.initializer}
    report = CheckReport(
        path=str(model_path),
        size_bytes=model_path.stat().st_size,
        sha256=file_sha256(model_path),
        ir_version=int(model.ir_version),
        opsets={o.domain or "ai.onnx": int(o.version) for o in model.opset_import},
        producer=f"{model.producer_name} {model.producer_version}".strip(),
        checker={"ok": True, "full_check": True},
        metadata=metadata,
        inputs=[_value_info(v) for v in model.graph.input if v.name not in initializers],
        outputs=[_value_info(v) for v in model.graph.output],
        shapes=[],
        providers={},
        latency=None,
        determinism=None,
    )
    report.items.append(CheckItem("onnx checker", "pass", "valid, shapes inferred (full check)"))
    report.items.append(_metadata_item(metadata))
    return report


def _runtime_checks(report: CheckReport, *, device: str, runs: int, warmup: int, repeats: int,
                    batch_size: int, threads: int | None, run: str | os.PathLike | None) -> None:
    """The checks that run the model in onnxruntime: provider, shapes, latency, determinism."""
    import onnxruntime as ort

    items, values, inputs = report.items, report.metadata["values"], report.inputs
    info = create_session(report.path, device=device, threads=threads)
    used = info.provider
    report.providers = {
        "requested": device,
        "available": list(ort.get_available_providers()),
        "used": list(info.providers),
        "provider": used,
    }
    items.append(CheckItem("provider", "pass", f"{used} ({device} requested)"))
    items.append(_consistency_item(values, inputs[0]["shape"], report.outputs[0]["shape"]))
    contract = read_contract(info, in_channels=values.get("in_channels"))
    report.graph = contract.to_dict()
    status = "pass" if contract.size_multiple else "warn"
    items.append(CheckItem("graph contract", status, contract_text(contract)))
    values = {"size_multiple": contract.size_multiple, **values}
    base = base_shape(info, values, batch_size)
    report.shapes = probe_shapes(info, values, base)
    items.append(_shapes_item(report.shapes, inputs[0]))
    if not report.shapes[0].ok:
        return
    sample = random_input(info, base)
    report.latency = measure_latency(info, sample, runs=runs, warmup=warmup)
    items.append(CheckItem(
        "latency", "pass",
        f"p50 {report.latency['p50_ms']:.2f} ms, p95 {report.latency['p95_ms']:.2f} ms, "
        f"{report.latency['throughput']:.1f} images/s at {shape_text(base)}",
    ))
    report.determinism = measure_determinism(info, sample, repeats=repeats)
    same = report.determinism["bitwise_equal"]
    items.append(CheckItem(
        "determinism", "pass" if same else "warn",
        f"{repeats} runs bitwise equal" if same else
        f"outputs differ across runs (max |diff| {report.determinism['max_abs_diff']:.3g})",
    ))
    items.append(_parity_item(values))
    items.append(_speed_item(report, info, sample, run=run, rounds=max(3, min(runs, 10))))


def _speed_item(report: CheckReport, info: Any, sample: Any, *, run: str | os.PathLike | None,
                rounds: int) -> CheckItem:
    if run is None:
        return CheckItem("speed vs torch", "skip",
                         "no run folder given (--run DIR): torch eager needs the checkpoint")
    device = torch_device_for(info.provider)
    if device is None:
        return CheckItem("speed vs torch", "skip", f"torch has no device like {info.provider}, which ran")
    report.speed = measure_against_torch(info, sample, run, rounds=rounds, device=device)
    speed = report.speed
    return CheckItem(
        "speed vs torch", "pass",
        f"{speed['precision']} {speed['onnx_ms']:.2f} ms vs torch eager {speed['torch_ms']:.2f} ms "
        f"(x{speed['ratio']:.2f}) on {device}, argmax agreement {speed['agreement']:.4f} at "
        f"{shape_text(sample.shape)}",
    )


def measure_against_torch(info: Any, sample: Any, run: str | os.PathLike, *, rounds: int,
                          device: str = "cpu") -> dict[str, Any]:
    """Median ms of the run's checkpoint in torch eager (float32, on ``device``) and of ``info``'s
    session on ``sample``, timed in alternating rounds so that machine load affects both alike.
    Both take the array from host memory and give theirs back there, as onnxruntime does, so on
    CUDA each call includes its copies and waits for the GPU to finish."""
    import numpy as np
    import torch

    from segrob.onnx.probes import alternating_median_ms, run_once
    from segrob.training import load_run

    model = load_run(run)[0].eval().to(device)
    tensor = torch.from_numpy(sample)

    def torch_eager() -> np.ndarray:
        return model(tensor.to(device)).cpu().numpy()

    with torch.no_grad():
        expected, got = torch_eager(), run_once(info, sample)  # warm-up and agreement
        torch_ms, onnx_ms = alternating_median_ms([torch_eager, lambda: run_once(info, sample)],
                                                  rounds=rounds)
    return {
        "run": str(run), "shape": list(sample.shape), "rounds": rounds, "device": device,
        "precision": str(info.metadata.get("precision", "fp32")),
        "torch_ms": round(torch_ms, 3), "onnx_ms": round(onnx_ms, 3), "ratio": round(torch_ms / onnx_ms, 3),
        "agreement": float(np.mean(expected.argmax(axis=1) == got.argmax(axis=1))),
    }


def _metadata_item(metadata: dict[str, Any]) -> CheckItem:
    if not metadata["segrob"]:
        return CheckItem("metadata", "warn",
                         "no segrob metadata (not exported by segrob); sizes and "
                         "preprocessing are guessed")
    problems = []
    if metadata["unparseable"]:
        problems.append("not JSON: " + ", ".join(metadata["unparseable"]))
    if metadata["missing"]:
        problems.append("missing: " + ", ".join(metadata["missing"]))
    if problems:
        return CheckItem("metadata", "warn", "; ".join(problems))
    return CheckItem("metadata", "pass", f"{len(metadata['values'])} segrob keys, all parseable")


def _consistency_item(values: dict[str, Any], input_shape: list, output_shape: list) -> CheckItem:
    """segrob metadata must describe the graph it is attached to."""
    if not values:
        return CheckItem("metadata vs graph", "skip", "no segrob metadata")
    problems = []
    dims = values.get("spatial_dims")
    if dims is not None and len(input_shape) != int(dims) + 2:
        problems.append(f"spatial_dims {dims} but input rank {len(input_shape)}")
    for key, shape in (("in_channels", input_shape), ("out_channels", output_shape)):
        expected = values.get(key)
        if expected is not None and len(shape) > 1 and isinstance(shape[1], int) \
                and shape[1] != int(expected):
            problems.append(f"{key} {expected} but the graph has {shape[1]}")
    if problems:
        return CheckItem("metadata vs graph", "fail", "; ".join(problems))
    return CheckItem("metadata vs graph", "pass", "dims and channels match the graph")


def _shapes_item(probes: list[ShapeProbe], value: dict[str, Any]) -> CheckItem:
    base = probes[0]
    if not base.ok:
        return CheckItem(
            "input shapes", "fail", f"{shape_text(base.shape)} does not run: {base.error}"
        )
    axes = ", ".join(
        f"{_axis_name(axis, name)} {'dynamic' if dyn else 'static'}"
        for axis, (name, dyn) in enumerate(zip(value["shape"], value["dynamic"], strict=True))
    )
    unexpected = [p for p in probes if p.expected is not None and p.ok != p.expected]
    worked = sum(p.ok for p in probes)
    detail = f"{axes}; {worked}/{len(probes)} tried shapes run"
    if unexpected:
        wrong = unexpected[0]
        how = "runs" if wrong.ok else f"fails ({wrong.error})"
        return CheckItem(
            "input shapes", "warn", f"{detail}; {shape_text(wrong.shape)} {how} unexpectedly"
        )
    return CheckItem("input shapes", "pass", detail)


def _axis_name(axis: int, name: Any) -> str:
    if isinstance(name, str):
        return name
    return {0: "batch", 1: "channels"}.get(axis, f"axis {axis}")


def _parity_item(values: dict[str, Any]) -> CheckItem:
    parity = values.get("parity")
    if not isinstance(parity, dict):
        return CheckItem("export parity", "skip", "no parity results in the metadata")
    status = "pass" if parity.get("passed") else "fail"
    agreement = float(parity.get("argmax_agreement") or 0.0)
    dice = float(parity.get("mask_dice") or 0.0)
    return CheckItem(
        "export parity", status,
        f"{values.get('precision', '?')}: argmax agreement {agreement:.4f}, "
        f"mask Dice {dice:.4f} on {parity.get('inputs', '?')}",
    )


