"""The Python API: ``segrob.audit(model, data, suite="shift", ...)``, the audit without the CLI.

``model`` is an ONNX file, or anything that maps a batch to logits: a callable from a float32
array ``(N, C, *spatial)`` to logits ``(N, K, *spatial)`` (a MONAI or nnU-Net predictor, a
function of your own), or a ``torch.nn.Module`` (run in eval mode, without gradients, on
``device``). ``data`` is a dataset folder, ``"synth:LEVEL"``, or a sequence of cases
(:class:`segrob.data.Case`, or ``(image, label)`` / ``(image, label, spacing)`` arrays). The
result is the typed :class:`segrob.report.AuditReport` that ``segrob audit`` renders and saves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segrob.audit.data_source import AuditData, resolve_audit_data
from segrob.audit.runner import AuditOptions, Engine, ModelIdentity, Progress, audit_plan
from segrob.audit.runner import audit as audit_onnx
from segrob.data.case import Case
from segrob.errors import UsageError
from segrob.report import AuditReport

ModelLike = str | Path | Callable[[np.ndarray], Any]
DataLike = str | Path | Sequence[Any]


def audit(
    model: ModelLike,
    data: DataLike,
    suite: str = "shift",
    *,
    seed: int = 0,
    device: str = "auto",
    n: int | None = None,
    size: int | None = None,
    spatial_dims: int | None = None,
    normalization: str | dict | None = None,
    size_multiple: int = 16,
    batch_size: int = 8,
    window: tuple[int, ...] | None = None,
    overlap: float = 0.5,
    nsd_tolerance_mm: float = 1.0,
    failure_dice: float = 0.5,
    fail_under: str | None = None,
    examples: int = 0,
    progress: Progress | None = None,
    engine: Engine | None = None,
) -> AuditReport:
    """Audit ``model`` on ``data`` under ``suite``; the same audit, records and report as the CLI.

    ``normalization`` (``zscore``, ``robust-minmax``, ``none`` or a spec dict) overrides the
    ONNX metadata; for a callable it is what the callable expects (default: segrob's z-score).
    ``spatial_dims`` picks 2D or 3D synthetic data when the model does not say. ``fail_under``
    is the CLI's gate (``"dice=0.8,rr=0.9"``): its result is in ``report.gates``.
    """
    from segrob.audit.gates import parse_bounds

    options = AuditOptions(
        suite=suite, seed=seed, device=device, batch_size=batch_size, window=window, overlap=overlap,
        nsd_tolerance_mm=nsd_tolerance_mm, failure_dice=failure_dice, bounds=parse_bounds(fail_under),
        overrides={"normalization": normalization} if normalization is not None else {}, examples=examples,
    )
    if isinstance(model, str | Path):
        from segrob.onnx.session import read_metadata

        dims = spatial_dims or int(read_metadata(Path(model)).get("spatial_dims") or 2)
        cases = _audit_data(data, n=n, size=size, spatial_dims=dims, seed=seed)
        return audit_onnx(model, cases, options, progress=progress, engine=engine)
    if not callable(model):
        raise UsageError(f"model must be an ONNX path or a callable from a batch to logits, "
                         f"got {type(model)}")
    cases = _audit_data(data, n=n, size=size, spatial_dims=spatial_dims or 2, seed=seed)
    return _audit_callable(model, cases, options, size_multiple, progress=progress, engine=engine)


def _audit_callable(model: Callable, cases: AuditData, options: AuditOptions, size_multiple: int, *,
                    progress: Progress | None, engine: Engine | None) -> AuditReport:
    from segrob.audit.model_spec import AuditModel
    from segrob.audit.units import ModelPlan, runtime_for
    from segrob.data.normalize import DEFAULT_NORMALIZATION, check_normalization

    predict_array, identity = _wrap(model, options.device)
    first = _first_case(cases)
    normalization = options.overrides.get("normalization") or DEFAULT_NORMALIZATION
    normalization = check_normalization({"method": normalization} if isinstance(normalization, str)
                                        else normalization)
    described = AuditModel(
        spatial_dims=first.spatial_dims, in_channels=first.in_channels, out_channels=0,
        normalization=normalization, fixed_shape=None, size_multiple=size_multiple, patch_size=None,
        fbr_range=None, metadata={}, run=lambda batch: batch,
    )
    inference = described.plan(options)
    probe = ModelPlan(source=predict_array, key=identity.sha256, inference=inference, classes=())
    described.run = runtime_for(probe).run
    described.out_channels = _class_count(first, probe, described)
    plan = ModelPlan(source=predict_array, key=identity.sha256, inference=inference,
                     classes=tuple(described.foreground_classes), device=options.device)
    return audit_plan(described, plan, identity, cases, options, progress=progress, engine=engine)


def _class_count(case: Case, plan, described) -> int:
    """The model's class count, read from its logits on the first case (one inference)."""
    import torch

    from segrob.audit.inference import predict
    from segrob.errors import SegrobError

    logits = predict(torch.from_numpy(case.image)[None], plan.inference, described.run)
    if logits.ndim != case.image.ndim + 1 or logits.shape[2:] != case.image.shape[1:]:
        raise SegrobError(f"the model returned shape {tuple(logits.shape)} for a batch of shape "
                          f"{(1, *case.image.shape)}: expected logits (N, K, *spatial)")
    if logits.shape[1] < 2:
        raise SegrobError("the model returned one channel: the audit needs logits for background and "
                          "each class (N, K >= 2, *spatial)")
    return int(logits.shape[1])


def _wrap(model: Callable, device: str) -> tuple[Callable[[np.ndarray], np.ndarray], ModelIdentity]:
    """An array-to-logits function for ``model`` and what the report calls it."""
    import torch

    name = getattr(model, "__qualname__", None) or type(model).__qualname__
    if isinstance(model, torch.nn.Module):
        on = _torch_device(device)
        module = model.to(on).eval()
        digest = hashlib.sha256()
        for key, tensor in module.state_dict().items():
            digest.update(key.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        identity = ModelIdentity(f"<torch module {name}>", digest.hexdigest(), (f"torch:{on}",))
        return _TorchPredict(module, on), identity
    # A plain callable has no weights to hash: its name stands for it (resuming compares it).
    identity = ModelIdentity(f"<callable {name}>", hashlib.sha256(name.encode()).hexdigest(), ("python",))
    return _ArrayPredict(model), identity


@dataclass
class _TorchPredict:
    """A torch module as a batch-array predict function (a class, so it pickles to workers)."""

    module: Any
    device: str

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            out = self.module(torch.from_numpy(np.ascontiguousarray(batch)).to(self.device))
        return _first_output(out).detach().float().cpu().numpy()


@dataclass
class _ArrayPredict:
    function: Callable

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        out = _first_output(self.function(batch))
        if hasattr(out, "detach"):
            out = out.detach().float().cpu().numpy()
        return np.asarray(out, dtype=np.float32)


def _first_output(out: Any) -> Any:
    # Deep-supervision networks return several heads: the first is the full-resolution one.
    return out[0] if isinstance(out, list | tuple) else out


def _torch_device(device: str) -> str:
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        from segrob.errors import SegrobError

        raise SegrobError("device='cuda' but torch sees no usable CUDA device; use device='cpu' or 'auto'")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _audit_data(data: DataLike, *, n: int | None, size: int | None, spatial_dims: int,
                seed: int) -> AuditData:
    if isinstance(data, str | Path):
        return resolve_audit_data(str(data), n=n, size=size, spatial_dims=spatial_dims, seed=seed)
    cases = [_as_case(item, index) for index, item in enumerate(data)][:n]
    if not cases:
        raise UsageError("data holds no cases")
    names = [case.name for case in cases]
    if len(set(names)) != len(names):
        raise UsageError("data holds cases with the same name; give each case its own name")
    return CaseList(source=f"{len(cases)} cases in memory", kind="memory", names=names, cases=cases)


@dataclass
class CaseList(AuditData):
    """Cases already in memory, audited in their order."""

    cases: list[Case] | None = None

    def __iter__(self) -> Iterator[tuple[str, Case]]:
        for case in self.cases or []:
            yield case.name, case

    @property
    def identity(self) -> str:
        return self.source


def _as_case(item: Any, index: int) -> Case:
    if isinstance(item, Case):
        return item
    if not isinstance(item, tuple | list) or len(item) not in (2, 3):
        raise UsageError(f"case {index}: give a segrob.data.Case or (image, label[, spacing]), "
                         f"got {type(item)}")
    image, label = np.asarray(item[0], dtype=np.float32), np.asarray(item[1])
    if image.ndim == label.ndim:
        image = image[None]  # one channel, given without its axis
    if image.shape[1:] != label.shape or label.ndim not in (2, 3):
        raise UsageError(f"case {index}: image {image.shape} and label {label.shape} do not match "
                         "(image (C, *spatial) or (*spatial), label (*spatial), 2D or 3D)")
    spacing = tuple(float(s) for s in item[2]) if len(item) == 3 else (1.0,) * label.ndim
    return Case(name=f"case_{index:04d}", image=np.ascontiguousarray(image),
                label=label.astype(np.int32), spacing=spacing, source={"image": f"case {index}"})


def _first_case(cases: AuditData) -> Case:
    from segrob.errors import SegrobError

    for _name, case in cases:
        if isinstance(case, Case):
            return case
    raise SegrobError(f"{cases.source}: no readable case")
