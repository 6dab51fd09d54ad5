"""Shared fixtures: the real weights beside the checkout, an artefact folder, an isolated cache,
a count of network passes, and torchvision importable on CPU-only torch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_WEIGHTS = Path(os.environ.get("PARAMVIZ_SHARED", REPO.parent / "shared")) / "weights"
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture(scope="session")
def shared_weights() -> Path:
    """``../shared/weights`` (real pretrained tensors); the test is skipped when it is absent."""
    if not SHARED_WEIGHTS.is_dir():
        pytest.skip(f"real weights not present at {SHARED_WEIGHTS}")
    return SHARED_WEIGHTS


@pytest.fixture
def artifacts() -> Path:
    """A folder for pictures a test saves for people to look at (git-ignored)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch) -> Path:
    """Keep every test away from the user's real weight cache."""
    home = tmp_path_factory.mktemp("paramviz_home")
    monkeypatch.setenv("PARAMVIZ_HOME", str(home))
    return home


@pytest.fixture
def network_passes(monkeypatch) -> list[str]:
    """The architecture of every backbone call, abstract or not: outside a compiled step each is
    a trace of the whole network."""
    from paramviz import backbones

    calls, call = [], backbones.Backbone.__call__

    def counting(self, *args, **kwargs):
        calls.append(self.arch)
        return call(self, *args, **kwargs)

    monkeypatch.setattr(backbones.Backbone, "__call__", counting)
    return calls


@pytest.fixture(scope="session")
def torchvision_on_cpu():
    """``torchvision`` imported beside CPU torch (:mod:`helpers.torchvision_cpu`); skipped when
    it is not installed."""
    import importlib.util

    from helpers.torchvision_cpu import import_torchvision

    if importlib.util.find_spec("torchvision") is None:
        pytest.skip("torchvision is not installed (pip install -e '.[test]')")
    return import_torchvision()
