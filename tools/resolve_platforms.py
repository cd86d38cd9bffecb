"""Resolve segrob's default dependencies for other platforms, wheels only.

pip's own ``--platform`` changes the wheel tags it accepts but still evaluates environment markers
(``platform_system == "Linux"``) against the running machine, so it cannot resolve torch for
macOS from Linux. ``uv pip compile --python-platform`` evaluates both for the target, and
``--no-build`` refuses source distributions: a platform passes only when every dependency has a
wheel there. Needs ``pip install uv`` and network access to the package index.

    python tools/resolve_platforms.py            # the default set on five platforms
    python tools/resolve_platforms.py --extra gpu
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

PLATFORMS = (
    "x86_64-manylinux_2_28",
    "aarch64-manylinux_2_28",
    "aarch64-apple-darwin",
    "x86_64-apple-darwin",
    "x86_64-pc-windows-msvc",
)
SHOWN = ("torch", "onnxruntime", "onnxruntime-gpu", "numpy", "scipy")


def requirements(extra: str | None) -> list[str]:
    project = tomllib.loads(Path(__file__).resolve().parents[1].joinpath("pyproject.toml").read_text())
    listed = list(project["project"]["dependencies"])
    if extra:
        listed += project["project"]["optional-dependencies"][extra]
        if extra == "gpu":  # the GPU build replaces the CPU one (see the README)
            listed = [r for r in listed if not re.match(r"onnxruntime\b(?!-)", r)]
    return listed


def resolve(listed: list[str], platform: str, python: str) -> tuple[bool, str]:
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "requirements.in"
        source.write_text("\n".join(listed) + "\n")
        result = subprocess.run(
            ["uv", "pip", "compile", str(source), "--python-platform", platform, "--python-version",
             python, "--no-build", "--no-header", "--no-annotate", "--quiet"],
            capture_output=True, text=True, check=False,
        )
    if result.returncode != 0:
        cause = next((line.strip() for line in result.stderr.splitlines() if "cause" in line or
                      "no wheels" in line), result.stderr.strip().splitlines()[-1:])
        return False, str(cause)
    pins = dict(line.split("==", 1) for line in result.stdout.splitlines() if "==" in line)
    return True, ", ".join(f"{name} {pins[name]}" for name in SHOWN if name in pins)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extra", help="also install this extra (e.g. gpu)")
    parser.add_argument("--python", default="3.12")
    args = parser.parse_args()
    if shutil.which("uv") is None:
        print("needs uv: pip install uv", file=sys.stderr)
        return 2
    listed = requirements(args.extra)
    failed = 0
    for platform in PLATFORMS:
        ok, detail = resolve(listed, platform, args.python)
        failed += not ok
        print(f"{platform:24s} {'resolves' if ok else 'FAILS':9s} {detail}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
