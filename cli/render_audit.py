"""Rich rendering of audit reports and comparisons (shared by `audit` and `report`)."""

from __future__ import annotations

from rich.table import Table

from segrob.audit.summary import Stat
from segrob.metrics.table import METRIC_BY_NAME

from .output import console, err_console, fmt

#: The timings the audit's console summary shows, in the report's order.
CONSOLE_STAGES = ("perturbation", "inference", "metrics", "total")

DICE, HD95, NSD = (METRIC_BY_NAME[name] for name in ("dice", "hd95", "nsd"))


def _ci(stat: Stat) -> str:
    if stat.mean is None:
        return "–"
    if stat.ci_low is None:
        return fmt(stat.mean)
    return f"{fmt(stat.mean)} [{fmt(stat.ci_low)}, {fmt(stat.ci_high)}]"


def _delta(stat: Stat, significant: bool) -> str:
    if stat.mean is None:
        return "–"
    text = f"{stat.mean:+.3f} [{stat.ci_low:+.3f}, {stat.ci_high:+.3f}]"
    if significant:
        return f"[bold red]{text}[/]"
    if stat.ci_low is not None and stat.ci_low > 0:
        return f"[green]{text}[/]"
    return text


def render_report(report) -> None:
    """The tables of one audit: per (perturbation, severity), per perturbation, the suite."""
    summary = report.summary
    model = report.model
    title = f"{model.get('arch') or 'model'} · suite {report.suite.get('name')} · {report.data.get('source')}"
    console.print(
        f"[bold]{title}[/]  ({summary.n_cases} cases, providers "
        f"{', '.join(report.settings.get('providers', []))}, seed {report.settings.get('seed')})"
    )
    scoring = _scoring(report.settings)
    if scoring:
        console.print(scoring)
    clean = summary.clean
    cells = Table(
        title="Dice under perturbation (mean [95% CI]; change from clean, paired; red = significant drop)",
        title_justify="left",
        header_style="bold",
    )
    for name, justify in (("perturbation", "left"), ("sev", "right"), (DICE.heading, "right"),
                          (f"Δ {DICE.heading}", "right"), (HD95.heading, "right"), (NSD.heading, "right"),
                          ("fail", "right")):
        cells.add_column(name, justify=justify, overflow="fold")
    cells.add_row("clean", "0", _ci(clean.stat("dice")), "", fmt(clean.mean("hd95"), HD95.digits),
                  fmt(clean.mean("nsd"), NSD.digits), _pct(clean.failure_rate))
    previous = None
    for cell in summary.cells:
        name = cell.perturbation if cell.perturbation != previous else ""
        previous = cell.perturbation
        cells.add_row(
            name,
            str(cell.severity),
            _ci(cell.stat("dice")),
            _delta(cell.deltas.get("dice", Stat()), cell.significant_drop),
            fmt(cell.mean("hd95"), HD95.digits),
            fmt(cell.mean("nsd"), NSD.digits),
            _pct(cell.failure_rate),
        )
    console.print(cells)
    _render_perturbations(report)
    _render_extras(report)


def _render_perturbations(report) -> None:
    """Per perturbation: rR, weighted degradation, worst severity, and the suite's line."""
    summary, clean = report.summary, report.summary.clean
    per = Table(title="Per perturbation", title_justify="left", header_style="bold")
    for name, justify in (("perturbation", "left"), ("rR", "right"), ("weighted degradation", "right"),
                          ("worst severity", "right"), ("worst Dice", "right"), ("failure rate", "right")):
        per.add_column(name, justify=justify, overflow="fold")
    for row in summary.perturbations:
        per.add_row(
            row.perturbation,
            _rr(row.relative_robustness),
            fmt(row.weighted_degradation),
            fmt(row.worst_severity),
            fmt(row.worst_dice),
            _pct(row.failure_rate),
        )
    console.print(per)
    suite = summary.suite
    worst = suite.worst
    console.print(
        f"suite {report.suite.get('name')}: clean Dice {fmt(clean.mean('dice'))}, mean perturbed "
        f"Dice {fmt(suite.mean_dice)}, rR {fmt(suite.relative_robustness)}, weighted "
        f"degradation {fmt(suite.weighted_degradation)}, failure rate {_pct(suite.failure_rate)}"
        + (f"; worst {worst.perturbation} s{worst.severity} (Dice {fmt(worst.dice)})"
           if worst else "")
    )


def _scoring(settings: dict) -> str:
    """A line for scoring choices other than segrob's defaults, so no number is read against the wrong one."""
    parts = []
    if settings.get("nsd_definition", "voxel") == "area":
        parts.append("NSD weighted by surface area (DeepMind/MSD definition)")
    if settings.get("empty_policy", "segrob") == "nnunet":
        parts.append("empty-mask policy nnunet (both empty: NaN, left out of the means)")
    return "scored with " + "; ".join(parts) if parts else ""


