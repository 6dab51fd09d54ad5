"""The folders are the dependency graph: import-linter's contracts in pyproject.toml hold, and they
catch an upward import when one is added.

The top-level folders install under one import root (``transforms/`` as ``paramviz.transforms``,
and so on: pyproject's package-dir). import-linter reads a package from one folder, so the
contracts are checked on a copy laid out as the installed package is.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def installed_layout(destination: Path) -> Path:
    """A copy of the sources at ``destination`` laid out as they install (``paramviz/`` with
    each mapped folder inside it), with pyproject.toml; returns ``destination``."""
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    skip = shutil.ignore_patterns("*.pyc", "__pycache__")
    shutil.copytree(REPO / "paramviz", destination / "paramviz", ignore=skip)
    for package, folder in setuptools["package-dir"].items():
        inside = destination.joinpath(*package.split("."))
        shutil.copytree(REPO / folder, inside, ignore=skip)
    shutil.copy(REPO / "pyproject.toml", destination / "pyproject.toml")
    return destination


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` on the laid-out tree at ``root`` (first on the import path)."""
    script = "from importlinter.cli import lint_imports_command; lint_imports_command()"
    return subprocess.run(
        [sys.executable, "-c", script, str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_layer_contracts_hold(tmp_path: Path):
    done = lint_imports(installed_layout(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "0 broken" in done.stdout


def test_only_the_torch_reads_are_exempt():
    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    ignored = [rule for c in contracts["contracts"] for rule in c.get("ignore_imports", [])]
    assert ignored == [
        "paramviz.weights.checkpoint -> torch",
        "paramviz.experiments.texture_statistics -> torch",
    ]


def test_an_upward_import_breaks_the_contract(tmp_path: Path):
    root = installed_layout(tmp_path)
    (root / "paramviz" / "render.py").open("a").write(
        "\n\ndef _upward():\n    from paramviz.weights import registry  # the engine reaching up\n"
    )
    done = lint_imports(root)
    assert done.returncode == 1
    assert "paramviz.render -> paramviz.weights.registry" in done.stdout
