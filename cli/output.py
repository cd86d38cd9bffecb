"""The one output helper: rich for people on stdout, JSON-only stdout with ``--json``,
progress, warnings and errors on stderr.

A command hands its typed result to an :class:`Output`, which decides how it is shown, so no
command decides about ``--json`` on its own.
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import typer
from rich.console import Console, ConsoleDimensions
from rich.table import Table

from segrob.io_utils import json_safe

# Piped or redirected output has no terminal width; rich's 80 columns would break words in tables.
PIPE_WIDTH = 160


class _Console(Console):
    """A console that, when not writing to a terminal, is COLUMNS wide or else PIPE_WIDTH."""

    @property
    def size(self) -> ConsoleDimensions:
        measured = Console.size.fget(self)  # type: ignore[attr-defined]
        if self._width is not None or self.is_terminal:
            return measured
        columns = os.environ.get("COLUMNS", "")
        return ConsoleDimensions(int(columns) if columns.isdigit() else PIPE_WIDTH, measured.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]


console = _Console(highlight=False)
err_console = _Console(stderr=True, highlight=False)

F = TypeVar("F", bound=Callable[..., Any])


_debug = {"on": False}


def set_debug(on: bool) -> None:
    """Set by the root callback on every invocation, so one `--debug` run does not leak."""
    _debug["on"] = on


def debug_enabled() -> bool:
    return _debug["on"] or os.environ.get("SEGROB_DEBUG", "") not in ("", "0")


def usage_error_line(error: Any) -> None:
    """Say a command-line usage error (click's) in one line on stderr, as every segrob error is.

    Typer would draw it as a boxed panel; the exit code (2) stays click's.
    """
    from rich.markup import escape

    context = getattr(error, "ctx", None)
    hint = f" (see `{context.command_path} --help`)" if context is not None else ""
    err_console.print(f"[bold red]error:[/] {escape(error.format_message())}{escape(hint)}", soft_wrap=True)


def handles_errors(func: F) -> F:
    """Turn a :class:`segrob.SegrobError` into one line on stderr and its exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from rich.markup import escape

        from segrob.errors import SegrobError

        try:
            return func(*args, **kwargs)
        except SegrobError as error:
            if debug_enabled():
                raise
            err_console.print(f"[bold red]error:[/] {escape(str(error))}", markup=True, soft_wrap=True)
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("[bold red]interrupted[/]")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def _json_default(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def to_json(data: Any) -> str:
    plain = json.loads(json.dumps(data, default=_json_default))
    return json.dumps(json_safe(plain), indent=2, allow_nan=False)


def emit_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout and nothing else."""
    typer.echo(to_json(data))


class Output:
    """Where a command's result goes: a rich view for people, or JSON alone on stdout.

    ``view`` renders the result for people (tables and lines on stdout); the JSON form is the
    result's ``to_dict()`` (or the data itself), so it carries everything the view shows.
    """

    def __init__(self, *, as_json: bool = False):
        self.format = "json" if as_json else "table"

    @property
    def is_json(self) -> bool:
        return self.format == "json"

    def progress(self, description: str, total: int | None, *, quiet: bool = False) -> progress_bar:
        """A progress bar on stderr, silent in JSON mode (whose readers are programs)."""
        return progress_bar(description, total, quiet=quiet or self.is_json)

    def result(self, data: Any, view: Callable[[Any], None], *,
               serialize: Callable[[Any], str] | None = None) -> None:
        """Show ``data``: ``view(data)`` for people, else ``serialize(data)`` (default: JSON)."""
        if not self.is_json:
            view(data)
        elif serialize is not None:
            typer.echo(serialize(data), nl=False)
        else:
            emit_json(data)


def info(message: str) -> None:
    err_console.print(message)


def warn(message: str) -> None:
    err_console.print(f"[yellow]warning:[/] {message}", soft_wrap=True)


def table(
    title: str | None,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    caption: str | None = None,
    justify_numbers: bool = True,
) -> Table:
    """A rich table with the house look; numbers right-aligned, cells rendered with ``str``."""
    rendered = Table(title=title, caption=caption, title_justify="left", header_style="bold")
    rows = [list(r) for r in rows]
    for index, name in enumerate(columns):
        numeric = justify_numbers and rows and all(
            isinstance(r[index], int | float) or (isinstance(r[index], str) and _looks_numeric(r[index]))
            for r in rows
        )
        rendered.add_column(name, justify="right" if numeric else "left")
    for row in rows:
        rendered.add_row(*[fmt(cell) for cell in row])
    return rendered


def _looks_numeric(text: str) -> bool:
    try:
        float(text.replace("%", "").replace("±", "").split()[0])
    except (ValueError, IndexError):
        return False
    return True


def fmt(value: Any, digits: int = 3) -> str:
    """Render a cell: floats to ``digits`` places, None/NaN as a dash."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–"
        return f"{value:.{digits}f}"
    return str(value)


class progress_bar:
    """Progress on stderr; calling it with a count advances it.

    On a terminal: a rich bar with ETA. Elsewhere (a CI log, a file) a bar would stay invisible
    until the end, so a plain line is printed every ``PLAIN_STEP`` of the work (every
    ``PLAIN_SECONDS`` when the total is unknown). ``quiet`` silences both.
    """

    PLAIN_STEP = 0.05
    PLAIN_SECONDS = 30.0

    def __init__(self, description: str, total: int | None, *, quiet: bool = False):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._plain = not quiet and not err_console.is_terminal
        self._description, self._total, self._started = description, total, time.monotonic()
        self._said = (-1.0, self._started)  # (share, time) of the last plain line
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"),
            console=err_console,
            transient=False,
            disable=quiet or self._plain,
        )
        self._task = self._progress.add_task(description, total=total, status="")

    def __enter__(self) -> progress_bar:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def __call__(self, completed: int, total: int | None = None, status: str = "") -> None:
        self._progress.update(self._task, completed=completed, total=total, status=status)
        if self._plain:
            self._plain_line(completed, total or self._total, status)

    def _plain_line(self, completed: int, total: int | None, status: str) -> None:
        now = time.monotonic()
        elapsed = now - self._started
        share = completed / total if total else None
        last_share, last_time = self._said
        due = (share - last_share >= self.PLAIN_STEP or share >= 1.0) if share is not None else (
            now - last_time >= self.PLAIN_SECONDS)
        if not due or (share is not None and share == last_share):
            return
        self._said = (share if share is not None else last_share, now)
        where = f" {status}" if status else ""
        if share is None:
            err_console.print(f"{self._description}: {completed} done{where} ({elapsed:.0f} s)", markup=False)
            return
        eta = elapsed / share - elapsed if share > 0 else float("nan")
        err_console.print(f"{self._description}: {100 * share:3.0f}% ({completed}/{total}){where} "
                          f"{elapsed:.0f} s elapsed, eta {eta:.0f} s", markup=False, highlight=False)
