"""Shared fixtures: the real weights beside the checkout, an artefact folder, an isolated cache."""

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
