"""What a model's graph says about how to feed it, for models segrob did not train.

From the graph: which input dims are static (batch, spatial), its outputs and whether each one
already ends in Softmax or Sigmoid. From a few probes: each output's shape and the spatial size
multiple (a U-Net with five poolings runs at 64 and 96 but not at 80: a multiple of 32). What
cannot be inferred is overridden by the user (``--output``, ``--activation``,
``--size-multiple``, ``--threshold``); the contract records which value came from where.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from segrob.errors import SegrobError, UsageError
from segrob.onnx.session import SessionInfo

ACTIVATIONS = ("softmax", "sigmoid", "none")
#: Ops that pass a tensor through unchanged, looked through to find an output's activation.
_PASS_THROUGH = {"Identity", "Cast"}
_ENDINGS = {"Softmax": "softmax", "Sigmoid": "sigmoid", "LogSoftmax": "log_softmax"}


@dataclass
class OutputInfo:
    """One graph output: its declared dims, the shape a probe produced, and its last op."""

    name: str
    dims: list
    probed_shape: list[int] | None = None
    ends_in: str | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class GraphContract:
    """How the audit feeds the model and reads its output; ``sources`` says where each came from:
    ``graph``, ``probe``, ``metadata``, ``default`` or ``override``."""

    input_name: str
    input_dims: list
    static_batch: int | None
    static_spatial: tuple[int, ...] | None
    outputs: list[OutputInfo]
    output_index: int
    activation: str
    size_multiple: int | None
    threshold: float = 0.5
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def output(self) -> OutputInfo:
        return self.outputs[self.output_index]

    @property
    def out_channels(self) -> int | None:
        shape = self.output.probed_shape or self.output.dims
        return shape[1] if len(shape) > 1 and isinstance(shape[1], int) else None

    @property
    def binary(self) -> bool:
        """A one-channel output is a foreground probability (or logit): a binary model."""
        return self.out_channels == 1

    @property
    def n_classes(self) -> int | None:
        return 2 if self.binary else self.out_channels

    def to_dict(self) -> dict:
        return {
            "input": {"name": self.input_name, "dims": list(self.input_dims)},
            "static_batch": self.static_batch,
            "static_spatial": list(self.static_spatial) if self.static_spatial else None,
            "outputs": [o.to_dict() for o in self.outputs],
            "output": self.output.name,
            "activation": self.activation,
            "binary": self.binary,
            "threshold": self.threshold if self.binary else None,
            "size_multiple": self.size_multiple,
            "sources": dict(self.sources),
        }


def read_contract(info: SessionInfo, overrides: dict | None = None, *,
                  in_channels: int | None = None) -> GraphContract:
    """The contract of ``info``'s model: graph, metadata and probes, then ``overrides``
    (keys ``output``, ``activation``, ``size_multiple``, ``threshold``)."""
    from segrob.onnx.probes import probe_outputs, probe_size_multiple

    overrides = overrides or {}
    dims = list(info.input_shape)
    static_batch = dims[0] if dims and isinstance(dims[0], int) else None
    spatial = dims[2:]
    static_spatial = tuple(spatial) if spatial and all(isinstance(d, int) for d in spatial) else None
    channels = dims[1] if len(dims) > 1 and isinstance(dims[1], int) else in_channels
    endings = _output_endings(info)
    outputs = [OutputInfo(name, list(o.shape) if o.shape else [], ends_in=endings.get(name))
               for name, o in zip(info.output_names, info.session.get_outputs(), strict=True)]
    sources: dict[str, str] = {"static_batch": "graph", "static_spatial": "graph"}
    multiple, sources["size_multiple"] = _size_multiple(info, overrides, static_spatial, channels,
                                                        static_batch, probe_size_multiple)
    base = None
    for base in _probe_shapes(dims, static_batch, channels, multiple):
        shapes = probe_outputs(info, base)
        for output, shape in zip(outputs, shapes, strict=True):
            output.probed_shape = shape
        if any(shape is not None for shape in shapes):
            break
    index, sources["output"] = _choose_output(outputs, overrides.get("output"), base)
    activation, sources["activation"] = _activation(outputs[index], overrides.get("activation"))
    threshold = overrides.get("threshold")
    sources["threshold"] = "override" if threshold is not None else "default"
    if threshold is not None and not _one_channel(outputs[index]):
        shape = outputs[index].probed_shape or outputs[index].dims
        raise UsageError(f"--threshold applies to a one-channel output; output "
                         f"{outputs[index].name} has shape {shape} (classes are taken by argmax)")
    return GraphContract(
        input_name=info.input_name, input_dims=dims, static_batch=static_batch,
        static_spatial=static_spatial, outputs=outputs, output_index=index, activation=activation,
        size_multiple=multiple, threshold=float(0.5 if threshold is None else threshold),
        sources=sources,
    )


def contract_text(contract: GraphContract) -> str:
    """One line for people: what is static, the size multiple, the output and its activation."""
    batch = f"batch {contract.static_batch}" if contract.static_batch else "dynamic batch"
    spatial = ("fixed size " + "x".join(map(str, contract.static_spatial)) if contract.static_spatial
               else f"sizes multiple of {contract.size_multiple} ({contract.sources['size_multiple']})"
               if contract.size_multiple else "size multiple unknown: pass --size-multiple to audit")
    output = contract.output
    shape = "x".join(map(str, output.probed_shape or output.dims))
    ending = f", ends in {output.ends_in}" if output.ends_in else ""
    kind = "binary" if contract.binary else f"{contract.n_classes} classes"
    return (f"{batch}; {spatial}; output {output.name} ({contract.output_index + 1} of "
            f"{len(contract.outputs)}, {shape}{ending}, {kind}); activation {contract.activation}")


def select_output(info: SessionInfo, contract: GraphContract) -> SessionInfo:
    """``info`` with the contract's output first, the one :func:`segrob.onnx.session.run` reads."""
    names = list(info.output_names)
    chosen = names.pop(contract.output_index)
    return dataclasses.replace(info, output_names=[chosen, *names], output_shape=contract.output.dims)


