"""``segrob suites`` and ``segrob perturb``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from .output import console, emit_json, handles_errors, info, progress_bar, table

SEVERITY_COLUMNS = ("1", "2", "3", "4", "5")


def _value(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _parameter_rows(member: dict[str, Any], used: list[int] | None = None,
                     leading: tuple[str, ...] = ()) -> list[list[str]]:
    """One row per parameter: its name, then its nominal value at each severity 1..5."""
    rows = []
    levels = member["severities"]
    for index, parameter in enumerate(levels[1]):
        cells = [
            _value(levels[s][parameter]) if s in levels and (used is None or s in used) else "–"
            for s in range(1, len(SEVERITY_COLUMNS) + 1)
        ]
        lead = list(leading) if index == 0 else [""] * len(leading)
        rows.append([*lead, parameter, *cells])
    return rows


def _dims(member: dict[str, Any]) -> str:
    return "/".join(f"{d}D" for d in member["spatial_dims"])


@handles_errors
def suites(
    suite: str = typer.Option(None, "--suite", help="Show one suite (a name or .toml/.json file)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON only."),
) -> None:
    """List every suite and perturbation with its nominal parameters per severity."""
    from segrob.perturb import catalog, describe_suite, resolve_suite

    if suite:
        described = describe_suite(resolve_suite(suite))
        if as_json:
            emit_json(described)
            return
        rows = []
        for member in described["members"]:
            lead = (member["name"], _dims(member))
            rows += _parameter_rows(member, member["suite_severities"], lead)
        console.print(table(f"Suite {described['name']}: {described['description']}",
                            ("perturbation", "dims", "parameter", *SEVERITY_COLUMNS), rows,
                            justify_numbers=False,
                            caption="nominal parameters per severity (0 = clean); – = not run"))
        for member in described["members"]:
            console.print(f"[bold]{member['name']}[/] ({', '.join(member['modalities'])}): "
                          f"{member['description']}")
        return
    everything = catalog()
    if as_json:
        emit_json(everything)
        return
    console.print(table("Suites", ("suite", "members", "what"),
                        [(s["name"], len(s["entries"]), s["description"])
                         for s in everything["suites"]],
                        justify_numbers=False))
    rows = []
    for member in everything["perturbations"]:
        rows += _parameter_rows(member, None, (member["name"], member["family"], _dims(member)))
    console.print(table("Perturbations", ("perturbation", "family", "dims", "parameter",
                                          *SEVERITY_COLUMNS), rows, justify_numbers=False,
                        caption="nominal parameters per severity; texture members have the paper's "
                        "2 levels; intensities are shares of each image's robust range"))
    console.print("[dim]segrob suites --suite NAME: one suite's members and what each does[/]")


@handles_errors
def perturb(
    data: Path = typer.Argument(..., help="Dataset folder."),
    perturbation: str = typer.Option(None, "--perturbation", help="One perturbation name."),
    severity: int = typer.Option(None, "--severity",
                                 help="Severity 0..5 with --perturbation (default: every level)."),
    suite: str = typer.Option(None, "--suite", help="A suite name or .toml/.json file instead."),
    out: Path = typer.Option(None, "--out", help="Write perturbed cases here (images/ + labels/)."),
    preview: Path = typer.Option(None, "--preview", help="Write a PNG contact sheet here."),
    seed: int = typer.Option(0, "--seed", help="Seed, derived per case as the audit does."),
    n: int = typer.Option(None, "--n", help="Only the first N cases (for --out)."),
    case: int = typer.Option(0, "--case", help="Which case (index) the contact sheet shows."),
    overwrite: bool = typer.Option(False, "--overwrite",
                                   help="Replace a non-empty --out or an existing --preview."),
    as_json: bool = typer.Option(False, "--json", help="Print what was applied as JSON only."),
) -> None:
    """Apply a perturbation or a suite to a dataset: see what an audit does to your images."""
    from segrob.data import load_dataset
    from segrob.errors import UsageError
    from segrob.perturb import create_perturbation, resolve_suite
    from segrob.perturb.apply_dataset import single_suite, write_perturbed_dataset
    from segrob.perturb.base import check_severity
    from segrob.perturb.preview import write_contact_sheet

    if (perturbation is None) == (suite is None):
        raise UsageError("give --perturbation NAME (with --severity) or --suite NAME, not both")
    if severity is not None and suite is not None:
        raise UsageError("--severity goes with --perturbation; a suite sets its own severities")
    if out is None and preview is None:
        raise UsageError("give --out DIR, --preview PNG, or both")
    if n is not None and n < 1:
        raise UsageError(f"--n must be at least 1, got {n}")
    if perturbation is not None:
        member = create_perturbation(perturbation)
        severities = (severity,) if severity is not None else tuple(range(1, member.n_levels + 1))
        for level in severities:
            check_severity(member, level)
        chosen = single_suite(member.name, severities)
    else:
        chosen = resolve_suite(suite)
    dataset = load_dataset(data)
    result: dict[str, Any] = {"suite": chosen.to_dict(), "seed": seed}
    if out is not None:
        total = len(dataset.names[:n] if n else dataset.names)
        with progress_bar("perturb", total, quiet=as_json) as bar:
            written = write_perturbed_dataset(dataset, chosen, out, seed=seed, limit=n,
                                              overwrite=overwrite, progress=bar)
        result.update(out=str(out), skipped=written["skipped"], applied=written["applied"])
        if not as_json:
            console.print(f"wrote {len(written['applied'])} perturbed image(s) to {out} "
                          "(seeds and parameters in perturbations.json)")
            if written["skipped"]:
                info(f"left out (not for this dimensionality): {', '.join(written['skipped'])}")
    if preview is not None:
        rows = write_contact_sheet(dataset, chosen, preview, seed=seed, case_index=case,
                                   overwrite=overwrite)
        result["preview"] = str(preview)
        if not as_json:
            console.print(f"contact sheet of {len(rows)} perturbation(s) written to {preview}")
    if as_json:
        emit_json(result)


def register(app: typer.Typer) -> None:
    app.command("suites")(suites)
    app.command("perturb")(perturb)
