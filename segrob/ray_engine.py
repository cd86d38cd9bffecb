"""Ray as the engine: audit cases sharded over a cluster, and study cells run as named tasks.

Ray is an extra (``pip install "segrob[ray]"``). ``connect(address)`` starts a local Ray instance
(``address`` ``local`` or None), joins the running cluster (``auto``) or the one at
``HOST:PORT`` / ``ray://HOST:PORT``; a Ray session the caller started already is used as it is.

What travels: the model plan with the ONNX file's bytes and every case go through Ray's object
store, so workers need no shared filesystem for an audit; workers return cell records and the
driver alone writes the partial store and the report, atomically. A killed worker's task is
retried by Ray, and a killed driver is continued with ``--resume``, as a local audit is.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from segrob.audit.units import CaseResult, Cell, CellSettings, ModelPlan, audit_block
from segrob.data.case import Case
from segrob.errors import SegrobError, UsageError, first_line

INSTALL = 'pip install "segrob[ray]"'
LOCAL = "local"


def require_ray() -> Any:
    """The ``ray`` module, or a usage error that says how to install it."""
    try:
        import ray
    except ImportError:
        raise UsageError(f"--ray needs Ray, which is not installed here: {INSTALL}") from None
    return ray


@contextlib.contextmanager
def connect(address: str | None) -> Iterator[Any]:
    """Ray, initialised for the run and shut down after it when this call started it."""
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    target = None if address in (None, "", LOCAL) else address
    try:
        ray.init(address=target, logging_level="ERROR", log_to_driver=False,
                 configure_logging=True)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise SegrobError(f"--ray {address}: cannot reach a Ray cluster there ({first_line(error)})"
                          ) from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _audit_task(block: list[tuple[Case, list[Cell]]], plan: ModelPlan,
                settings: CellSettings) -> list[CaseResult]:
    return audit_block(block, plan, settings)


class RayAudit:
    """An audit engine (see :data:`segrob.audit.runner.Engine`) that shards cases over Ray tasks.

    ``block`` cases go to each task (a task scores one block while inferring its next case);
    at most ``in_flight`` tasks wait at once, so the driver never holds the whole dataset.
    """

    def __init__(self, ray: Any, *, block: int = 2, in_flight: int | None = None):
        self.ray = ray
        self.block = max(1, block)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.in_flight = in_flight or max(2, 2 * cpus)

    def __call__(self, work: Iterable[tuple[Case, list[Cell]]], plan: ModelPlan,
                 settings: CellSettings) -> Iterator[CaseResult]:
        ray = self.ray
        plan_ref = ray.put(_portable(plan))
        task = ray.remote(num_cpus=1)(_audit_task)
        pending: dict[Any, list[str]] = {}
        try:
            for block in _blocks(work, self.block):
                names = [case.name for case, _ in block]
                ref = task.options(name=f"audit {_short(plan)} {names[0]}").remote(block, plan_ref, settings)
                pending[ref] = names
                while len(pending) >= self.in_flight:
                    yield from self._finished(pending)
            while pending:
                yield from self._finished(pending)
        except BaseException:
            for ref in pending:  # Ctrl-C or a failed task: stop the rest of the run, not only the driver
                ray.cancel(ref, force=True)
            raise

    def _finished(self, pending: dict[Any, list[str]]) -> Iterator[CaseResult]:
        done, _ = self.ray.wait(list(pending), num_returns=1)
        names = pending.pop(done[0])
        try:
            results = self.ray.get(done[0])
        except self.ray.exceptions.RayError as error:
            cause = getattr(error, "cause", None) or error
            raise SegrobError(f"audit of case(s) {', '.join(names)} failed on Ray: {first_line(cause)}"
                              ) from None
        yield from results


def _portable(plan: ModelPlan) -> ModelPlan:
    """The plan with the ONNX file's bytes in it, so no worker needs the driver's filesystem.

    A worker has one CPU: onnxruntime's default of one thread per core would oversubscribe it.
    """
    source = Path(plan.source).read_bytes() if isinstance(plan.source, str) else plan.source
    return dataclasses.replace(plan, source=source, threads=plan.threads or 1)


def _short(plan: ModelPlan) -> str:
    return plan.key[:12]


def _blocks(work: Iterable[tuple[Case, list[Cell]]], size: int) -> Iterator[list[tuple[Case, list[Cell]]]]:
    block: list[tuple[Case, list[Cell]]] = []
    for item in work:
        block.append(item)
        if len(block) == size:
            yield block
            block = []
    if block:
        yield block


def folder_files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by relative path: a dataset or a run, to cross the object store."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _write_files(files: dict[str, bytes], folder: Path, skip: tuple[str, ...] = ()) -> None:
    for relative, content in files.items():
        if relative in skip:
            continue
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)


def _train_task(cell, data_files: dict[str, bytes]) -> tuple[dict[str, bytes], bytes]:
    """Train and export one study cell in a scratch folder; the driver writes what comes back."""
    import tempfile

    from segrob.studies.pipeline import TrainCell, train_cell

    with tempfile.TemporaryDirectory(prefix="segrob-cell-") as scratch:
        data = Path(cell.request.data)
        if not (data / "segrob.json").is_file():  # the study folder is not on this node
            data = Path(scratch) / "data"
            _write_files(data_files, data)
        run_dir, model = Path(scratch) / "run", Path(scratch) / "model.onnx"
        request = dataclasses.replace(cell.request, data=str(data), out=str(run_dir))
        train_cell(TrainCell(cell.name, run_dir, model, request))
        return folder_files(run_dir), model.read_bytes()


class RayCells:
    """Runs a study's cells as named Ray tasks: ``train NAME`` (with a GPU when the cluster has
    one), then each audit sharded by :class:`RayAudit`. Only the driver writes the study folder."""

    def __init__(self, ray: Any):
        self.ray = ray
        self.audit_engine = RayAudit(ray)
        self.gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0

    def train(self, cells: list, notify=None) -> dict[str, dict]:
        from segrob.studies.pipeline import train_cell

        todo = [cell for cell in cells if not cell.done]
        datasets = {data: self.ray.put(folder_files(Path(data))) for data in {c.request.data for c in todo}}
        task = self.ray.remote(num_cpus=1, num_gpus=self.gpus, max_retries=1)(_train_task)
        pending = {task.options(name=f"train {cell.name}").remote(cell, datasets[cell.request.data]): cell
                   for cell in todo}
        try:
            while pending:
                (ref,), _ = self.ray.wait(list(pending), num_returns=1)
                cell = pending.pop(ref)
                self._keep(cell, ref)
                if notify:
                    notify(f"trained and exported {cell.name} (on Ray)")
        except BaseException:
            for ref in pending:
                self.ray.cancel(ref, force=True)
            raise
        return {cell.name: train_cell(cell) for cell in cells}  # every cell is finished now: read them

    def _keep(self, cell, ref) -> None:
        from segrob.io_utils import MARKER, atomic_output_dir, atomic_output_file

        try:
            run_files, model = self.ray.get(ref)
        except self.ray.exceptions.RayError as error:
            cause = getattr(error, "cause", None) or error
            raise SegrobError(f"study cell train {cell.name} failed on Ray: {first_line(cause)}") from None
        with atomic_output_dir(cell.run_dir, overwrite=True, kind="run") as staging:
            _write_files(run_files, staging, skip=(MARKER,))
        cell.model_path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output_file(cell.model_path) as staging_file:
            staging_file.write_bytes(model)
