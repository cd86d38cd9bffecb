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
