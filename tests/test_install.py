"""One import root: the built wheel installs everything under ``paramviz.``, so it sits beside
PyPI's ``transforms`` and ``experiments`` distributions without overwriting or shadowing them."""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NEIGHBOURS = ("transforms==0.2.1", "experiments==2.0.0")  # the names paramviz's folders carry
FIND = """
import importlib.metadata, importlib.util, sys
for name in ("transforms", "experiments"):
    origin = importlib.util.find_spec(name).origin
    listed = {str(f.locate()) for f in importlib.metadata.files(name)}
    print(name, "from its own distribution:", origin in listed)
for name in ("paramviz.transforms", "paramviz.weights", "paramviz.experiments.catalog"):
    print(name, "at", importlib.util.find_spec(name).origin.split("site-packages/")[1])
"""


def pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pip", *args], capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """paramviz's wheel, built from a copy of the sources (a build leaves files beside them)."""
    folder = tmp_path_factory.mktemp("wheel")
    source = folder / "source"
    listed = ["git", "ls-files", "--cached", "--others", "--exclude-standard"]
    tracked = subprocess.run(listed, cwd=REPO, capture_output=True, text=True)
    for name in tracked.stdout.splitlines():
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    done = pip("wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(folder), str(source))
    assert done.returncode == 0, done.stderr[-3000:]
    return next(folder.glob("paramviz-*.whl"))


def test_the_wheel_has_one_top_level_package(wheel):
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert tops == {"paramviz", wheel.name.split("-py3")[0] + ".dist-info"}


def test_it_installs_beside_the_distributions_its_folders_are_named_like(wheel, tmp_path):
    neighbours = tmp_path / "neighbours"
    fetched = pip("download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
                  "-q", "-d", str(neighbours), *NEIGHBOURS)  # fmt: skip
    if fetched.returncode != 0:
        pytest.skip(f"PyPI's {' and '.join(NEIGHBOURS)} could not be downloaded")
    env = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env)
    python = env / "bin" / "python"
    for first, then in ((neighbours.glob("*.whl"), [wheel]), ([wheel], neighbours.glob("*.whl"))):
        for wheels in (first, then):  # paramviz after the others, then before them
            options = ["--no-deps", "-q", "--ignore-requires-python", "--force-reinstall"]
            installed = pip("--python", str(python), "install", *options, *map(str, wheels))
            assert installed.returncode == 0, installed.stderr[-3000:]
        found = subprocess.run(
            [python, "-c", FIND], cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        assert found.returncode == 0, found.stderr[-3000:]
        assert found.stdout.splitlines() == [
            "transforms from its own distribution: True",
            "experiments from its own distribution: True",
            "paramviz.transforms at paramviz/transforms/__init__.py",
            "paramviz.weights at paramviz/weights/__init__.py",
            "paramviz.experiments.catalog at paramviz/experiments/catalog/__init__.py",
        ]
