"""Named suites of perturbations, and suites a user writes in a small TOML or JSON file.

A suite file::

    name = "my-scanner"
    description = "what our new MRI scanner does"
    [[perturbation]]
    name = "bias_field"
    severities = [1, 3, 5]
    [[perturbation]]
    name = "rician_noise"          # severities default to all of the perturbation's levels

JSON takes the same keys (``{"name": ..., "perturbation": [{"name": ..., "severities": [...]}]}``);
an entry may also be just a name (``perturbation = ["gaussian_noise", "spike"]``). TOML needs
Python 3.11 (``tomllib``); on 3.10 write the suite as JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segrob.errors import SegrobError
from segrob.io_utils import file_errors
from segrob.perturb.registry import PERTURBATIONS, create_perturbation

FILE_KEYS = ("name", "description", "perturbation")
ENTRY_KEYS = ("name", "severities")


@dataclass(frozen=True)
class SuiteEntry:
    """One member of a suite and the severities it runs at (0, clean, is always run apart)."""

    perturbation: str
    severities: tuple[int, ...] = (1, 2, 3, 4, 5)

    def to_dict(self) -> dict[str, Any]:
        return {"perturbation": self.perturbation, "severities": list(self.severities)}


@dataclass(frozen=True)
class Suite:
    """A named set of (perturbation, severities)."""

    name: str
    description: str
    entries: tuple[SuiteEntry, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description,
                "entries": [e.to_dict() for e in self.entries]}

    def for_spatial_dims(self, spatial_dims: int) -> tuple[Suite, list[str]]:
        """The members that work on ``spatial_dims`` images, and the names left out."""
        kept, dropped = [], []
        for entry in self.entries:
            if spatial_dims in PERTURBATIONS[entry.perturbation].spatial_dims:
                kept.append(entry)
            else:
                dropped.append(entry.perturbation)
        return Suite(self.name, self.description, tuple(kept)), dropped


def _entries(*names: str) -> tuple[SuiteEntry, ...]:
    return tuple(SuiteEntry(n, tuple(range(1, create_perturbation(n).n_levels + 1))) for n in names)


def _family(family: str) -> tuple[SuiteEntry, ...]:
    return _entries(*[n for n, cls in PERTURBATIONS.items() if cls.family == family])


def _modality(modality: str) -> tuple[SuiteEntry, ...]:
    return _entries(*[n for n, cls in PERTURBATIONS.items()
                      if modality in cls.modalities and cls.family != "texture"])


SUITES: dict[str, Suite] = {
    suite.name: suite
    for suite in (
        Suite("clean", "no perturbation: clean performance only", ()),
        Suite("noise", "Gaussian, Rician, speckle, impulse and Poisson noise", _family("noise")),
        Suite("blur", "Gaussian and motion blur", _family("blur")),
        Suite("shift", "gamma, contrast, brightness, bias field, histogram warp, resolution loss",
              _family("shift")),
        Suite("artifact", "MRI k-space artifacts, ultrasound shadow and gain, stain shift, JPEG",
              _family("artifact")),
        Suite("geometry", "affine and elastic deformations (labels follow)", _family("geometry")),
        Suite("texture", "Kamath et al. 2023: background blur (easier) and speckle (harder), "
              "the paper's 2 levels each", _family("texture")),
        Suite("all", "every perturbation except the texture protocol",
              _entries(*[n for n, cls in PERTURBATIONS.items() if cls.family != "texture"])),
        Suite("mri", "what MRI deployments meet", _modality("mri")),
        Suite("ct", "what CT deployments meet", _modality("ct")),
        Suite("us", "what ultrasound deployments meet", _modality("us")),
        Suite("histology", "what digital pathology deployments meet", _modality("histology")),
    )
}


def list_suites() -> list[str]:
    return list(SUITES)


def get_suite(name: str) -> Suite:
    """A registered suite; an unknown name lists the valid ones."""
    if name not in SUITES:
        raise SegrobError(
            f"unknown suite {name!r} (valid: {', '.join(SUITES)}, or a .toml/.json file)"
        )
    return SUITES[name]


def resolve_suite(name_or_path: str) -> Suite:
    """A registered suite by name, or a suite file (``.toml`` or ``.json``)."""
    if name_or_path in SUITES:
        return SUITES[name_or_path]
    path = Path(name_or_path)
    if path.suffix.lower() in (".toml", ".json"):
        return load_suite_file(path)
    return get_suite(name_or_path)


def _parse(path: Path) -> Any:
    with file_errors(path):
        raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
        if path.suffix.lower() == ".toml":
            try:
                import tomllib
            except ImportError:  # Python 3.10
                raise SegrobError(
                    f"{path}: TOML suite files need Python 3.11+; write the suite as JSON"
                ) from None
            return tomllib.loads(text)
        return json.loads(text)
    except ValueError as error:
        raise SegrobError(f"{path}: cannot parse suite file ({error})") from None


def _entry(path: Path, index: int, item: Any) -> SuiteEntry:
    where = f"{path}: perturbation entry {index}"
    if isinstance(item, str):
        item = {"name": item}
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise SegrobError(f"{where} needs a name (a string)")
    extra = sorted(set(item) - set(ENTRY_KEYS))
    if extra:
        raise SegrobError(f"{where} has unknown key {extra[0]!r} (valid: {', '.join(ENTRY_KEYS)})")
    try:
        perturbation = create_perturbation(item["name"])
    except SegrobError as error:
        raise SegrobError(f"{where}: {error}") from None
    top = perturbation.n_levels
    severities = item.get("severities", list(range(1, top + 1)))
    if isinstance(severities, int) and not isinstance(severities, bool):
        severities = [severities]
    valid = isinstance(severities, list) and severities and all(
        isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= top for s in severities
    )
    if not valid:
        raise SegrobError(
            f"{where}: severities of {perturbation.name} must be integers in 1..{top} "
            f"(0, clean, always runs), got {severities!r}"
        )
    return SuiteEntry(perturbation.name, tuple(sorted(set(severities))))


def load_suite_file(path: str | Path) -> Suite:
    """Read a suite file; any mistake is one line naming the file, the entry and the fix."""
    path = Path(path)
    if not path.is_file():
        raise SegrobError(f"{path}: suite file not found")
    data = _parse(path)
    if not isinstance(data, dict):
        raise SegrobError(f"{path}: a suite file holds a table with 'name' and 'perturbation'")
    unknown = sorted(set(data) - set(FILE_KEYS))
    if unknown:
        raise SegrobError(f"{path}: unknown key {unknown[0]!r} (valid: {', '.join(FILE_KEYS)})")
    items = data.get("perturbation")
    if not isinstance(items, list) or not items:
        raise SegrobError(f"{path}: no perturbation entries (add [[perturbation]] tables)")
    entries = [_entry(path, index, item) for index, item in enumerate(items, start=1)]
    names = [e.perturbation for e in entries]
    repeated = next((n for n in names if names.count(n) > 1), None)
    if repeated:
        raise SegrobError(
            f"{path}: {repeated} is listed twice; give it one entry with all its severities"
        )
    return Suite(str(data.get("name", path.stem)), str(data.get("description", "")), tuple(entries))


def describe_suite(suite: Suite) -> dict[str, Any]:
    """The suite with each member's catalog entry and the severities this suite runs."""
    return {
        **suite.to_dict(),
        "members": [
            {**create_perturbation(e.perturbation).to_dict(),
             "suite_severities": list(e.severities)}
            for e in suite.entries
        ],
    }


def catalog() -> dict[str, Any]:
    """Every suite (with its members' names) and every perturbation's parameters per severity."""
    return {
        "suites": [suite.to_dict() for suite in SUITES.values()],
        "perturbations": [create_perturbation(name).to_dict() for name in PERTURBATIONS],
    }
