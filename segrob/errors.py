"""Errors the user can act on.

The CLI turns a :class:`SegrobError` into one line on stderr and exit code 1 (2 for
:class:`UsageError`); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class SegrobError(Exception):
    """An expected failure: bad input, a failed check. The message is shown as is."""

    exit_code = 1


class UsageError(SegrobError):
    """The command line itself is wrong (unknown option value, malformed bound)."""

    exit_code = 2


def first_line(error: BaseException, limit: int | None = None) -> str:
    """The first line of ``error``'s message (its type's name when it has none), cut to ``limit``
    characters ending in "..." where longer: how a library's exception, often pages of detail,
    becomes part of a one-line :class:`SegrobError` message."""
    lines = str(error).strip().splitlines()
    text = lines[0] if lines else type(error).__name__
    if limit is not None and len(text) > limit:
        return text[: limit - 3] + "..."
    return text
