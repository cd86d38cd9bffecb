"""The published evidence behind ``segrob recommend``, read from the package file ``evidence.json``.

Every number lives in that file with its source paper and, in ``cite``, the table or the file of
the authors' result archive it comes from; this module only reads it, checks it, and derives two
expectations per architecture from it (nothing numeric is typed into code). Both come from the
same data, never from two datasets or two dimensionalities:

- 2D, the clinical datasets d (BUSI, heart MRI, spleen CT): in-domain Dice ``mean_d in_domain_d``,
  retention ``mean_d harder_d / in_domain_d`` (harder = speckle). The synthetic Dice at the
  complexity level is shown beside them, not folded in: it was measured on other data.
- 3D, the synthetic volumes at the largest published patch: in-domain Dice inside the training
  foreground-ratio range, retention ``Dice outside / Dice inside``. The spleen CT context study
  is shown beside them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from segrob.errors import SegrobError

EVIDENCE_KIND = "segrob-evidence"
Value = float | tuple[float, ...]
KINDS = ("synthetic", "clinical", "texture_categories", "context_3d", "fbr_3d")
# The Dice-valued fields of each finding kind; all must lie in [0, 1].
_DICE_FIELDS = {
    "synthetic": ("dice",),
    "clinical": ("easier", "in_domain", "harder"),
    "texture_categories": (),
    "context_3d": ("dice",),
    "fbr_3d": ("in_range", "out_of_range"),
}


def show(value: float, digits: int = 3) -> str:
    """``.540``: the papers' notation for a Dice."""
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("0.") else text


@dataclass(frozen=True)
class Source:
    """A publication: ``short`` goes in tables, ``citation`` in full in the JSON."""

    key: str
    citation: str
    short: str
    dims: int
    reading: str

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "citation": self.citation, "short": self.short,
                "dims": self.dims, "reading": self.reading}


@dataclass(frozen=True)
class Statement:
    """A published finding that changes advice but is not a number per architecture."""

    key: str
    source: Source
    dims: int
    text: str
    cite: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.key, "source": self.source.key, "citation": self.source.citation,
                "dims": self.dims, "text": self.text, "cite": self.cite}


@dataclass(frozen=True)
class Finding:
    """One published result for one architecture, as stored in ``evidence.json``."""

    kind: str
    source: Source
    arch: str
    cite: str
    fields: dict[str, Any]

    @property
    def dims(self) -> int:
        return self.source.dims

    def value(self, name: str) -> Value:
        raw = self.fields[name]
        return tuple(float(v) for v in raw) if isinstance(raw, list) else float(raw)

    def text(self) -> str:
        """The finding in a few words, with its numbers and source."""
        return f"{self.body()} [{self.source.short}]"

    def body(self) -> str:
        """The finding in a few words with its numbers, without the source."""
        f = self.fields
        if self.kind == "synthetic":
            return f"synthetic {f['complexity']} (blend {f['blend']}, one seed): {show(f['dice'])}"
        if self.kind == "clinical":
            return (f"{f['dataset']} in-domain {show(f['in_domain'])} -> harder "
                    f"{show(f['harder'])} (easier {show(f['easier'])})")
        if self.kind == "texture_categories":
            return (f"{f['group']} best on {f['best_by_dice'][0]}/{f['best_by_dice'][1]} "
                    f"{f['scope']} by Dice, {f['best_by_hausdorff'][0]}/"
                    f"{f['best_by_hausdorff'][1]} by Hausdorff")
        if self.kind == "context_3d":
            small, large = f["dice"]
            return (f"{f['dataset']} patch {f['patch'][0]} -> {f['patch'][1]}: "
                    f"{show(small)} -> {show(large)}")
        return (f"{f['data']}, patch {f['patch']}: {show(f['in_range'])} inside the training "
                f"foreground-ratio range, {show(f['out_of_range'])} outside")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "arch": self.arch, "source": self.source.key,
                "citation": self.source.citation, **self.fields, "cite": self.cite,
                "text": self.text()}