def _render_extras(report) -> None:
    summary = report.summary
    per_class = summary.per_class or {}
    if len(per_class) > 1 or report.class_names:
        console.print(
            "per class Dice (clean / perturbed): "
            + ", ".join(f"{report.class_name(k)}: {fmt(v.clean)} / {fmt(v.perturbed)}"
                        for k, v in per_class.items())
        )
    empty = summary.clean_empty
    if empty and (empty.both or empty.pred or empty.gt):
        console.print(
            f"empty masks on clean images: both {empty.both}, prediction only {empty.pred}, "
            f"ground truth only {empty.gt} (scored by the empty-mask policy, never dropped)"
        )
    fbr = summary.fbr
    if fbr:
        inside, outside = fbr.inside, fbr.outside
        console.print(
            f"training FBR range {fbr.minimum:.3f}-{fbr.maximum:.3f}: clean Dice inside "
            f"{fmt(inside.clean_dice)} ({inside.n_cases} cases), outside {fmt(outside.clean_dice)} "
            f"({outside.n_cases} cases)"
        )
    if report.skipped_cases:
        err_console.print(f"[yellow]skipped {len(report.skipped_cases)} unreadable case(s):[/]")
        for skipped in report.skipped_cases:
            err_console.print(f"  {skipped['name']}: {skipped['error']}")
    # The stages a reader weighs; the report keeps every timing (the scorer's CPU time, the wait on it).
    shown = {k: v for k, v in report.timings.items() if k in CONSOLE_STAGES}
    if shown:
        console.print("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in shown.items()), style="dim")


def render_gates(gates: dict | None) -> None:
    if not gates:
        return
    if gates["passed"]:
        console.print("[bold green]gate passed[/]: " + ", ".join(
            f"{b['key']} >= {b['minimum']}" for b in gates["bounds"]))
        return
    err_console.print(f"[bold red]gate failed[/]: {len(gates['failures'])} row(s) under their bound")
    for failure in gates["failures"]:
        value = "n/a" if failure["value"] is None else f"{failure['value']:.3f}"
        err_console.print(f"  {failure['row']}: {failure['key']} {value} < {failure['minimum']}")


def render_comparison(comparison) -> None:
    models = comparison.models
    console.print(
        f"[bold]suite {comparison.suite} · {comparison.data}[/] (best per row in green; bold where it is "
        "significantly ahead of every other model on the shared cases, paired bootstrap, BCa 95%)"
    )
    for title, rows, extra in (
        ("Summary", comparison.summary_rows, False),
        ("Mean Dice per row", comparison.dice_rows, False),
        ("Relative robustness (rR) per perturbation", comparison.robustness_rows, True),
    ):
        table = Table(title=title, title_justify="left", header_style="bold")
        table.add_column("row", overflow="fold")
        for model in models:
            table.add_column(model, justify="right")
        for row in rows:
            cells = []
            for index, value in enumerate(row["values"]):
                text = fmt(value)
                if extra and row.get("weighted_degradation"):
                    text += f" (wd {fmt(row['weighted_degradation'][index])})"
                cells.append(_best(text, row) if index == row["best"] and len(models) > 1 else text)
            table.add_row(row["row"], *cells)
        console.print(table)
    _render_pairwise(comparison.pairwise)


def _best(text: str, row: dict) -> str:
    """Green for the best value; bold only when it is significantly ahead of every other model."""
    return f"[bold green]{text}[/]" if row.get("significant") else f"[green]{text}[/]"


def _render_pairwise(pairs) -> None:
    if not pairs:
        return
    table = Table(title="Pairwise on the shared cases (first - second, paired bootstrap, BCa 95%)",
                  title_justify="left", header_style="bold")
    for name, justify in (("models", "left"), ("figure", "left"), ("difference", "right"),
                          ("cases", "right"), ("verdict", "left")):
        table.add_column(name, justify=justify, overflow="fold")
    for pair in pairs:
        if pair.ci_low is None:
            difference, verdict = "–", "not testable"
        else:
            difference = f"{pair.difference:+.3f} [{pair.ci_low:+.3f}, {pair.ci_high:+.3f}]"
            ahead = pair.first if pair.difference > 0 else pair.second
            verdict = f"[bold]{ahead} ahead[/]" if pair.significant else "no significant difference"
        table.add_row(f"{pair.first} vs {pair.second}", pair.figure, difference, str(pair.n_cases), verdict)
    console.print(table)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"


def _rr(value: float | None) -> str:
    if value is None:
        return "–"
    colour = "green" if value >= 0.95 else ("yellow" if value >= 0.8 else "red")
    return f"[{colour}]{value:.3f}[/]"
