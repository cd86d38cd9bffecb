"""The published evidence behind ``segrob recommend``, read from the package file ``evidence.json``.

Every number lives in that file with its source; this module only reads it, checks it, and
derives two expectations per architecture from it (nothing numeric is typed into code):

- in-domain Dice: 2D, the synthetic Dice at the complexity level (a published range counts by
  its midpoint; without a level, the mean in-domain Dice over the clinical datasets); 3D, the
  Dice with the largest published patch (context study).
- retention (out of domain / in domain): 2D, ``mean_d harder_d / in_domain_d`` over the clinical
  datasets d (BUSI, heart MRI, spleen CT; harder = speckle); 3D, Dice outside the training
  foreground-ratio range / the midpoint of the in-range band.
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
Value = float | tuple[float, float]
KINDS = ("synthetic", "clinical", "texture_categories", "context_3d", "fbr_3d")
# The Dice-valued fields of each finding kind; all must lie in [0, 1].
_DICE_FIELDS = {
    "synthetic": ("dice",),
    "clinical": ("easier", "in_domain", "harder"),
    "texture_categories": (),
    "context_3d": ("dice",),
    "fbr_3d": ("in_range", "out_of_range"),
}


def midpoint(value: Value) -> float:
    """A number, or the middle of a published range ``(low, high)``."""
    return (value[0] + value[1]) / 2.0 if isinstance(value, tuple) else float(value)


def show(value: Value) -> str:
    """``.540`` for a number, ``.96-.99`` for a range (the papers' notation)."""
    if isinstance(value, tuple):
        return f"{_short(value[0])}-{_short(value[1])}"
    return _short(value, digits=3)


def _short(number: float, digits: int = 2) -> str:
    text = f"{number:.{digits}f}"
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
class Finding:
    """One published result for one architecture, as stored in ``evidence.json``."""

    kind: str
    source: Source
    arch: str
    fields: dict[str, Any]

    @property
    def dims(self) -> int:
        return self.source.dims

    def value(self, name: str) -> Value:
        raw = self.fields[name]
        return (float(raw[0]), float(raw[1])) if isinstance(raw, list) else float(raw)

    def text(self) -> str:
        """The finding in a few words, with its numbers and source."""
        return f"{self.body()} [{self.source.short}]"

    def body(self) -> str:
        """The finding in a few words with its numbers, without the source."""
        f = self.fields
        if self.kind == "synthetic":
            where = f"synthetic {f['complexity']}" + (f" (blend {f['blend']})" if "blend" in f else "")
            spread = f", all within {show(self.value('spread'))}" if "spread" in f else ""
            body = f"{where}: {show(self.value('dice'))}{spread}"
        elif self.kind == "clinical":
            body = (f"{f['dataset']} in-domain {show(self.value('in_domain'))} -> harder "
                    f"{show(self.value('harder'))} (easier {show(self.value('easier'))})")
        elif self.kind == "texture_categories":
            body = (f"best on {f['best_by_dice'][0]}/{f['best_by_dice'][1]} {f['scope']} by Dice, "
                    f"{f['best_by_hausdorff'][0]}/{f['best_by_hausdorff'][1]} by Hausdorff")
        elif self.kind == "context_3d":
            low, high = self.value("dice")
            body = (f"{f['dataset']} patch {f['patch'][0]} -> {f['patch'][1]}: "
                    f"{_short(low)} -> {_short(high)}")
        else:
            body = (f"FBR outside training range: {show(self.value('out_of_range'))} "
                    f"(inside about {show(self.value('in_range'))})")
        return body

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "arch": self.arch, "source": self.source.key,
                "citation": self.source.citation, **self.fields, "text": self.text()}