@dataclass(frozen=True)
class Expectation:
    """What the published evidence leads one to expect of ``arch`` in ``dims`` D.

    ``coverage`` is ``direct`` (evidence in ``dims`` D), ``other-dims`` (only from the other
    dimensionality: shown, never scored against the others) or ``none``. ``in_domain`` and
    ``retention`` come from the same data, named by ``data``.
    """

    arch: str
    dims: int
    coverage: str
    data: str = ""
    in_domain: float | None = None
    in_domain_shown: str = "–"
    in_domain_basis: str = ""
    retention: float | None = None
    retention_basis: str = ""
    findings: tuple[Finding, ...] = field(default_factory=tuple)
    supporting: tuple[Finding, ...] = field(default_factory=tuple)

    @property
    def sources(self) -> list[str]:
        return sorted({f.source.short for f in self.findings + self.supporting})

    def evidence_line(self) -> str:
        """The numbers behind the expectation on one line, with their sources."""
        parts = [self.in_domain_basis, self.retention_basis, *(f.body() for f in self.supporting)]
        text = "; ".join(p for p in parts if p)
        return f"{text} [{', '.join(self.sources)}]" if text else ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "arch": self.arch, "dims": self.dims, "coverage": self.coverage, "data": self.data,
            "in_domain": self.in_domain, "in_domain_shown": self.in_domain_shown,
            "in_domain_basis": self.in_domain_basis,
            "retention": self.retention, "retention_basis": self.retention_basis,
            "evidence": self.evidence_line(), "sources": self.sources,
            "findings": [f.text() for f in self.findings + self.supporting],
        }


@dataclass(frozen=True)
class Evidence:
    """The whole data file: sources, architectures (name -> summary), findings, statements."""

    sources: dict[str, Source]
    architectures: dict[str, str]
    findings: tuple[Finding, ...]
    shifts: dict[str, str]
    statements: tuple[Statement, ...] = ()
    synthetic_protocol: str = ""

    def select(self, kind: str, *, arch: str | None = None, **match: Any) -> list[Finding]:
        return [
            f for f in self.findings
            if f.kind == kind and (arch is None or f.arch == arch)
            and all(f.fields.get(k) == v for k, v in match.items())
        ]

    def expect(self, arch: str, *, dims: int, level: str | None) -> Expectation:
        """The expectation in ``dims`` D, else from the other dimensionality, else none."""
        other = 3 if dims == 2 else 2
        for try_dims, coverage in ((dims, "direct"), (other, "other-dims")):
            found = (self._expect_2d if try_dims == 2 else self._expect_3d)(arch, level)
            if found is not None:
                return Expectation(arch=arch, dims=try_dims, coverage=coverage, **found)
        return Expectation(arch=arch, dims=dims, coverage="none")

    def _expect_2d(self, arch: str, level: str | None) -> dict[str, Any] | None:
        clinical = self.select("clinical", arch=arch)
        synthetic = self.select("synthetic", arch=arch, complexity=level) if level else []
        if not clinical and not synthetic:
            return None
        found: dict[str, Any] = {
            "findings": tuple(clinical),
            "supporting": tuple(synthetic + self.select("texture_categories", arch=arch)),
        }
        if clinical:
            in_domain = [float(f.value("in_domain")) for f in clinical]
            ratios = [float(f.value("harder")) / d for f, d in zip(clinical, in_domain, strict=True)]
            names = [f.fields["dataset"] for f in clinical]
            found.update(
                data="clinical", in_domain=_mean(in_domain), in_domain_shown=show(_mean(in_domain)),
                in_domain_basis="clinical in-domain Dice: " + _pairs(names, in_domain, digits=3),
                retention=_mean(ratios),
                retention_basis="harder/in-domain Dice: " + _pairs(names, ratios, digits=2),
            )
        return found

    def _expect_3d(self, arch: str, level: str | None) -> dict[str, Any] | None:
        fbr = self.select("fbr_3d", arch=arch)
        context = self.select("context_3d", arch=arch)
        if not fbr and not context:
            return None
        found: dict[str, Any] = {"findings": tuple(fbr), "supporting": tuple(context)}
        if fbr:
            inside, outside = float(fbr[0].value("in_range")), float(fbr[0].value("out_of_range"))
            found.update(data=f"{fbr[0].fields['data']}, patch {fbr[0].fields['patch']}",
                         in_domain=inside, in_domain_shown=show(inside),
                         in_domain_basis=fbr[0].body(), retention=outside / inside,
                         retention_basis="")
        return found


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _pairs(names: list[str], values: list[float], *, digits: int) -> str:
    return ", ".join(f"{name} {show(value, digits)}" for name, value in zip(names, values, strict=True))