def _size_multiple(info, overrides, static_spatial, channels, static_batch, probe) -> tuple[int | None, str]:
    if overrides.get("size_multiple"):
        return int(overrides["size_multiple"]), "override"
    if info.metadata.get("size_multiple"):
        return int(info.metadata["size_multiple"]), "metadata"
    if static_spatial is not None:
        return 1, "graph"
    if not isinstance(channels, int):
        return None, "unknown"
    found = probe(info, batch=static_batch or 1, channels=channels)
    return found, "probe" if found else "unknown"


def _probe_shapes(dims: list, static_batch, channels, multiple) -> list[list[int]]:
    """Input shapes to probe the outputs with, in turn until one runs: with a known size multiple
    a small input first (a 3D probe at 32^3 costs an eighth of one at 64^3), then 64 per dynamic
    axis (a multiple of every power of two a U-Net needs), or the multiple if larger."""
    from segrob.onnx.probes import sized_input

    if not isinstance(channels, int):
        return []
    sizes = [max(64, multiple or 1)]
    if multiple and 2 * multiple < sizes[0]:
        sizes.insert(0, max(2 * multiple, 16))
    shapes = [tuple(sized_input(dims, static_batch or 1, channels, size)) for size in sizes]
    return [list(shape) for shape in dict.fromkeys(shapes)]


def _choose_output(outputs: list[OutputInfo], wanted, base) -> tuple[int, str]:
    """``--output`` by name or index; else the first output at the input's full resolution."""
    if wanted is not None:
        text = str(wanted)
        names = [o.name for o in outputs]
        if text in names:
            return names.index(text), "override"
        if text.lstrip("-").isdigit() and -len(outputs) <= int(text) < len(outputs):
            return int(text) % len(outputs), "override"
        raise UsageError(f"--output {text!r} is not an output of the model "
                         f"(outputs: {', '.join(f'{i}={n}' for i, n in enumerate(names))})")
    if len(outputs) == 1 or base is None:
        return 0, "graph"
    full = [i for i, o in enumerate(outputs)
            if o.probed_shape and o.probed_shape[2:] == base[2:] and len(o.probed_shape) == len(base)]
    return (full[0], "probe") if full else (0, "graph")


