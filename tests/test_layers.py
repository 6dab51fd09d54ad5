"""The folders are the dependency graph: import-linter's contracts in pyproject.toml hold, and they
catch an upward import when one is added."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("paramviz", "transforms", "weights", "experiments")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` on the tree at ``root`` (its packages first on the import path)."""
    script = "from importlinter.cli import lint_imports_command; lint_imports_command()"
    return subprocess.run(
        [sys.executable, "-c", script, str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_layer_contracts_hold():
    done = lint_imports(REPO)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "0 broken" in done.stdout


def test_an_upward_import_breaks_the_contract(tmp_path: Path):
    for package in PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "paramviz" / "render.py").open("a").write(
        "\n\ndef _upward():\n    from weights import registry  # the engine reaching up\n"
    )
    done = lint_imports(tmp_path)
    assert done.returncode == 1
    assert "paramviz is not allowed to import weights" in done.stdout
    assert "paramviz.render -> weights" in done.stdout
