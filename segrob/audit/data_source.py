"""What an audit runs on: a dataset folder, or synthetic data named ``synth:LEVEL``."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from segrob.data.case import Case
from segrob.data.dataset import Dataset, load_dataset
from segrob.data.layouts import DatasetLabels
from segrob.errors import SegrobError, UsageError

SYNTH_PREFIX = "synth:"


@dataclass
class AuditData:
    """Cases to audit, read lazily, and how to describe them in the report."""

    source: str
    kind: str
    names: list[str]
    _dataset: Dataset | None = None
    _synth: object | None = None

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[tuple[str, Case | SegrobError]]:
        """Yield ``(name, case)``, or ``(name, error)`` for a case that cannot be read."""
        if self._dataset is not None:
            for name in self.names:
                try:
                    yield name, self._dataset.case(name)
                except SegrobError as error:
                    yield name, error
        else:
            from segrob.data.synth import generate_case

            for index, name in enumerate(self.names):
                yield name, generate_case(self._synth, index)[0]  # type: ignore[arg-type]

    @property
    def labels(self) -> DatasetLabels:
        """Label names and the ignore label a dataset's ``dataset.json`` declares (none for synth)."""
        return self._dataset.layout.labels if self._dataset is not None else DatasetLabels({})

    @property
    def label_files(self) -> list[Path]:
        """The label files of the audited cases (none for synthetic data)."""
        if self._dataset is None:
            return []
        wanted = set(self.names)
        return [c.label for c in self._dataset.layout.cases if c.name in wanted and c.label is not None]

    @property
    def identity(self) -> str:
        """What resuming compares: the resolved folder (however it was spelled) or the spec."""
        return self.source if self._dataset is None else str(Path(self.source).resolve())

    def describe(self) -> dict:
        return {"source": self.source, "kind": self.kind, "n_cases": len(self.names), "cases": self.names}


def resolve_audit_data(
    spec: str, *, n: int | None, size: int | None, spatial_dims: int, seed: int = 0,
    allow_outside: bool = False,
) -> AuditData:
    """Open ``spec``: a dataset folder (first ``n`` cases if given) or ``synth:low|medium|high``.

    ``allow_outside`` lets a dataset's cases live outside its folder (see ``discover``).
    """
    if spec.startswith(SYNTH_PREFIX):
        from segrob.data.blend import blend_for
        from segrob.data.synth import SynthConfig

        level = spec[len(SYNTH_PREFIX) :]
        blend, level_name = blend_for(level, None) if not _is_number(level) else blend_for(None, float(level))
        default_size = 128 if spatial_dims == 2 else 64
        # Audit data must not be the training data: a seed far from the generator's default.
        config = SynthConfig(
            dims=spatial_dims, n=n or 20, size=size or default_size, blend=blend, level=level_name,
            seed=10_000 + seed,
        ).check()
        names = [f"case_{i:04d}" for i in range(config.n)]
        return AuditData(source=spec, kind="synthetic", names=names, _synth=config)
    path = Path(spec)
    dataset = load_dataset(path, allow_outside=allow_outside)
    names = dataset.names[:n] if n else dataset.names
    if n is not None and n < 1:
        raise UsageError(f"--n must be at least 1, got {n}")
    return AuditData(source=str(path), kind=dataset.kind, names=names, _dataset=dataset)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class Fingerprint:
    """A running sha256 over every case's name, image and label bytes: the data's identity."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def add(self, case: Case) -> None:
        self._hash.update(case.name.encode())
        self._hash.update(case.image.tobytes())
        if case.label is not None:
            self._hash.update(case.label.tobytes())

    def hexdigest(self) -> str:
        return self._hash.hexdigest()
