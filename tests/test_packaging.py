"""Every package folder is installed, and the CLI starts without heavy imports."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    found = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "segrob").rglob("__init__.py")
    }
    assert found <= listed, f"add to pyproject packages: {sorted(found - listed)}"
    assert "segrob_cli" in listed


def test_help_does_not_import_torch_or_onnxruntime():
    code = (
        "import sys; from typer.testing import CliRunner; from segrob_cli.main import app; "
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0; "
        "print(sorted(m for m in ('torch', 'onnxruntime', 'scipy', 'skimage') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_python_dash_m_segrob_is_the_segrob_command():
    out = subprocess.run([sys.executable, "-m", "segrob", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip().startswith("segrob ")
    usage = subprocess.run(
        [sys.executable, "-m", "segrob", "audit", "--help"], capture_output=True, text=True
    )
    assert usage.returncode == 0 and "Usage: segrob audit" in usage.stdout


def test_license_and_classifiers_are_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert project["license"] == "MIT" and any("Medical" in c for c in project["classifiers"])
    # The CPU build by default, the CUDA build only as an extra: onnxruntime-gpu has no macOS wheels.
    assert any(r.startswith("onnxruntime>=") for r in project["dependencies"])
    assert not any("onnxruntime-gpu" in r for r in project["dependencies"])
    assert project["optional-dependencies"]["gpu"] == ["onnxruntime-gpu>=1.18"]
