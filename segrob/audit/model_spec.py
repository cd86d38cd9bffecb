"""What the audit needs to know about a deployed model, from its metadata or the user's flags."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from segrob.audit.inference import InferencePlan, OutputHead
from segrob.data.case import Case
from segrob.data.normalize import DEFAULT_NORMALIZATION, check_normalization
from segrob.errors import SegrobError


@dataclass
class AuditModel:
    """Shapes, preprocessing and the predict function of one onnxruntime session."""

    spatial_dims: int
    in_channels: int
    out_channels: int
    normalization: dict
    fixed_shape: tuple[int, ...] | None
    size_multiple: int
    patch_size: tuple[int, ...] | None
    fbr_range: dict | None
    metadata: dict
    run: Callable[[np.ndarray], np.ndarray]
    torch_device: str = "cpu"
    head: OutputHead = field(default_factory=OutputHead)
    graph: dict | None = None
    #: The :class:`~segrob.onnx.graph.GraphContract` itself, for workers that open their own session.
    contract: Any = field(default=None, repr=False, compare=False)

    @property
    def foreground_classes(self) -> list[int]:
        return list(range(1, self.out_channels))

    def describe(self) -> dict:
        return {
            "arch": self.metadata.get("arch"),
            "spatial_dims": self.spatial_dims,
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "normalization": self.normalization,
            "fixed_shape": list(self.fixed_shape) if self.fixed_shape else None,
            "fbr_range": self.fbr_range,
            "graph": self.graph,
        }

    def plan(self, options) -> InferencePlan:
        """Fixed-size models run in windows of their size; others whole, in ``--window``s, or (3D
        trained on patches) in windows of their patch unless ``options.inference`` is ``whole``."""
        from segrob.tiling import inference_window

        window = inference_window(options.inference, spatial_dims=self.spatial_dims, fixed=self.fixed_shape,
                                  window=options.window, patch=self.patch_size)
        if window is not None and len(window) != self.spatial_dims:
            raise SegrobError(
                f"--window has {len(window)} sizes but the model is {self.spatial_dims}D"
            )
        return InferencePlan(
            spatial_dims=self.spatial_dims,
            in_channels=self.in_channels,
            normalization=self.normalization,
            size_multiple=self.size_multiple,
            window=tuple(window) if window else None,
            fixed_size=self.fixed_shape is not None,
            overlap=options.overlap,
            batch_size=options.batch_size,
        )

    def check_case(self, case: Case) -> None:
        """Refuse a case the model cannot take, saying what it expects."""
        where = case.source.get("image", case.name)
        if case.spatial_dims != self.spatial_dims:
            raise SegrobError(
                f"{where}: the model takes {self.spatial_dims}D images, this case is {case.spatial_dims}D"
            )
        if case.in_channels != self.in_channels:
            raise SegrobError(
                f"{where}: the model takes {self.in_channels} channel(s), this case has {case.in_channels}"
            )
        if case.label is None:
            raise SegrobError(f"{where}: case has no label to score against")


def _meta(metadata: dict, key: str):
    return metadata.get(key, metadata.get(f"segrob.{key}"))


def model_spec(session_info, options) -> AuditModel:
    """Combine the session's input/output shapes, segrob metadata and ``options.overrides``."""
    from segrob.onnx.graph import guarded_run, read_contract, select_output
    from segrob.onnx.session import run as run_session

    metadata = dict(session_info.metadata or {})
    overrides = options.overrides
    input_shape = list(session_info.input_shape)
    spatial_dims = overrides.get("spatial_dims") or _meta(metadata, "spatial_dims") or len(input_shape) - 2
    spatial_dims = int(spatial_dims)
    if spatial_dims not in (2, 3) or len(input_shape) != spatial_dims + 2:
        raise SegrobError(
            f"model input has shape {input_shape}: expected (N, C, *spatial) with 2 or 3 spatial axes"
        )
    in_channels = overrides.get("in_channels") or _meta(metadata, "in_channels") or input_shape[1]
    if not isinstance(in_channels, int):
        raise SegrobError(
            "the model's channel count is not fixed and not in its metadata: pass --in-channels"
        )
    contract = read_contract(session_info, overrides, in_channels=in_channels)
    selected = select_output(session_info, contract)
    out_channels = _meta(metadata, "out_channels") or contract.n_classes
    if not isinstance(out_channels, int):
        raise SegrobError("the model's class count is unknown (no segrob metadata, dynamic output)"
                          " and a probe could not run it: pass --in-channels or --size-multiple")
    normalization = (
        overrides.get("normalization") or _meta(metadata, "normalization") or DEFAULT_NORMALIZATION
    )
    if isinstance(normalization, str):
        normalization = {"method": normalization}
    normalization = check_normalization(normalization)
    spatial = input_shape[2:]
    fixed = tuple(spatial) if all(isinstance(s, int) and s > 0 for s in spatial) else None
    patch = _meta(metadata, "patch_size")
    multiple = _meta(metadata, "size_multiple") or contract.size_multiple or 16
    return AuditModel(
        spatial_dims=spatial_dims,
        in_channels=int(in_channels),
        out_channels=int(out_channels),
        normalization=normalization,
        fixed_shape=fixed,
        size_multiple=int(multiple),
        patch_size=tuple(patch) if patch else None,
        fbr_range=_meta(metadata, "fbr_range"),
        metadata=metadata,
        run=guarded_run(selected, contract, lambda batch: run_session(selected, batch),
                        steady_batches=session_info.on_cuda),
        torch_device=_torch_device(session_info),
        head=OutputHead(contract.activation, contract.binary, contract.threshold),
        graph=contract.to_dict(),
        contract=contract,
    )


def _torch_device(session_info) -> str:
    """Perturb on the GPU when onnxruntime runs there, so batches stay on the device."""
    from segrob.onnx.session import torch_device_for

    return torch_device_for(session_info.provider) or "cpu"
