"""``segrob suites`` and ``segrob perturb``."""

from __future__ import annotations

from pathlib import Path

import typer

from .output import console, emit_json, handles_errors, info, progress_bar, table


@handles_errors
def suites(
    suite: str = typer.Option(None, "--suite", help="Show one suite (a name or a .toml/.json file)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON only."),
) -> None:
    """List the perturbation suites and each member's parameters per severity."""
    from segrob.perturb import SUITES, create_perturbation, resolve_suite

    chosen = [resolve_suite(suite)] if suite else list(SUITES.values())
    if as_json:
        emit_json([
            {**s.to_dict(), "members": [
                {**create_perturbation(e.perturbation).to_dict(), "severities_used": list(e.severities)}
                for e in s.entries
            ]}
            for s in chosen
        ])
        return
    if not suite:
        console.print(table("Suites", ("suite", "members", "what"),
                            [(s.name, len(s.entries), s.description) for s in chosen]))
        console.print("[dim]segrob suites --suite NAME shows each member's parameters per severity[/]")
        return
    for current in chosen:
        rows = []
        for entry in current.entries:
            member = create_perturbation(entry.perturbation)
            levels = [", ".join(f"{k} {v:g}" for k, v in member.severity_params(s).items())
                      for s in entry.severities]
            rows.append((member.name, "/".join(f"{d}D" for d in member.dims), " | ".join(levels)))
        console.print(table(f"Suite {current.name}: {current.description}",
                            ("perturbation", "dims", "parameters at severity " +
                             ", ".join(map(str, current.entries[0].severities)) + " ..."), rows,
                            justify_numbers=False))
        for entry in current.entries:
            member = create_perturbation(entry.perturbation)
            console.print(f"[bold]{member.name}[/]: {member.description}")


@handles_errors
def perturb(
    data: Path = typer.Argument(..., help="Dataset folder."),
    perturbation: str = typer.Option(None, "--perturbation", help="One perturbation name."),
    severity: int = typer.Option(None, "--severity", help="Severity 1..5 (with --perturbation)."),
    suite: str = typer.Option(None, "--suite", help="A suite name or file instead of --perturbation."),
    out: Path = typer.Option(None, "--out", help="Write perturbed cases here (images/ + labels/)."),
    preview: Path = typer.Option(None, "--preview", help="Write a PNG contact sheet here."),
    seed: int = typer.Option(0, "--seed", help="Seed (the audit's derivation: same seed, same draws)."),
    n: int = typer.Option(None, "--n", help="Only the first N cases (for --out)."),
    case: int = typer.Option(0, "--case", help="Which case the contact sheet shows."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty --out."),
) -> None:
    """Apply a perturbation or a suite to a dataset: see what an audit does to your images."""
    from segrob.data import load_dataset
    from segrob.errors import UsageError
    from segrob.io_utils import atomic_output_dir, atomic_output_file, check_output_dir, write_json_atomic
    from segrob.perturb import SuiteEntry, create_perturbation, resolve_suite
    from segrob.perturb.apply_dataset import contact_sheet, perturb_dataset, save_contact_sheet
    from segrob.perturb.base import check_severity

    if (perturbation is None) == (suite is None):
        raise UsageError("give --perturbation NAME (with --severity) or --suite NAME")
    if out is None and preview is None:
        raise UsageError("give --out DIR, --preview PNG, or both")
    if perturbation is not None:
        member = create_perturbation(perturbation)
        severities = (severity,) if severity is not None else tuple(range(1, member.n_levels + 1))
        for level in severities:
            check_severity(member, level)
        entries = [SuiteEntry(member.name, tuple(s for s in severities if s > 0) or (0,))]
    else:
        entries = list(resolve_suite(suite).entries)
    dataset = load_dataset(data)
    if out is not None:
        check_output_dir(out, overwrite=overwrite, inputs=(data,))
        with atomic_output_dir(out, overwrite=overwrite) as staging, progress_bar(
            "perturb", len(dataset.names[:n] if n else dataset.names)
        ) as bar:
            applied = perturb_dataset(dataset, entries, staging, seed=seed, limit=n, progress=bar)
            write_json_atomic(staging / "perturbations.json", {"source": str(data), "seed": seed,
                                                               "applied": applied})
        console.print(f"wrote {len(applied)} perturbed case(s) to {out} (parameters in perturbations.json)")
    if preview is not None:
        if not 0 <= case < len(dataset):
            raise UsageError(f"--case must be in 0..{len(dataset) - 1}")
        grid, names = contact_sheet(dataset, entries, seed=seed, case_index=case)
        with atomic_output_file(preview) as staging_file:
            save_contact_sheet(grid, names, staging_file)
        info(f"contact sheet of {len(names)} perturbation(s) written to {preview}")


def register(app: typer.Typer) -> None:
    app.command("suites")(suites)
    app.command("perturb")(perturb)
