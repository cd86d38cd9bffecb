"""PyTorch -> ONNX graph with the dynamo exporter: dynamic axes and readable dim names.

The batch axis is ``Dim("batch")``; spatial axes are ``Dim.AUTO``, which torch 2.13 keeps
symbolic wherever the network allows: sizes that must be multiples of ``2**levels`` do not fail
the trace (a ``Dim`` with explicit constraints would need the multiple spelled out per model).
A batch of at least 2 is traced so the batch axis cannot be specialised to 1. Fixed-size
models (UNETR) keep static spatial axes.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from segrob.errors import SegrobError, first_line

INPUT_NAME = "image"
OUTPUT_NAME = "logits"
AXIS_NAMES = {2: ("height", "width"), 3: ("depth", "height", "width")}


def to_onnx(model: nn.Module, example: torch.Tensor, *, opset: int, fixed_spatial: bool) -> Any:
    """Trace ``model`` with the dynamo exporter and return the ``onnx.ModelProto``.

    The batch is ``Dim("batch")``; spatial axes are ``Dim.AUTO`` so that the exporter keeps them
    symbolic wherever the network allows. The graph carries no size guard: a size the network
    cannot take fails inside onnxruntime (at the skip ``Concat``), which is why the metadata
    states ``size_multiple`` and ``min_size``. Fixed-size models keep static sizes.
    """
    from torch.export import Dim

    spec: dict[int, Any] = {0: Dim("batch", min=1, max=4096)}
    if not fixed_spatial:
        spec.update({axis: Dim.AUTO for axis in range(2, example.ndim)})
    sink = io.StringIO()
    try:
        # The exporter narrates its steps on stdout and warns about optional extras; a library
        # stays silent.
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink), _quiet_torch_onnx():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model,
                (example,),
                dynamo=True,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes=(spec,),
                external_data=False,
                verbose=False,
            )
    except Exception as error:  # torch raises many exporter-specific types
        name = getattr(model, "arch", type(model).__name__)
        raise SegrobError(
            f"ONNX export of {name} failed: {first_line(error, 300)} "
            "(rerun with --debug for the traceback)"
        ) from error
    return program.model_proto


@contextlib.contextmanager
def _quiet_torch_onnx() -> Iterator[None]:
    """Mute the exporter's logger (it reports optional torchvision ops it cannot register)."""
    logger = logging.getLogger("torch.onnx")
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(previous)


def rename_dims(proto: Any, spatial_dims: int) -> list[int | str]:
    """Give the input's symbolic dims readable names (``batch``, ``height``, ...) graph-wide.

    Returns the input shape, ints for static axes and names for dynamic ones.
    """
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    mapping: dict[str, str] = {}
    names = ("batch", None, *AXIS_NAMES[spatial_dims])
    for dim, name in zip(dims, names, strict=False):
        if name and dim.dim_param and dim.dim_param != name:
            mapping[dim.dim_param] = name
    if mapping:
        pattern = re.compile(r"\b(" + "|".join(re.escape(k) for k in mapping) + r")\b")
        values = [*proto.graph.input, *proto.graph.output, *proto.graph.value_info]
        for value in values:
            for dim in value.type.tensor_type.shape.dim:
                if dim.dim_param:
                    dim.dim_param = pattern.sub(lambda m: mapping[m.group(1)], dim.dim_param)
    return shape_of(proto.graph.input[0])


def shape_of(value: Any) -> list[int | str]:
    return [d.dim_param if d.dim_param else int(d.dim_value)
            for d in value.type.tensor_type.shape.dim]


def example_input(model: nn.Module, batch_size: int) -> torch.Tensor:
    """A random batch of a valid size; distinct sizes per axis keep the axes independent."""
    fixed = getattr(model, "fixed_size", None)
    if fixed is not None:
        spatial = tuple(int(s) for s in fixed)
    else:
        minimum = int(getattr(model, "min_size", 1))
        multiple = int(getattr(model, "size_multiple", 1))
        spatial = tuple(max(minimum, 2) + axis * multiple for axis in range(model.spatial_dims))
    generator = torch.Generator().manual_seed(0)
    return torch.randn((batch_size, int(model.in_channels), *spatial), generator=generator)
