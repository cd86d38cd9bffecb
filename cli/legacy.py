"""Old spellings, kept working for one release: each is rewritten to its new spelling before the
command line is parsed, with a deprecation warning on stderr.

- ``segrob data info DIR``, ``segrob complexity DIR``, ``segrob perturb DIR``: the dataset was
  positional; it is ``--data DIR`` now, as in every other command.
- ``segrob audit ... --json FILE`` (or ``--json -``): ``--json`` took the report file; the file is
  ``-o/--out FILE`` now and ``--json`` is the flag it is everywhere else (JSON on stdout).

Remove this module and its ``cls=`` uses when the release after the deprecation ships.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from typer.core import TyperArgument, TyperCommand, TyperOption

from .output import warn

Rewrite = Callable[[TyperCommand, list[str]], list[str]]


class LegacyCommand(TyperCommand):
    """A command that accepts its deprecated spellings (see :func:`accepting`)."""

    rewrites: tuple[Rewrite, ...] = ()

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        for rewrite in self.rewrites:
            args = rewrite(self, list(args))
        return super().parse_args(ctx, args)


def accepting(*rewrites: Rewrite) -> type[TyperCommand]:
    """The command class for ``app.command(cls=...)`` that applies ``rewrites``."""
    return type("LegacyCommand", (LegacyCommand,), {"rewrites": rewrites})


def _positionals(command: TyperCommand, args: Sequence[str]) -> list[int]:
    """Indices of the positional tokens in ``args`` (option values are not positional)."""
    takes_value = {
        name
        for param in command.params
        if isinstance(param, TyperOption) and not param.is_flag and not param.count
        for name in (*param.opts, *param.secondary_opts)
    }
    found: list[int] = []
    index = 0
    while index < len(args):
        token = args[index]
        if token == "--":
            return found + list(range(index + 1, len(args)))
        if token.startswith("-") and token != "-":
            index += 2 if token in takes_value else 1
            continue
        found.append(index)
        index += 1
    return found


def _arguments(command: TyperCommand) -> int:
    return sum(isinstance(param, TyperArgument) for param in command.params)


def positional_data(command: TyperCommand, args: list[str]) -> list[str]:
    """``CMD DIR`` -> ``CMD --data DIR`` for a command whose other arguments are all options."""
    extra = _positionals(command, args)[_arguments(command):]
    given = any(token == "--data" or token.startswith("--data=") for token in args)
    if len(extra) != 1 or given:
        return args  # nothing old here, or something Click will report as it is
    index = extra[0]
    warn(f"the dataset as a positional argument is deprecated and will be removed in the next "
         f"release; write --data {args[index]}")
    return [*args[:index], "--data", args[index], *args[index + 1:]]


def json_report_file(command: TyperCommand, args: list[str]) -> list[str]:
    """``--json FILE`` -> ``--out FILE``; ``--json -`` -> ``--json`` (JSON on stdout)."""
    for index, token in enumerate(args):
        if token.startswith("--json="):
            return _json_value(args, index, 1, token.partition("=")[2])
    found = _positionals(command, args)
    if len(found) <= _arguments(command):
        return args  # every positional is an argument: a --json before one is the flag
    for index in found:
        if index > 0 and args[index - 1] == "--json":
            return _json_value(args, index - 1, 2, args[index])
    return args


def _json_value(args: list[str], index: int, width: int, value: str) -> list[str]:
    new = ["--json"] if value == "-" else ["--out", value]
    warn(f"--json {value} is deprecated and will be removed in the next release; write "
         f"{' '.join(new)} (--json alone prints the report on stdout, --out FILE saves it)")
    return [*args[:index], *new, *args[index + width:]]
