"""onnxruntime sessions: the provider that really runs, the input contract, and inference.

``device="cuda"`` asks for the CUDA execution provider only and then checks that onnxruntime
really uses it (onnxruntime silently falls back to the CPU when CUDA cannot be loaded), so a
deployment check never reports CPU numbers as GPU numbers. ``"auto"`` tries CUDA first when the
build has it and reports what was used. On CUDA, inference goes through IOBinding so that the
output is written on the device and a batch already on the GPU (a torch tensor) is not copied.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segrob.errors import SegrobError, UsageError, first_line
from segrob.onnx.metadata import parse_metadata_props

DEVICES = ("auto", "cpu", "cuda")
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
#: The CUDA provider's options. cuDNN's algorithm search: onnxruntime's default, EXHAUSTIVE,
#: times every convolution algorithm whenever a convolution meets an input shape other than the
#: one it last saw, and an audit's batch sizes change (a case's last batch is shorter). On an
#: H100 that search took 7.5 s of a 256 px U-Net audit's 8.4 s; HEURISTIC, 1.6 s of 3.4 s, with
#: the same steady speed (benchmarks/results/gpu_check_h100_search_mode.json). DEFAULT was as
#: fast but has onnxruntime log a "Fallback mode" warning for every convolution.
CUDA_OPTIONS = {"cudnn_conv_algo_search": "HEURISTIC"}

#: An onnxruntime provider: its name, or its name and options.
Provider = str | tuple[str, dict[str, str]]

Dim = int | str | None


@dataclass
class SessionInfo:
    """An onnxruntime session and what a caller needs to feed it.

    Attributes:
        session: the ``onnxruntime.InferenceSession``.
        path: the model file.
        device: the device asked for (``auto``, ``cpu`` or ``cuda``).
        providers: providers really used, in priority order (``session.get_providers()``).
        input_names / output_names: graph inputs and outputs; the first of each is the image
            and the logits.
        input_shape / output_shape: dims of the first input/output; an ``int`` is static, a
            ``str`` is a symbolic (dynamic) dim, ``None`` an unnamed dynamic dim.
        input_type: element type of the first input, e.g. ``tensor(float)``.
        metadata: parsed ``segrob.*`` metadata, keys without the prefix (empty for other models).
    """

    session: Any
    path: Path
    device: str
    providers: list[str]
    input_names: list[str]
    output_names: list[str]
    input_shape: list[Dim]
    output_shape: list[Dim]
    input_type: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def provider(self) -> str:
        """The provider that runs the graph (the first one onnxruntime kept)."""
        return self.providers[0]

    @property
    def on_cuda(self) -> bool:
        return self.provider == CUDA

    @property
    def input_name(self) -> str:
        return self.input_names[0]

    @property
    def output_name(self) -> str:
        return self.output_names[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "device": self.device,
            "providers": list(self.providers),
            "inputs": list(self.input_names),
            "outputs": list(self.output_names),
            "input_shape": list(self.input_shape),
            "output_shape": list(self.output_shape),
            "input_type": self.input_type,
        }


def _dims(shape: Any) -> list[Dim]:
    """onnxruntime reports dims as int, str (symbolic) or None; negative ints are dynamic too."""
    return [d if not (isinstance(d, int) and d < 0) else None for d in (shape or [])]


def _cuda_available(ort: Any) -> bool:
    return CUDA in ort.get_available_providers()


def _new_session(ort: Any, source: str | bytes, providers: list[Provider], threads: int | None,
                 spin: bool = True) -> Any:
    options = ort.SessionOptions()
    # Failures reach the caller as exceptions; the C++ logger would print them a second time.
    options.log_severity_level = 4
    if threads:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if _cuda_provider() in providers:
        # A missing CUDA library is logged by onnxruntime's default logger before we can report
        # it ourselves; silence it during creation and say what happened in our own words.
        ort.set_default_logger_severity(4)
        try:
            return ort.InferenceSession(source, options, providers=providers)
        finally:
            ort.set_default_logger_severity(2)
    return ort.InferenceSession(source, options, providers=providers)


GPU_SWITCH = "pip uninstall -y onnxruntime onnxruntime-gpu && pip install 'onnxruntime-gpu>=1.18'"


def gpu_install_hint() -> str:
    """How to get onnxruntime's CUDA provider, given which onnxruntime builds are installed.

    Both builds install into one ``onnxruntime`` folder, so with both present the CPU build's
    files can shadow the GPU build's: the only safe switch removes both, then adds the GPU one.
    """
    from importlib import metadata

    installed = set()
    for name in ("onnxruntime", "onnxruntime-gpu"):
        try:
            metadata.version(name)
            installed.add(name)
        except metadata.PackageNotFoundError:
            pass
    if installed == {"onnxruntime", "onnxruntime-gpu"}:
        return f"both onnxruntime and onnxruntime-gpu are installed and the CPU build wins; run {GPU_SWITCH}"
    return f"install the GPU build: {GPU_SWITCH}"


def torch_device_for(provider: str) -> str | None:
    """The torch device that runs where onnxruntime's ``provider`` does: ``cpu``, ``cuda`` where
    torch has CUDA too, else None (another provider, or a torch built without CUDA)."""
    if provider == CPU:
        return "cpu"
    if provider == CUDA:
        import torch

        return "cuda" if torch.cuda.is_available() else None
    return None


def _cuda_provider() -> Provider:
    return (CUDA, dict(CUDA_OPTIONS))


def _providers(ort: Any, device: str) -> list[Provider]:
    """The execution providers to ask for on ``device``; ``cuda`` without CUDA is an error."""
    if device == "cuda" and not _cuda_available(ort):
        raise SegrobError(
            f"--device cuda: this onnxruntime build ({ort.__version__}) has no CUDA execution "
            f"provider; {gpu_install_hint()}, or use --device cpu"
        )
    if device == "cpu":
        return [CPU]
    if device == "cuda":
        return [_cuda_provider()]
    return [_cuda_provider(), CPU] if _cuda_available(ort) else [CPU]


def create_session(
    path: str | os.PathLike,
    *,
    device: str = "auto",
    threads: int | None = None,
    spin: bool = True,
) -> SessionInfo:
    """Open ``path`` in onnxruntime on ``device`` and describe the session.

    ``threads`` sets onnxruntime's intra-op threads (default: its own choice, every core).
    ``spin=False`` makes them sleep between operators instead of spinning: as fast alone, and
    far less of a burden on other threads of the process that share the cores (the audit's
    scorer), which would otherwise wait behind threads that only spin.

    Raises:
        UsageError: an unknown ``device``.
        SegrobError: the file is missing or not a loadable ONNX model, or ``device="cuda"`` and
            onnxruntime cannot run on CUDA here.
    """
    import onnxruntime as ort

    if device not in DEVICES:
        raise UsageError(f"unknown device {device!r} (valid: {', '.join(DEVICES)})")
    model_path = Path(path)
    if not model_path.is_file():
        raise SegrobError(f"{model_path}: no such model file")
    providers = _providers(ort, device)
    try:
        session = _new_session(ort, str(model_path), providers, threads, spin)
    except Exception as error:  # onnxruntime raises its own exception types for bad files
        if device == "cuda":
            raise SegrobError(
                f"{model_path}: onnxruntime could not use CUDA: {first_line(error)}"
            ) from None
        raise SegrobError(
            f"{model_path}: onnxruntime cannot load this model: {first_line(error)}"
        ) from None
    used = list(session.get_providers())
    if device == "cuda" and (not used or used[0] != CUDA):
        raise SegrobError(
            f"--device cuda: onnxruntime could not use CUDA here (it fell back to {used[0]}); "
            "check that a GPU is visible and the CUDA/cuDNN libraries this onnxruntime needs "
            "are installed, or use --device cpu / auto"
        )
    inputs = session.get_inputs()
    outputs = session.get_outputs()
    return SessionInfo(
        session=session,
        path=model_path,
        device=device,
        providers=used,
        input_names=[i.name for i in inputs],
        output_names=[o.name for o in outputs],
        input_shape=_dims(inputs[0].shape),
        output_shape=_dims(outputs[0].shape) if outputs else [],
        input_type=str(inputs[0].type),
        metadata=read_metadata(session),
    )


def read_metadata(source: Any) -> dict[str, Any]:
    """Parsed ``segrob.*`` metadata of a model, keys without the prefix; a missing key is absent.

    Args:
        source: a path, an ``onnx.ModelProto``, a :class:`SessionInfo` or an onnxruntime session.

    Values that are not valid JSON are skipped here; :func:`segrob.onnx.checks.check_model_file`
    reports them.
    """
    if isinstance(source, SessionInfo):
        return dict(source.metadata)
    if hasattr(source, "get_modelmeta"):
        props = source.get_modelmeta().custom_metadata_map
    elif hasattr(source, "metadata_props"):
        props = {p.key: p.value for p in source.metadata_props}
    else:
        from segrob.onnx.metadata import load_onnx

        model = load_onnx(source, load_weights=False)
        props = {p.key: p.value for p in model.metadata_props}
    parsed, _ = parse_metadata_props(props)
    return parsed


def run(session: SessionInfo | Any, batch: Any) -> np.ndarray:
    """Logits for one batch ``(N, C, *spatial)`` as a float32 NumPy array.

    ``batch`` is a NumPy array or a torch tensor; on CUDA a CUDA tensor is bound in place.
    A plain onnxruntime session is accepted too (first input, first output).
    """
    info = session if isinstance(session, SessionInfo) else None
    raw = info.session if info else session
    input_name = info.input_name if info else raw.get_inputs()[0].name
    output_name = info.output_name if info else raw.get_outputs()[0].name
    if info is not None and info.on_cuda:
        return _run_cuda(raw, input_name, output_name, batch)
    array = batch.detach().cpu().numpy() if hasattr(batch, "detach") else batch
    array = np.ascontiguousarray(array, dtype=np.float32)
    return np.asarray(raw.run([output_name], {input_name: array})[0], dtype=np.float32)


def _run_cuda(raw: Any, input_name: str, output_name: str, batch: Any) -> np.ndarray:
    """IOBinding on device 0: input bound from device memory when it is already there."""
    import onnxruntime as ort

    binding = raw.io_binding()
    if hasattr(batch, "is_cuda") and batch.is_cuda:
        import torch

        tensor = batch.detach().float().contiguous()
        # onnxruntime reads the pointer on its own CUDA stream, which does not wait for torch's:
        # without this, it can read a batch that torch is still writing.
        torch.cuda.current_stream(tensor.device).synchronize()
        binding.bind_input(
            name=input_name,
            device_type="cuda",
            device_id=tensor.device.index or 0,
            element_type=np.float32,
            shape=tuple(tensor.shape),
            buffer_ptr=tensor.data_ptr(),
        )
    else:
        array = batch.detach().cpu().numpy() if hasattr(batch, "detach") else batch
        array = np.ascontiguousarray(array, dtype=np.float32)
        value = ort.OrtValue.ortvalue_from_numpy(array, "cuda", 0)
        binding.bind_ortvalue_input(input_name, value)
    binding.bind_output(output_name, "cuda", 0)
    raw.run_with_iobinding(binding)
    return np.asarray(binding.get_outputs()[0].numpy(), dtype=np.float32)


#: The offline graph optimisation ``segrob export --optimize`` saves. Extended, not all: the
#: "all" level adds layout transformations (NCHWc blocks) chosen for the exporting machine's
#: instruction set, which onnxruntime's documentation warns may not run, or run slower, elsewhere;
#: the extended fusions hold on any CPU (the file then needs onnxruntime, whose contrib ops it uses).
OFFLINE_OPTIMIZATION = "ORT_ENABLE_EXTENDED"


def optimize_model_file(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Save onnxruntime's offline-optimised graph of ``source`` (at :data:`OFFLINE_OPTIMIZATION`,
    for the CPU provider) to ``target``; its metadata comes along."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, OFFLINE_OPTIMIZATION)
    options.optimized_model_filepath = str(target)
    try:
        ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own exception types
        raise SegrobError(
            f"{source}: onnxruntime could not optimise the graph: {first_line(error)}"
        ) from None


def threads_beside(workers: int = 1) -> int | None:
    """onnxruntime intra-op threads for a session that shares the CPU with ``workers`` busy threads
    of its own process (the audit's helpers): every usable core but ``workers`` from four cores up;
    ``None`` (onnxruntime's choice, all cores) below, where giving the helpers a core of their own
    would take a third to a half of the inference's threads for a few percent of the work."""
    cores = usable_cores()
    return cores - workers if cores >= 4 else None


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the system tells it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
