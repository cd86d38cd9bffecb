"""The audit report: a typed result, its JSON form with a schema version, and its JSON Schema."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segrob.errors import SegrobError
from segrob.io_utils import check_output_file, json_safe, write_output_file

if TYPE_CHECKING:
    from segrob.audit.examples import Example
    from segrob.audit.summary import AuditSummary

#: 1.1 added the optional ``examples`` (the worst cells kept for the gallery) and ``reliability``
#: (the calibration of the cells scored); 1.0 reports load.
SCHEMA_VERSION = "1.1"
REPORT_KIND = "segrob-audit"


@dataclass
class AuditReport:
    """Everything an audit measured and every setting that produced it.

    ``summary`` is :func:`segrob.audit.aggregate.summarise`'s output; ``records`` the per-cell
    measurements it was computed from, so a report can be re-summarised or re-gated later.
    ``to_dict`` and ``from_dict`` are the report's JSON form (``SCHEMA_VERSION``).
    """

    model: dict[str, Any]
    data: dict[str, Any]
    suite: dict[str, Any]
    settings: dict[str, Any]
    summary: AuditSummary
    records: list[dict[str, Any]]
    timings: dict[str, float]
    versions: dict[str, str]
    gates: dict[str, Any] | None = None
    skipped_cases: list[dict[str, str]] = field(default_factory=list)
    created: str = ""
    #: The worst cells kept by ``--examples``; their arrays travel in files beside the JSON.
    examples: list[Example] = field(default_factory=list)
    #: Summed reliability counts of the cells scored in this run, per scope (see
    #: :func:`reliability_table`); ``None`` for reports without them.
    reliability: dict[str, Any] | None = None
    #: The folder a loaded report came from (its example files are relative to it).
    folder: Path | None = field(default=None, compare=False)

    @property
    def class_names(self) -> dict[str, str]:
        """Class id -> the dataset's name for it, where the data named its classes."""
        return (self.settings.get("labels") or {}).get("names") or {}

    def class_name(self, key: str) -> str:
        """A class as the report names it: ``1 (liver)`` where the dataset names it, else ``1``."""
        name = self.class_names.get(str(key))
        return f"{key} ({name})" if name else str(key)

    def to_dict(self) -> dict[str, Any]:
        extra = {"examples": [e.to_dict() for e in self.examples]} if self.examples else {}
        if self.reliability:
            extra["reliability"] = self.reliability
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": REPORT_KIND,
            "created": self.created,
            "model": self.model,
            "data": self.data,
            "suite": self.suite,
            "settings": self.settings,
            "versions": self.versions,
            "timings": self.timings,
            "summary": self.summary.to_dict(),
            "gates": self.gates,
            "skipped_cases": self.skipped_cases,
            **extra,
            "records": self.records,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuditReport:
        # Imported here: segrob.audit's package imports the runner, which imports this module.
        from segrob.audit.examples import Example
        from segrob.audit.summary import AuditSummary

        return cls(
            model=data["model"],
            data=data["data"],
            suite=data["suite"],
            settings=data["settings"],
            summary=AuditSummary.from_dict(data["summary"]),
            records=data["records"],
            timings=data["timings"],
            versions=data["versions"],
            gates=data.get("gates"),
            skipped_cases=data.get("skipped_cases", []),
            created=data.get("created", ""),
            examples=[Example.from_dict(e) for e in data.get("examples", [])],
            reliability=data.get("reliability"),
        )


def reliability_table(counts: dict[str, Any]) -> dict[str, Any] | None:
    """The report's form of summed :func:`~segrob.metrics.calibration.reliability_counts`: per
    scope (``clean``, ``perturbed``) the confidence sum, the number right and the voxel count per
    equal-width confidence bin, from which the reliability diagram and the ECE follow."""
    if not counts:
        return None
    return {scope: {"confidence_sum": [float(v) for v in table[0]],
                    "correct_sum": [float(v) for v in table[1]],
                    "count": [int(v) for v in table[2]]}
            for scope, table in sorted(counts.items())}


def report_schema() -> dict[str, Any]:
    """The JSON Schema every saved report validates against."""
    text = resources.files("segrob").joinpath("report_schema.json").read_text(encoding="utf-8")
    return json.loads(text)


def validate_report(data: dict[str, Any], *, source: str = "report") -> None:
    """Raise a one-line :class:`SegrobError` when ``data`` does not follow the schema."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(report_schema())
    error = next(iter(sorted(validator.iter_errors(data), key=lambda e: list(e.path))), None)
    if error is not None:
        where = "/".join(str(p) for p in error.path) or "(top level)"
        raise SegrobError(f"{source}: not a valid segrob audit report at {where}: {error.message}")


def report_json(report: AuditReport) -> str:
    """Strict JSON (NaN and infinities become null) of a validated report."""
    data = json_safe(report.to_dict())
    validate_report(data)
    return json.dumps(data, indent=2, allow_nan=False) + "\n"


def examples_folder_name(path: str | Path) -> str:
    """Where a report's example files go: ``<report stem>.examples`` beside it."""
    return f"{Path(path).stem}.examples"


def save_report(
    report: AuditReport, path: str | Path, *, overwrite: bool = False, inputs: tuple = ()
) -> Path:
    """Validate and write ``report`` atomically, its kept examples in a folder beside it.

    An existing ``path`` is replaced only with ``overwrite`` and only when it is a segrob
    report; ``path`` may never be one of ``inputs`` (the model, the data). The examples folder
    (``<stem>.examples``) is replaced as a whole, and only when segrob wrote it.
    """
    from segrob.audit.examples import name_examples, save_examples

    path = Path(path)
    check_output_file(path, overwrite=overwrite, inputs=inputs, is_ours=is_report_file)
    kept = bool(report.examples) and any(e.arrays for e in report.examples)
    if kept:
        name_examples(report.examples, examples_folder_name(path))
    text = report_json(report)  # validated before anything is written
    if kept:
        save_examples(report.examples, path.parent, examples_folder_name(path), inputs=inputs)
    return write_output_file(path, text, overwrite=overwrite, inputs=inputs, is_ours=is_report_file)


def is_report_file(path: str | Path) -> bool:
    """Whether ``path`` holds a segrob audit report (of any schema version)."""
    try:
        with open(path, "rb") as handle:
            data = json.loads(handle.read(1 << 26))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("kind") == REPORT_KIND


def load_report(path: str | Path) -> AuditReport:
    """Read and validate a saved report; a wrong or newer schema is a clear error."""
    path = Path(path)
    if not path.is_file():
        raise SegrobError(f"{path}: report not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise SegrobError(f"{path}: not a JSON file ({error})") from error
    if not isinstance(data, dict) or data.get("kind") != REPORT_KIND:
        raise SegrobError(f"{path}: not a segrob audit report")
    major = str(data.get("schema_version", "")).split(".")[0]
    if major != SCHEMA_VERSION.split(".")[0]:
        raise SegrobError(
            f"{path}: report schema {data.get('schema_version')} is not supported "
            f"(this segrob reads {SCHEMA_VERSION})"
        )
    validate_report(data, source=str(path))
    report = AuditReport.from_dict(data)
    report.folder = path.parent
    return report

