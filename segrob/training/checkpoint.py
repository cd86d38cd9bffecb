"""The run folder: ``config.json`` + ``model.pt`` (best weights) + ``last.pt`` (resume state).

```
runs/NAME/
  config.json   RunConfig.to_dict(), format "segrob-run/1"
  model.pt      torch.save(model.state_dict()) of the best validation epoch
  last.pt       {"model", "optimizer", "scheduler", "epoch", "best", "rng", "history", "fbr"}
```

Every file is replaced atomically, so an interrupted run leaves a consistent folder that
``segrob train --resume`` continues. Loading uses ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from segrob.errors import SegrobError, first_line
from segrob.io_utils import atomic_output_file, write_json_atomic

RUN_FORMAT = "segrob-run/1"
LAST_FORMAT = "segrob-last/1"
CONFIG_FILE = "config.json"
MODEL_FILE = "model.pt"
LAST_FILE = "last.pt"


@dataclass
class RunConfig:
    """Everything needed to rebuild, deploy and describe a trained model.

    Attributes:
        arch: registry name. ``options``: every model option, resolved.
        normalization: the intensity normalisation the model expects (``normalize`` spec).
        patch_size: training patch size per axis, or ``None`` for whole images.
        train: training settings (epochs, lr, batch_size, seed, val_fraction, pos_ratio, ...).
        data: ``path``, ``n_cases``, ``kind`` (layout), ``metadata`` (segrob.json), ``val_cases``.
        fbr_range: foreground ratio of the training patches: ``min``, ``max``, ``p5``, ``p95``
            (plus ``mean`` and ``n``), or ``None``.
        best: ``{"epoch", "val_dice"}`` of the weights in ``model.pt``.
        history: one ``{"epoch", "loss", "val_dice", "lr", "seconds"}`` per finished epoch.
        status: ``running`` until the last epoch is done, then ``complete``.
    """

    arch: str
    spatial_dims: int
    in_channels: int
    out_channels: int
    options: dict[str, Any] = field(default_factory=dict)
    normalization: dict[str, Any] = field(default_factory=lambda: {"method": "zscore"})
    patch_size: list[int] | None = None
    train: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    fbr_range: dict[str, float] | None = None
    best: dict[str, Any] = field(default_factory=lambda: {"epoch": None, "val_dice": None})
    history: list[dict[str, Any]] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    status: str = "running"

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": RUN_FORMAT,
            "arch": self.arch,
            "spatial_dims": self.spatial_dims,
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "options": dict(self.options),
            "normalization": dict(self.normalization),
            "patch_size": list(self.patch_size) if self.patch_size is not None else None,
            "train": dict(self.train),
            "data": dict(self.data),
            "fbr_range": dict(self.fbr_range) if self.fbr_range is not None else None,
            "best": dict(self.best),
            "history": [dict(h) for h in self.history],
            "versions": dict(self.versions),
            "status": self.status,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "config") -> RunConfig:
        """Parse a ``config.json`` dict; a wrong format or a missing key names the problem."""
        if not isinstance(data, dict):
            raise SegrobError(f"{source}: not a segrob run config (expected a JSON object)")
        if data.get("format") != RUN_FORMAT:
            raise SegrobError(
                f"{source}: not a segrob run config (format {data.get('format')!r}, "
                f"expected {RUN_FORMAT!r})"
            )
        missing = [k for k in ("arch", "spatial_dims", "in_channels", "out_channels")
                   if k not in data]
        if missing:
            raise SegrobError(f"{source}: run config lacks {', '.join(missing)}")
        _check_fields(data, source)
        patch = data.get("patch_size")
        return cls(
            arch=str(data["arch"]),
            spatial_dims=int(data["spatial_dims"]),
            in_channels=int(data["in_channels"]),
            out_channels=int(data["out_channels"]),
            options=dict(data.get("options") or {}),
            normalization=dict(data.get("normalization") or {"method": "zscore"}),
            patch_size=[int(p) for p in patch] if patch is not None else None,
            train=dict(data.get("train") or {}),
            data=dict(data.get("data") or {}),
            fbr_range=dict(data["fbr_range"]) if data.get("fbr_range") else None,
            best=dict(data.get("best") or {"epoch": None, "val_dice": None}),
            history=[dict(h) for h in data.get("history") or []],
            versions=dict(data.get("versions") or {}),
            status=str(data.get("status", "complete")),
        )


def _whole(value: Any, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


#: The fields of ``config.json`` that rebuild a model, and what each must be.
_FIELD_RULES = {
    "arch": (lambda v: isinstance(v, str) and bool(v), "an architecture name"),
    "spatial_dims": (lambda v: _whole(v, 2) and v <= 3, "2 or 3"),
    "in_channels": (lambda v: _whole(v, 1), "a whole number >= 1"),
    "out_channels": (lambda v: _whole(v, 2), "a whole number >= 2"),
    "options": (lambda v: v is None or isinstance(v, dict), "an object"),
    "normalization": (lambda v: v is None or isinstance(v, dict), "an object"),
    "patch_size": (lambda v: v is None or (isinstance(v, list) and all(_whole(p, 1) for p in v)),
                   "a list of whole numbers >= 1, or null"),
    "train": (lambda v: v is None or isinstance(v, dict), "an object"),
    "data": (lambda v: v is None or isinstance(v, dict), "an object"),
    "fbr_range": (lambda v: v is None or isinstance(v, dict), "an object or null"),
    "best": (lambda v: v is None or isinstance(v, dict), "an object"),
    "history": (lambda v: v is None or (isinstance(v, list) and all(isinstance(h, dict) for h in v)),
                "a list of objects"),
    "versions": (lambda v: v is None or isinstance(v, dict), "an object"),
}


def _check_fields(data: dict[str, Any], source: str) -> None:
    for key, (valid, expected) in _FIELD_RULES.items():
        if key in data and not valid(data[key]):
            shown = json.dumps(data[key])[:60]
            raise SegrobError(f"{source}: field {key!r} is {shown}; expected {expected}")


def read_run_config(run_dir: str | os.PathLike) -> RunConfig:
    """Read ``run_dir/config.json``."""
    run = Path(run_dir)
    if not run.is_dir():
        raise SegrobError(f"{run}: run folder not found (train one with `segrob train`)")
    path = run / CONFIG_FILE
    if not path.is_file():
        raise SegrobError(f"{path}: missing; {run} is not a segrob run folder")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise SegrobError(f"{path}: {error.strerror or error}") from None
    except ValueError as error:  # UnicodeDecodeError included
        raise SegrobError(f"{path}: not valid JSON ({type(error).__name__})") from None
    return RunConfig.from_dict(data, source=str(path))


def write_run_config(run_dir: str | os.PathLike, config: RunConfig) -> Path:
    return write_json_atomic(Path(run_dir) / CONFIG_FILE, config.to_dict())


def save_torch_atomic(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` through a temporary file, so a crash never leaves half a checkpoint."""
    with atomic_output_file(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def load_torch(path: str | os.PathLike) -> Any:
    """``torch.load(weights_only=True)`` on CPU; a missing or corrupt file is a SegrobError."""
    path = Path(path)
    if not path.is_file():
        raise SegrobError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a damaged file
        text = str(error).strip()
        if not text or text.startswith("Weights only load failed"):
            # torch's text is advice about weights_only, which must stay on; say what it means
            why = "not a weights-only torch checkpoint"
        else:
            why = first_line(error, 200)
        raise SegrobError(f"{path}: corrupt or unreadable checkpoint ({why})") from error


def build_model(config: RunConfig) -> nn.Module:
    """The untrained architecture described by ``config``."""
    from segrob.models import create_model

    return create_model(
        config.arch,
        spatial_dims=config.spatial_dims,
        in_channels=config.in_channels,
        out_channels=config.out_channels,
        **config.options,
    )


def load_state(model: nn.Module, state: Any, *, arch: str, source: str) -> None:
    """Load ``state`` into ``model``, or say why it is not a checkpoint of ``arch``."""
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise SegrobError(f"{source}: not a model state_dict")
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        k for k in expected
        if k in state and tuple(getattr(state[k], "shape", ())) != tuple(expected[k].shape)
    ]
    if missing or unexpected or mismatched:
        details = []
        if missing:
            details.append(f"{len(missing)} missing key(s) e.g. {missing[0]}")
        if unexpected:
            details.append(f"{len(unexpected)} unexpected key(s) e.g. {unexpected[0]}")
        if mismatched:
            key = mismatched[0]
            got, want = tuple(state[key].shape), tuple(expected[key].shape)
            details.append(f"shape of {key} is {got}, expected {want}")
        article = "an" if arch[:1].lower() in "aeio" else "a"
        raise SegrobError(
            f"{source}: checkpoint is not {article} {arch} model: {'; '.join(details)}"
        )
    model.load_state_dict(state)


def load_run(run_dir: str | os.PathLike) -> tuple[nn.Module, RunConfig]:
    """The best model of a run (eval mode, CPU) and its config.

    Raises:
        SegrobError: missing folder or files, corrupt JSON or checkpoint, or weights that do
            not fit the architecture in ``config.json``.
    """
    config = read_run_config(run_dir)
    model = build_model(config)
    path = Path(run_dir) / MODEL_FILE
    load_state(model, load_torch(path), arch=config.arch, source=str(path))
    model.eval()
    return model, config