@lru_cache(maxsize=1)
def _packaged() -> Evidence:
    text = resources.files("segrob").joinpath("evidence.json").read_text(encoding="utf-8")
    return parse_evidence(json.loads(text), where="segrob/evidence.json")


def load_evidence(path: str | Path | None = None) -> Evidence:
    """The packaged evidence, or a file of the same format at ``path``."""
    if path is None:
        return _packaged()
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise SegrobError(f"{path}: cannot read evidence file ({error})") from error
    return parse_evidence(data, where=str(path))


def parse_evidence(data: dict[str, Any], *, where: str = "evidence") -> Evidence:
    """Check and type an evidence dict; any defect is one :class:`SegrobError` naming it."""
    if not isinstance(data, dict) or data.get("kind") != EVIDENCE_KIND:
        raise SegrobError(f"{where}: not a segrob evidence file (kind must be {EVIDENCE_KIND!r})")
    try:
        sources = {
            key: Source(key=key, citation=s["citation"], short=s["short"], dims=int(s["dims"]),
                        reading=s["reading"])
            for key, s in data["sources"].items()
        }
        architectures = {name: a["summary"] for name, a in data["architectures"].items()}
        findings = [
            _finding(kind, index, raw, sources, architectures, where)
            for kind in KINDS for index, raw in enumerate(data[kind])
        ]
        statements = tuple(_statement(index, raw, sources, where)
                           for index, raw in enumerate(data.get("statements", [])))
        shifts = dict(data.get("clinical_shifts", {}))
    except (KeyError, TypeError, AttributeError, ValueError) as error:
        raise SegrobError(f"{where}: malformed evidence file ({error!r})") from error
    return Evidence(sources=sources, architectures=architectures, findings=tuple(findings),
                    shifts=shifts, statements=statements,
                    synthetic_protocol=str(data.get("synthetic_protocol", "")))


def _finding(kind: str, index: int, raw: dict[str, Any], sources: dict[str, Source],
             architectures: dict[str, str], where: str) -> Finding:
    at = f"{where}: {kind}[{index}]"
    if raw.get("source") not in sources:
        raise SegrobError(f"{at}: unknown source {raw.get('source')!r}")
    if raw.get("arch") not in architectures:
        raise SegrobError(f"{at}: unknown architecture {raw.get('arch')!r}")
    if not isinstance(raw.get("cite"), str) or not raw["cite"].strip():
        raise SegrobError(f"{at}: every finding must cite the table or file it comes from")
    fields = {k: v for k, v in raw.items() if k not in ("source", "arch", "cite")}
    for name in _DICE_FIELDS[kind]:
        _check_dice(fields[name], f"{at}.{name}")
    for name, value in fields.get("superseded", {}).items():
        if name != "cite":
            _check_dice(value, f"{at}.superseded.{name}")
    return Finding(kind, sources[raw["source"]], raw["arch"], raw["cite"], fields)


def _statement(index: int, raw: dict[str, Any], sources: dict[str, Source], where: str) -> Statement:
    if raw.get("source") not in sources:
        raise SegrobError(f"{where}: statements[{index}]: unknown source {raw.get('source')!r}")
    return Statement(key=raw["id"], source=sources[raw["source"]], dims=int(raw["dims"]),
                     text=raw["text"], cite=raw["cite"])


def _check_dice(raw: Any, at: str) -> None:
    values = raw if isinstance(raw, list) else [raw]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and 0.0 <= v <= 1.0
               for v in values):
        raise SegrobError(f"{at}: Dice must lie in [0, 1], got {raw}")
