"""Perturbations (one family per file), their registry and the named suites."""

from segrob.perturb.base import AppliedPerturbation, Perturbation
from segrob.perturb.registry import (
    PERTURBATIONS,
    apply_perturbation,
    create_perturbation,
    list_perturbations,
)
from segrob.perturb.seeding import derive_seed
from segrob.perturb.suites import (
    SUITES,
    Suite,
    SuiteEntry,
    catalog,
    describe_suite,
    get_suite,
    list_suites,
    load_suite_file,
    resolve_suite,
)

__all__ = [
    "PERTURBATIONS",
    "SUITES",
    "AppliedPerturbation",
    "Perturbation",
    "Suite",
    "SuiteEntry",
    "apply_perturbation",
    "catalog",
    "create_perturbation",
    "derive_seed",
    "describe_suite",
    "get_suite",
    "list_perturbations",
    "list_suites",
    "load_suite_file",
    "resolve_suite",
]
