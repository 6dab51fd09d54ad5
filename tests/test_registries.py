"""Every name a user spells comes from one registry: a parameterisation and an objective kind
registered from one file (tests/plugin_kinds.py) reach ``--help``, the settings' checks, the
objective parser and the sidecar, and an unknown name is one line listing the known ones."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import pytest
from helpers.files import small_weights

from paramviz import backbones, objectives, tasks, vocabulary
from paramviz.errors import UserError

TESTS = Path(__file__).resolve().parent


def paramviz(*argv: str, plugins: str = "plugin_kinds") -> subprocess.CompletedProcess:
    env = {**os.environ, "PARAMVIZ_PLUGINS": plugins, "PYTHONPATH": str(TESTS)}
    return subprocess.run(
        [sys.executable, "-m", "paramviz.cli", *map(str, argv)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_kinds_registered_in_one_file_reach_help_parser_and_sidecar(tmp_path):
    shown = paramviz("visualize", "--help", plugins="plugin_kinds")
    assert shown.returncode == 0, shown.stderr
    flat = " ".join(shown.stdout.split())
    assert "{pixel,fourier,maco,grey}" in flat and "grey: pixels from mid-grey" in flat
    assert "'pair:layer:a+b': two channels together" in flat

    weights = small_weights(tmp_path / "net.safetensors")
    out = tmp_path / "pair.png"
    flags = ["--param", "grey", "--size", 16, "--steps", 4, "--quiet", "-o", out]
    done = paramviz("visualize", "--weights", weights, "--objective", "pair:relu2:0+1", *flags)
    assert done.returncode == 0, done.stderr
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["settings"]["param"] == "grey"
    assert record["settings"]["objective"] == ["pair:relu2:0+1"]
    assert record["labels"] == ["pair:relu2:0+1"]

    without = paramviz("visualize", "--weights", weights, "--objective", "relu2:0", "--param",
                       "grey", "-o", tmp_path / "x.png", plugins="")  # fmt: skip
    assert without.returncode == 2
    assert "argument --param: invalid choice: 'grey'" in without.stderr


def test_the_library_reads_the_same_registries(monkeypatch):
    for registry in (vocabulary.PARAMETERISATIONS, vocabulary.OBJECTIVE_KINDS):
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))  # undone afterwards
    monkeypatch.delitem(sys.modules, "plugin_kinds", raising=False)
    import plugin_kinds  # noqa: F401  (registers "grey" and "pair")

    assert tasks.RenderSettings(param="grey").param == "grey"
    net = backbones.init("sequential", jax.random.PRNGKey(0), (16, 16), spec="conv4k3s1p1,relu")
    grey = tasks.make_param("grey", 1, (8, 8), seed=0)
    image = grey.to_image(grey.params)
    assert float(abs(image - 0.5).max()) < 1e-6  # started from mid-grey
    pair = objectives.parse("pair:relu1:0+2", batch=0)
    single = objectives.parse("relu1:0", batch=0) + objectives.parse("relu1:2", batch=0)
    features = {"main": net(image, ("relu1",))}
    assert float(pair(features)) == pytest.approx(float(single(features)))
    with pytest.raises(UserError, match="or one of .*'pair:layer:a\\+b'"):
        objectives.parse("pair:relu1")


def test_an_unknown_name_is_one_line_listing_the_known_ones():
    with pytest.raises(UserError, match="param must be one of \\('pixel', 'fourier', 'maco'"):
        tasks.RenderSettings(param="checker")
    with pytest.raises(UserError, match="unknown parameterisation 'checker'; choose one of"):
        tasks.make_param("checker", 1, (8, 8))
    with pytest.raises(ValueError, match="parameterisation 'pixel' is already registered"):
        vocabulary.PARAMETERISATIONS.register(
            vocabulary.Entry("pixel", "another", "plugin_kinds:grey_pixels")
        )
