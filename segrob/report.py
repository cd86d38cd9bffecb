"""The audit report: a typed result, its JSON form with a schema version, and its JSON Schema."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from segrob.errors import SegrobError
from segrob.io_utils import json_safe, write_text_atomic

SCHEMA_VERSION = "1.0"
REPORT_KIND = "segrob-audit"


@dataclass
class AuditReport:
    """Everything an audit measured and every setting that produced it.

    ``summary`` is :func:`segrob.audit.aggregate.summarise`'s output; ``records`` the per-cell
    measurements it was computed from, so a report can be re-summarised or re-gated later.
    """

    model: dict[str, Any]
    data: dict[str, Any]
    suite: dict[str, Any]
    settings: dict[str, Any]
    summary: dict[str, Any]
    records: list[dict[str, Any]]
    timings: dict[str, float]
    versions: dict[str, str]
    gates: dict[str, Any] | None = None
    skipped_cases: list[dict[str, str]] = field(default_factory=list)
    created: str = ""

    def to_dict(self) -> dict[str, Any]:
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
            "summary": self.summary,
            "gates": self.gates,
            "skipped_cases": self.skipped_cases,
            "records": self.records,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuditReport:
        return cls(
            model=data["model"],
            data=data["data"],
            suite=data["suite"],
            settings=data["settings"],
            summary=data["summary"],
            records=data["records"],
            timings=data["timings"],
            versions=data["versions"],
            gates=data.get("gates"),
            skipped_cases=data.get("skipped_cases", []),
            created=data.get("created", ""),
        )


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


def save_report(report: AuditReport, path: str | Path) -> Path:
    """Validate and write ``report`` atomically."""
    return write_text_atomic(path, report_json(report))


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
    return AuditReport.from_dict(data)
