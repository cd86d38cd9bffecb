"""One measured cell (case x perturbation x severity) and the resumable store of them."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from segrob.errors import SegrobError
from segrob.io_utils import file_errors, write_text_atomic

CLEAN = "clean"
CHECK_KEY = "check"


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
        """``dataclasses.asdict``'s result: every container copied, its numbers and strings shared
        (immutable; asdict deep-copies each of them, about 2% of a small 2D audit)."""
        return {f.name: _copied(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict) -> CellRecord:
        return cls(**data)


def _copied(value):
    if isinstance(value, dict):
        return {key: _copied(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copied(item) for item in value]
    if type(value) is tuple:  # a named tuple's constructor takes fields, not one iterable
        return tuple(_copied(item) for item in value)
    return value


def _check(header_text: str, record: dict) -> str:
    """A per-line checksum tying a record to its audit, so an edited line is noticed."""
    text = header_text + json.dumps(record, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def record_line(header: dict, record: CellRecord) -> str:
    """One partial-store line: the record with its ``check`` (no newline)."""
    data = record.to_dict()
    return json.dumps({**data, CHECK_KEY: _check(json.dumps(header, sort_keys=True), data)})


class PartialStore:
    """Append-only JSON lines of finished cells, so an interrupted audit resumes where it was.

    The first line is a header describing the audit; resuming with a different model, data,
    suite or seed is refused rather than mixing results. Every record line carries a checksum
    over the header and the record, so a line edited by hand is refused, not reused.
    """

    def __init__(self, path: Path, header: dict):
        self.path = Path(path)
        self.header = header
        self._handle = None
        self._lock = None

    def load(self) -> dict[tuple[str, str, int], CellRecord]:
        if not self.path.is_file():
            return {}
        with file_errors(self.path):
            raw = self.path.read_bytes()
        try:
            lines = raw.decode("utf-8", errors="replace").splitlines()
            header = json.loads(lines[0]) if lines else None
        except ValueError as error:
            raise SegrobError(f"{self.path}: partial results are unreadable ({_reason(error)})") from None
        if header is None:
            return {}
        if header != self.header:
            changed = sorted(k for k in set(header) | set(self.header) if header.get(k) != self.header.get(k))
            raise SegrobError(
                f"{self.path}: partial results belong to another audit (differs in {', '.join(changed)});"
                " remove the file or drop --resume"
            )
        return self._records(lines[1:])

    def _records(self, lines: list[str]) -> dict[tuple[str, str, int], CellRecord]:
        header_text = json.dumps(self.header, sort_keys=True)
        records = {}
        for number, line in enumerate(lines, start=2):
            try:
                data = json.loads(line)
                check = data.pop(CHECK_KEY, None)
                record = CellRecord.from_dict(data)
            except (ValueError, TypeError, AttributeError):
                if number == len(lines) + 1:
                    break  # the last line, cut short by the interruption: redo from there
                raise SegrobError(f"{self.path}: line {number} is damaged;"
                                  " remove the file or drop --resume") from None
            if check != _check(header_text, record.to_dict()):
                raise SegrobError(f"{self.path}: line {number} was edited (its checksum does not match);"
                                  " remove the file or drop --resume")
            records[record.key] = record
        return records

    def open(self, *, resume: bool) -> dict[tuple[str, str, int], CellRecord]:
        self._lock = _exclusive_lock(self.path)
        try:
            done = self.load() if resume else {}
            # Rewrite what is kept (dropping a torn last line) atomically, then append to it.
            lines = [json.dumps(self.header)] + [record_line(self.header, r) for r in done.values()]
            write_text_atomic(self.path, "\n".join(lines) + "\n")
            with file_errors(self.path):
                self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        except BaseException:
            self.close(remove=False)
            raise
        return done

    def append(self, record: CellRecord) -> None:
        assert self._handle is not None
        with file_errors(self.path):
            self._handle.write(record_line(self.header, record) + "\n")
            self._handle.flush()

    def close(self, *, remove: bool) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if remove and self.path.exists():
            os.remove(self.path)
        if self._lock is not None:
            Path(self._lock.name).unlink(missing_ok=True)
            self._lock.close()  # closing releases the lock
            self._lock = None


def _exclusive_lock(store: Path):
    """Hold a lock beside ``store`` while this audit writes, so a second audit on it stops."""
    import fcntl

    path = store.with_name(f".{store.name}.lock")
    with file_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a")  # noqa: SIM115 - held until close()
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise SegrobError(f"{store}: another audit is writing these results now; wait for it"
                          " or choose another --json") from None
    return handle


def _reason(error: Exception) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text[:120]
