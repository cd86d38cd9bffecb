"""Named suites of perturbations, and suites a user writes in a small TOML or JSON file.

A suite file::

    name = "my-scanner"
    description = "what our new MRI scanner does"
    [[perturbation]]
    name = "bias_field"
    severities = [1, 3, 5]
    [[perturbation]]
    name = "rician_noise"          # severities default to all of the perturbation's levels

JSON takes the same keys (``{"name": ..., "perturbation": [{"name": ..., "severities": [...]}]}``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from segrob.errors import SegrobError
from segrob.perturb.registry import PERTURBATIONS, create_perturbation


@dataclass(frozen=True)
class SuiteEntry:
    perturbation: str
    severities: tuple[int, ...]

    def to_dict(self) -> dict:
        return {"perturbation": self.perturbation, "severities": list(self.severities)}


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    entries: tuple[SuiteEntry, ...]

    def to_dict(self) -> dict:
        return {"name": self.name, "description": self.description,
                "entries": [e.to_dict() for e in self.entries]}

    def for_dims(self, spatial_dims: int) -> tuple[Suite, list[str]]:
        """The members that work on ``spatial_dims`` images, and the names left out."""
        kept, dropped = [], []
        for entry in self.entries:
            if spatial_dims in PERTURBATIONS[entry.perturbation].dims:
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
        Suite("texture", "Kamath et al. 2023: background blur (easier) and speckle (harder)",
              _family("texture")),
        Suite("all", "every perturbation except the texture protocol",
              _entries(*[n for n, cls in PERTURBATIONS.items() if cls.family != "texture"])),
        Suite("mri", "what MRI deployments meet", _modality("mri")),
        Suite("ct", "what CT deployments meet", _modality("ct")),
        Suite("us", "what ultrasound deployments meet", _modality("us")),
        Suite("histology", "what digital pathology deployments meet", _modality("histology")),
    )
}


def get_suite(name: str) -> Suite:
    if name not in SUITES:
        raise SegrobError(f"unknown suite {name!r} (valid: {', '.join(SUITES)}, or a .toml/.json file)")
    return SUITES[name]


def resolve_suite(name_or_path: str) -> Suite:
    """A registered suite by name, or a suite file (``.toml`` or ``.json``)."""
    if name_or_path in SUITES:
        return SUITES[name_or_path]
    path = Path(name_or_path)
    if path.suffix.lower() in (".toml", ".json"):
        return load_suite_file(path)
    return get_suite(name_or_path)


def load_suite_file(path: str | Path) -> Suite:
    """Read a suite file; any mistake is one line naming the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise SegrobError(f"{path}: suite file not found")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except ValueError as error:
        raise SegrobError(f"{path}: cannot parse suite file ({error})") from None
    if not isinstance(data, dict):
        raise SegrobError(f"{path}: a suite file holds a table/object with 'name' and 'perturbation'")
    unknown_keys = set(data) - {"name", "description", "perturbation"}
    if unknown_keys:
        raise SegrobError(
            f"{path}: unknown key {sorted(unknown_keys)[0]!r} (valid: name, description, perturbation)"
        )
    items = data.get("perturbation")
    if not isinstance(items, list) or not items:
        raise SegrobError(f"{path}: no perturbation entries (add [[perturbation]] tables)")
    entries = []
    for index, item in enumerate(items):
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict) or "name" not in item:
            raise SegrobError(f"{path}: perturbation entry {index + 1} has no name")
        extra = set(item) - {"name", "severities"}
        if extra:
            raise SegrobError(
                f"{path}: perturbation entry {index + 1} has unknown key {sorted(extra)[0]!r} "
                "(valid: name, severities)"
            )
        perturbation = create_perturbation(str(item["name"]))
        severities = item.get("severities", list(range(1, perturbation.n_levels + 1)))
        if (not isinstance(severities, list) or not severities
                or any(not isinstance(s, int) or not 1 <= s <= perturbation.n_levels for s in severities)):
            raise SegrobError(
                f"{path}: severities of {perturbation.name} must be a list of integers in "
                f"1..{perturbation.n_levels}, got {severities!r}"
            )
        entries.append(SuiteEntry(perturbation.name, tuple(sorted(set(severities)))))
    return Suite(str(data.get("name", path.stem)), str(data.get("description", "")), tuple(entries))
