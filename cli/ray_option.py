"""``--ray [ADDRESS]``: an option whose value may be left out.

Click options take a value or none, never either; so ``--ray`` not followed by an address is
rewritten to ``--ray local`` before parsing. An address is ``local``, ``auto``, or has a colon
(``HOST:PORT``, ``ray://HOST:PORT``), so ``--ray model.onnx`` still reads the model.
"""

from __future__ import annotations

from typing import Annotated

import typer
from typer.core import TyperCommand

RayAddress = Annotated[
    str | None,
    typer.Option(
        "--ray", metavar="[ADDRESS]",
        help="Run on Ray: alone, a local Ray instance; 'auto' joins the running cluster; or HOST:PORT.",
    ),
]


def is_address(token: str) -> bool:
    return token in ("local", "auto") or (":" in token and not token.startswith("-"))


def ray_address(command: TyperCommand, args: list[str]) -> list[str]:
    """``--ray`` with no address after it -> ``--ray local``."""
    out: list[str] = []
    for index, token in enumerate(args):
        out.append(token)
        if token == "--ray" and (index + 1 == len(args) or not is_address(args[index + 1])):
            out.append("local")
    return out
