"""The resumable steps every study cell runs: data, train, export, audit.

Each step writes its output atomically and is skipped when that output already exists, so an
interrupted study picks up where it stopped and a finished cell is never redone.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from segrob.errors import SegrobError
from segrob.io_utils import atomic_output_dir, file_errors, write_json_atomic, write_marker

if TYPE_CHECKING:
    from segrob.training import TrainConfig

Notify = Callable[[str], None]


def ensure_synthetic(folder: Path, config, notify: Notify | None = None) -> Path:
    """Generate ``config`` into ``folder`` unless a finished dataset is already there."""
    from segrob.data.synth import write_synthetic

    if (folder / "segrob.json").is_file():
        return folder
    if notify:
        notify(f"data {folder.name}: {config.n} cases, blend {config.blend}")
    # overwrite replaces only an unfinished dataset segrob wrote, never a folder of user files.
    with atomic_output_dir(folder, overwrite=True, kind="dataset") as staging:
        write_synthetic(config, staging)
    return folder


def ensure_trained(run_dir: Path, request: TrainConfig, notify: Notify | None = None) -> dict:
    """Train into ``run_dir`` (resuming a partial run); returns the run's config.json.

    ``request`` is the request ``segrob train`` builds, so a study can ask for the paper size
    or a thread count the same way; on resume its settings are checked against the run's.
    """
    from dataclasses import replace

    from segrob.training import train
    from segrob.training.checkpoint import read_run_config

    config_path = run_dir / "config.json"
    if config_path.is_file():
        stored = finished_run(run_dir)
        if stored is not None:
            return stored
        resumable = (run_dir / "last.pt").is_file()
        request = replace(request, resume=resumable, overwrite=not resumable)
        if resumable:
            request = replace(request, data=None)
    else:
        request = replace(request, overwrite=True)
    if notify:
        notify(f"train {run_dir.name}")
    train(request)
    return read_run_config(run_dir).to_dict()


def finished_run(run_dir: Path) -> dict | None:
    """The run's config.json when it has trained every epoch it asked for, else None."""
    from segrob.training.checkpoint import read_run_config

    if not (run_dir / "config.json").is_file():
        return None
    stored = read_run_config(run_dir).to_dict()
    if len(stored.get("history", [])) >= int(stored.get("train", {}).get("epochs", 0) or 0) > 0:
        return stored
    return None


@dataclass(frozen=True)
class TrainCell:
    """One model of a study, as a function of its settings: train into ``run_dir``, export."""

    name: str
    run_dir: Path
    model_path: Path
    request: TrainConfig

    @property
    def done(self) -> bool:
        return self.model_path.is_file() and finished_run(self.run_dir) is not None


def train_cell(cell: TrainCell, notify: Notify | None = None) -> dict:
    """Train (or resume) and export one cell; returns the run's config.json."""
    run = ensure_trained(cell.run_dir, cell.request, notify)
    ensure_exported(cell.run_dir, cell.model_path, notify)
    return run


class LocalCells:
    """Runs a study's cells here, one after another (:class:`segrob.ray_engine.RayCells`: on Ray)."""

    audit_engine = None

    def train(self, cells: list[TrainCell], notify: Notify | None = None) -> dict[str, dict]:
        return {cell.name: train_cell(cell, notify) for cell in cells}


def ensure_exported(run_dir: Path, model_path: Path, notify: Notify | None = None) -> Path:
    from segrob.onnx.export import export_run

    if model_path.is_file():
        return model_path
    if notify:
        notify(f"export {model_path.name}")
    model_path.parent.mkdir(parents=True, exist_ok=True)
    export_run(run_dir, model_path)
    return model_path


def ensure_audited(
    model_path: Path,
    data_dir: Path,
    suite: str,
    report_path: Path,
    *,
    seed: int = 0,
    device: str = "auto",
    notify: Notify | None = None,
    engine=None,
):
    """Audit ``model_path`` on ``data_dir`` under ``suite`` unless the report exists.

    ``engine`` runs the audit's units of work (None: here; a Ray engine: sharded over the cluster).
    """
    from segrob.audit import AuditOptions, audit
    from segrob.audit.data_source import resolve_audit_data
    from segrob.report import load_report, save_report

    if report_path.is_file():
        return load_report(report_path)
    if notify:
        notify(f"audit {report_path.stem}")
    from segrob.onnx.session import read_metadata

    dims = int(read_metadata(model_path).get("spatial_dims") or 2)
    data = resolve_audit_data(str(data_dir), n=None, size=None, spatial_dims=dims, seed=seed)
    options = AuditOptions(
        suite=suite,
        seed=seed,
        device=device,
        partial_path=report_path.with_name(report_path.name + ".partial.jsonl"),
        resume=True,
    )
    report = audit(model_path, data, options, engine=engine)
    save_report(report, report_path)
    return report


def claim_folder(out: Path, settings: dict) -> None:
    """Record a study's settings in ``out``, or refuse a folder made with other settings.

    Resuming reuses every finished step, which is only right when the settings are the same.
    """
    path = out / "study-settings.json"
    if path.is_file():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            stored = None
        if not isinstance(stored, dict):
            raise SegrobError(f"{path}: unreadable study settings; use another --out")
        changed = sorted(k for k in set(stored) | set(settings) if stored.get(k) != settings.get(k))
        if changed:
            key = changed[0]
            raise SegrobError(
                f"{out}: this study folder was made with other settings ({key}: "
                f"{stored.get(key)!r}, now {settings.get(key)!r}); use another --out to start afresh"
            )
        return
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SegrobError(f"{out}: exists and is not a segrob study folder (no study-settings.json);"
                          " choose a new or empty --out")
    with file_errors(out):
        out.mkdir(parents=True, exist_ok=True)
        write_marker(out, "study")
    write_json_atomic(path, settings)