@dataclass(frozen=True)
class Expectation:
    """What the published evidence leads one to expect of ``arch`` in ``dims`` D.

    ``coverage`` is ``direct`` (evidence in ``dims`` D), ``other-dims`` (only from the other
    dimensionality: shown, ranked after) or ``none``.
    """

    arch: str
    dims: int
    coverage: str
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
            "arch": self.arch, "dims": self.dims, "coverage": self.coverage,
            "in_domain": self.in_domain, "in_domain_shown": self.in_domain_shown,
            "in_domain_basis": self.in_domain_basis,
            "retention": self.retention, "retention_basis": self.retention_basis,
            "evidence": self.evidence_line(), "sources": self.sources,
            "findings": [f.text() for f in self.findings + self.supporting],
        }


@dataclass(frozen=True)
class Evidence:
    """The whole data file: sources, architectures (name -> summary) and findings."""

    sources: dict[str, Source]
    architectures: dict[str, str]
    findings: tuple[Finding, ...]
    shifts: dict[str, str]

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
        found: dict[str, Any] = {"findings": tuple(synthetic + clinical)}
        if synthetic:
            found["in_domain"] = midpoint(synthetic[0].value("dice"))
            found["in_domain_shown"] = show(synthetic[0].value("dice"))
            found["in_domain_basis"] = synthetic[0].body()
        elif clinical:
            found["in_domain"] = _mean([midpoint(f.value("in_domain")) for f in clinical])
            found["in_domain_shown"] = show(found["in_domain"])
            found["in_domain_basis"] = "mean clinical in-domain Dice (no complexity level given)"
        if clinical:
            ratios = [midpoint(f.value("harder")) / midpoint(f.value("in_domain")) for f in clinical]
            found["retention"] = _mean(ratios)
            parts = ", ".join(f"{f.fields['dataset']} {_short(r)}" for f, r in zip(clinical, ratios,
                                                                                strict=True))
            found["retention_basis"] = f"harder/in-domain Dice: {parts}"
        found["supporting"] = tuple(self.select("texture_categories", arch=arch))
        return found

    def _expect_3d(self, arch: str, level: str | None) -> dict[str, Any] | None:
        context = self.select("context_3d", arch=arch)
        fbr = self.select("fbr_3d", arch=arch)
        if not context and not fbr:
            return None
        found: dict[str, Any] = {"findings": tuple(context + fbr)}
        if context:
            found["in_domain"] = max(context[0].value("dice"))  # the largest patch: most context
            found["in_domain_shown"] = show(found["in_domain"])
            found["in_domain_basis"] = context[0].body()
        if fbr:
            found["retention"] = midpoint(fbr[0].value("out_of_range")) / midpoint(
                fbr[0].value("in_range"))
            found["retention_basis"] = fbr[0].body()
        return found


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


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
        findings = []
        for kind in KINDS:
            for index, raw in enumerate(data[kind]):
                at = f"{where}: {kind}[{index}]"
                if raw.get("source") not in sources:
                    raise SegrobError(f"{at}: unknown source {raw.get('source')!r}")
                if raw.get("arch") not in architectures:
                    raise SegrobError(f"{at}: unknown architecture {raw.get('arch')!r}")
                fields = {k: v for k, v in raw.items() if k not in ("source", "arch")}
                for name in _DICE_FIELDS[kind]:
                    _check_dice(fields[name], f"{at}.{name}")
                findings.append(Finding(kind, sources[raw["source"]], raw["arch"], fields))
        shifts = dict(data.get("clinical_shifts", {}))
    except (KeyError, TypeError, AttributeError, ValueError) as error:
        raise SegrobError(f"{where}: malformed evidence file ({error!r})") from error
    return Evidence(sources=sources, architectures=architectures, findings=tuple(findings),
                    shifts=shifts)


def _check_dice(raw: Any, at: str) -> None:
    values = raw if isinstance(raw, list) else [raw]
    if isinstance(raw, list) and (len(raw) != 2 or raw[0] > raw[1]):
        raise SegrobError(f"{at}: a range is [low, high], got {raw}")
    if not all(isinstance(v, int | float) and 0.0 <= v <= 1.0 for v in values):
        raise SegrobError(f"{at}: Dice must lie in [0, 1], got {raw}")
