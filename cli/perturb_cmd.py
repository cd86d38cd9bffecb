"""``segrob suites`` and ``segrob perturb``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from .legacy import accepting, positional_data
from .options import (
    AllowOutside,
    Cases,
    Data,
    Json,
    Out,
    Overwrite,
    Seed,
    Suite,
    perturbation_name,
    whole_number,
)
from .output import Output, console, handles_errors, info, table

SEVERITY_COLUMNS = ("1", "2", "3", "4", "5")


def _value(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _parameter_rows(member: dict[str, Any], used: list[int] | None = None,
                     leading: tuple[str, ...] = ()) -> list[list[str]]:
    """One row per parameter: its name and unit, then its nominal value at each severity 1..5."""
    rows = []
    levels = member["severities"]
    for index, parameter in enumerate(levels[1]):
        cells = [
            _value(levels[s][parameter]) if s in levels and (used is None or s in used) else "–"
            for s in range(1, len(SEVERITY_COLUMNS) + 1)
        ]
        lead = list(leading) if index == 0 else [""] * len(leading)
        rows.append([*lead, parameter, member.get("units", {}).get(parameter, ""), *cells])
    return rows


def _dims(member: dict[str, Any]) -> str:
    return "/".join(f"{d}D" for d in member["spatial_dims"])


@handles_errors
def suites(
    suite: Suite = None,
    as_json: Json = False,
) -> None:
    """List every suite and perturbation with its nominal parameters per severity (--suite: one suite)."""
    from segrob.perturb import catalog, describe_suite, resolve_suite

    output = Output(as_json=as_json)
    if suite:
        output.result(describe_suite(resolve_suite(suite)), _suite_view)
    else:
        output.result(catalog(), _catalog_view)


def _suite_view(described: dict[str, Any]) -> None:
    rows = []
    for member in described["members"]:
        lead = (member["name"], _dims(member))
        rows += _parameter_rows(member, member["suite_severities"], lead)
    console.print(table(f"Suite {described['name']}: {described['description']}",
                        ("perturbation", "dims", "parameter", "unit", *SEVERITY_COLUMNS), rows,
                        justify_numbers=False,
                        caption="nominal parameters per severity (0 = clean); – = not run"))
    for member in described["members"]:
        machine = " [dim](last bits depend on the CPU: MKL)[/]" if member["cpu_dependent_bits"] else ""
        console.print(f"[bold]{member['name']}[/] ({', '.join(member['modalities'])}): "
                      f"{member['description']}{machine}")


def _catalog_view(everything: dict[str, Any]) -> None:
    console.print(table("Suites", ("suite", "members", "what"),
                        [(s["name"], len(s["entries"]), s["description"])
                         for s in everything["suites"]],
                        justify_numbers=False))
    rows = []
    for member in everything["perturbations"]:
        rows += _parameter_rows(member, None, (member["name"], member["family"], _dims(member)))
    console.print(table("Perturbations", ("perturbation", "family", "dims", "parameter", "unit",
                                          *SEVERITY_COLUMNS), rows, justify_numbers=False,
                        caption="nominal parameters per severity; texture members have the paper's "
                        "2 levels; lengths in mm follow each image's voxel spacing"))
    console.print("[dim]segrob suites --suite NAME: one suite's members and what each does[/]")


@handles_errors
def perturb(
    data: Data = ...,
    perturbation: str = typer.Option(None, "--perturbation", parser=perturbation_name,
                                     help="One perturbation name (see `segrob suites`)."),
    severity: int = typer.Option(None, "--severity", parser=whole_number(0, 5),
                                 help="Severity 0..5 with --perturbation (default: every level)."),
    suite: Suite = None,
    out: Out = None,
    preview: Path = typer.Option(None, "--preview", help="Write a PNG contact sheet here."),
    seed: Seed = 0,
    n: Cases = None,
    case: int = typer.Option(0, "--case", parser=whole_number(0),
                             help="Which case (index) the contact sheet shows."),
    overwrite: Overwrite = False,
    as_json: Json = False,
    allow_outside: AllowOutside = False,
) -> None:
    """Apply a perturbation or a suite to a dataset: see what an audit does to your images.

    --out writes the perturbed cases (images/ + labels/), --preview a PNG contact sheet.
    """
    from segrob.data import load_dataset
    from segrob.errors import UsageError
    from segrob.perturb.apply_dataset import write_perturbed_dataset
    from segrob.perturb.preview import write_contact_sheet

    chosen = _chosen_suite(perturbation, severity, suite)
    if out is None and preview is None:
        raise UsageError("give --out DIR, --preview PNG, or both")
    dataset = load_dataset(data, allow_outside=allow_outside)
    _check_outputs(dataset, out, preview, case, overwrite=overwrite)
    output = Output(as_json=as_json)
    result: dict[str, Any] = {"suite": chosen.to_dict(), "seed": seed}
    if out is not None:
        total = len(dataset.names[:n] if n else dataset.names)
        with output.progress("perturb", total) as bar:
            written = write_perturbed_dataset(dataset, chosen, out, seed=seed, limit=n,
                                              overwrite=overwrite, progress=bar)
        result.update(out=str(out), skipped=written["skipped"], applied=written["applied"])
    if preview is not None:
        rows = write_contact_sheet(dataset, chosen, preview, seed=seed, case_index=case,
                                   overwrite=overwrite)
        result.update(preview=str(preview), preview_rows=len(rows))
    output.result(result, _perturb_view)


def _check_outputs(dataset, out: Path | None, preview: Path | None, case: int, *,
                   overwrite: bool) -> None:
    """Refuse every output, and a --case the dataset lacks, before anything is written."""
    from segrob.errors import UsageError
    from segrob.io_utils import check_output_dir, check_output_file
    from segrob.perturb.preview import is_contact_sheet

    if preview is not None:
        if not 0 <= case < len(dataset):
            raise UsageError(f"--case {case} is out of range: {dataset.root} has cases 0..{len(dataset) - 1}")
        check_output_file(preview, overwrite=overwrite, inputs=(dataset.root,), is_ours=is_contact_sheet)
    if out is not None:
        check_output_dir(out, overwrite=overwrite, inputs=(dataset.root,))


def _chosen_suite(perturbation: str | None, severity: int | None, suite: str | None):
    """The suite to apply: one perturbation (at one severity, or all) or a named suite."""
    from segrob.errors import UsageError
    from segrob.perturb import create_perturbation, resolve_suite
    from segrob.perturb.apply_dataset import single_suite
    from segrob.perturb.base import check_severity

    if (perturbation is None) == (suite is None):
        raise UsageError("give --perturbation NAME (with --severity) or --suite NAME, not both")
    if severity is not None and suite is not None:
        raise UsageError("--severity goes with --perturbation; a suite sets its own severities")
    if suite is not None:
        return resolve_suite(suite)
    member = create_perturbation(perturbation)
    if severity is not None and severity > member.n_levels:
        raise UsageError(f"--severity {severity}: {member.name} has severities 0..{member.n_levels}")
    severities = (severity,) if severity is not None else tuple(range(1, member.n_levels + 1))
    for level in severities:
        check_severity(member, level)
    return single_suite(member.name, severities)


def _perturb_view(result: dict[str, Any]) -> None:
    if "out" in result:
        console.print(f"wrote {len(result['applied'])} perturbed image(s) to {result['out']} "
                      "(seeds and parameters in perturbations.json)")
        if result["skipped"]:
            info(f"left out (not for this dimensionality): {', '.join(result['skipped'])}")
    if "preview" in result:
        console.print(f"contact sheet of {result['preview_rows']} perturbation(s) written to "
                      f"{result['preview']}")


def register(app: typer.Typer) -> None:
    app.command("suites")(suites)
    app.command("perturb", cls=accepting(positional_data))(perturb)
