"""One measured cell (case x perturbation x severity) and the resumable store of them."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from segrob.errors import SegrobError
from segrob.io_utils import write_text_atomic

CLEAN = "clean"


@dataclass
class CellRecord:
    """What the model did on one case under one perturbation at one severity.

    ``metrics`` holds the mean over foreground classes; ``per_class`` each class's values;
    ``empty`` says per class which masks were empty (``none``, ``both``, ``pred``, ``gt``).
    """

    case: str
    perturbation: str
    severity: int
    seed: int
    params: dict
    metrics: dict[str, float | None]
    per_class: dict[str, dict[str, float | None]] = field(default_factory=dict)
    empty: dict[str, str] = field(default_factory=dict)
    foreground_ratio: float | None = None

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.case, self.perturbation, self.severity)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> CellRecord:
        return cls(**data)


class PartialStore:
    """Append-only JSON lines of finished cells, so an interrupted audit resumes where it was.

    The first line is a header describing the audit; resuming with a different model, data,
    suite or seed is refused rather than mixing results.
    """

    def __init__(self, path: Path, header: dict):
        self.path = path
        self.header = header
        self._handle = None

    def load(self) -> dict[tuple[str, str, int], CellRecord]:
        if not self.path.is_file():
            return {}
        lines = self.path.read_text(encoding="utf-8").splitlines()
        if not lines:
            return {}
        try:
            header = json.loads(lines[0])
        except ValueError as error:
            raise SegrobError(f"{self.path}: partial results are unreadable ({error})") from error
        if header != self.header:
            changed = sorted(k for k in set(header) | set(self.header) if header.get(k) != self.header.get(k))
            raise SegrobError(
                f"{self.path}: partial results belong to another audit (differs in {', '.join(changed)});"
                " remove the file or drop --resume"
            )
        records = {}
        for line in lines[1:]:
            try:
                record = CellRecord.from_dict(json.loads(line))
            except (ValueError, TypeError):
                break  # a line cut short by the interruption: redo from there
            records[record.key] = record
        return records

    def open(self, *, resume: bool) -> dict[tuple[str, str, int], CellRecord]:
        done = self.load() if resume else {}
        # Rewrite what is kept (dropping a torn last line) atomically, then append to it.
        lines = [json.dumps(self.header)] + [json.dumps(r.to_dict()) for r in done.values()]
        write_text_atomic(self.path, "\n".join(lines) + "\n")
        self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        return done

    def append(self, record: CellRecord) -> None:
        assert self._handle is not None
        self._handle.write(json.dumps(record.to_dict()) + "\n")
        self._handle.flush()

    def close(self, *, remove: bool) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if remove and self.path.exists():
            os.remove(self.path)