def _activation(output: OutputInfo, wanted: str | None) -> tuple[str, str]:
    """What segrob applies to the output: nothing after a Softmax or Sigmoid already in the graph
    (LogSoftmax is log-probabilities: softmax turns them back); else softmax, or sigmoid for one
    channel."""
    if wanted is not None:
        if wanted not in ACTIVATIONS:
            raise UsageError(f"--activation must be one of {', '.join(ACTIVATIONS)}, got {wanted!r}")
        if wanted == "softmax" and _one_channel(output):
            raise UsageError(f"--activation softmax: output {output.name} has one channel (softmax over it"
                             " is 1 everywhere); use sigmoid, or none for probabilities")
        return wanted, "override"
    if output.ends_in in ("softmax", "sigmoid"):
        return "none", "graph"
    return ("sigmoid" if _one_channel(output) else "softmax"), "default"


def _one_channel(output: OutputInfo) -> bool:
    shape = output.probed_shape or output.dims
    return len(shape) > 1 and shape[1] == 1


def _output_endings(info: SessionInfo) -> dict[str, str]:
    """Output name -> its producing op (Softmax, Sigmoid, LogSoftmax), through Identity/Cast."""
    from segrob.onnx.metadata import load_onnx

    graph = load_onnx(info.path, load_weights=False).graph
    producer = {out: node for node in graph.node for out in node.output}
    endings = {}
    for output in graph.output:
        node = producer.get(output.name)
        while node is not None and node.op_type in _PASS_THROUGH and node.input:
            node = producer.get(node.input[0])
        if node is not None and node.op_type in _ENDINGS:
            endings[output.name] = _ENDINGS[node.op_type]
    return endings


def guarded_run(info: SessionInfo, contract: GraphContract, run, *, steady_batches: bool = False):
    """``run`` for any batch size (a static batch is filled in with zeros and cut back), with an
    onnxruntime failure turned into one line naming the model, the input and the fixing option.

    ``steady_batches``: a dynamic batch shorter than the largest one already run at its image
    size is filled in with zeros up to it as well, so that the model meets one input shape per
    image size. onnxruntime's CUDA convolutions set themselves up again whenever the input shape
    differs from the last one's, and an audit's batches alternate between two sizes (a case's
    last batch is shorter): on an H100 each change cost a 256 px U-Net 33 ms against 5 ms for
    the batch itself (``onnx_cuda_speed`` in benchmarks/results/gpu_check_h100_run3.json).
    Inference treats the images of a batch apart, so the zeros change no other image's output
    beyond the rounding of the algorithm picked for the larger batch (the 416 records of that
    benchmark's audit were identical); the largest batch at that size has already run, so they
    need no memory it did not.
    """
    largest: dict[tuple[int, ...], int] = {}

    def call(batch):
        size = contract.static_batch
        if size is None and steady_batches:
            shape = tuple(batch.shape[1:])
            size = largest[shape] = max(largest.get(shape, 0), len(batch))
        if size is None or len(batch) == size:
            return _explained(info, contract, run, batch)
        parts = []
        for start in range(0, len(batch), size):
            chunk = batch[start:start + size]
            missing = size - len(chunk)
            if missing:
                chunk = _pad_batch(chunk, missing)
            parts.append(_explained(info, contract, run, chunk)[: size - missing])
        return np.concatenate(parts)

    return call


def _pad_batch(chunk, missing: int):
    if hasattr(chunk, "new_zeros"):
        import torch

        return torch.cat([chunk, chunk.new_zeros((missing, *chunk.shape[1:]))])
    return np.concatenate([chunk, np.zeros((missing, *chunk.shape[1:]), dtype=chunk.dtype)])


def _explained(info: SessionInfo, contract: GraphContract, run, batch) -> np.ndarray:
    try:
        return run(batch)
    except SegrobError:
        raise
    except Exception as error:  # onnxruntime's own exception types
        from segrob.onnx.probes import short_error

        shape = "x".join(str(s) for s in batch.shape)
        raise SegrobError(
            f"{info.path}: the model did not run on a {shape} input ({short_error(error)}); "
            f"{_fix_hint(contract)}"
        ) from None


def _fix_hint(contract: GraphContract) -> str:
    if contract.static_spatial:
        return f"it takes {'x'.join(map(str, contract.static_spatial))} images: pass --window to match"
    if contract.size_multiple is None:
        return "its spatial size multiple could not be probed: pass --size-multiple N (e.g. 32)"
    how = contract.sources.get("size_multiple")
    return (f"segrob padded to a multiple of {contract.size_multiple} ({how}): pass --size-multiple N"
            " or --window to match what it accepts")
