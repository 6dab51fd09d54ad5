"""Extending paramviz without editing it: your own network as a backbone, and an architecture
registered from another module (here ``tests/toy_architecture.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import toy_architecture

from paramviz import backbones, objectives, param, render, tasks
from paramviz.backbones import load
from paramviz.cli import main

TESTS = Path(__file__).resolve().parent


class HandWrittenResNet(nn.Module):
    """Not one of ours: a stem, one residual block (its sum sown as ``block``), a strided head."""

    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(8, (3, 3), name="stem")(x - 0.5))
        y = nn.relu(nn.Conv(8, (3, 3), name="conv_a")(x))
        x = nn.relu(x + nn.Conv(8, (3, 3), name="conv_b")(y))
        self.sow("intermediates", "block", x)
        return nn.Conv(16, (3, 3), strides=(2, 2), name="head")(x)


def channel_value(backbone, images: np.ndarray, layer: str, channel: int) -> float:
    return float(jnp.mean(backbone(jnp.asarray(images), [layer])[layer][..., channel]))


def test_a_hand_written_flax_resnet_renders_a_channel():
    module = HandWrittenResNet()
    variables = module.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)))
    net = backbones.from_flax(module, variables, example_size=(32, 32))
    assert net.layer_names == ("stem", "conv_a", "conv_b", "block", "head", "output")
    start = param.pixel(32, 1, key=jax.random.PRNGKey(1))
    before = channel_value(net, start.to_image(start.params), "block", 3)
    result = render.render(
        objectives.channel("block", 3) - 1e-3 * objectives.total_variation(),
        start,
        net,
        transforms="mild",
        steps=60,
        learning_rate=0.1,
        progress=False,
    )
    after = channel_value(net, result.image, "block", 3)
    assert after > 10 * max(before, 1e-3), (before, after)
    with pytest.raises(Exception, match="unknown layer 'blok' for HandWrittenResNet"):
        net.check_layers(["blok"], (32, 32))


def test_a_plain_function_of_named_activations_transfers_style(tmp_path):
    kernel = jax.random.normal(jax.random.PRNGKey(0), (3, 3, 3, 6)) * 0.3

    def activations(variables, images):
        conv = jax.lax.conv_general_dilated(
            images, variables["kernel"], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        return {"conv": conv, "relu": jax.nn.relu(conv)}

    net = backbones.from_function(activations, {"kernel": kernel}, example_size=(24, 24))
    rng = np.random.default_rng(0)
    stripes = np.tile((np.arange(24) % 6 < 3)[None, :, None], (24, 1, 3)).astype(np.float32)
    files = tasks.style_transfer(
        net,
        0.2 + 0.6 * stripes,
        rng.uniform(size=(24, 24, 3)).astype(np.float32),
        tasks.RenderSettings(steps=40, progress=False),
        tasks.StyleSettings(style_layers=("relu",), content_layers=("conv",), content_weight=0.1),
    ).save(tmp_path / "styled.png")
    losses = json.loads(files["json"].read_text())["result"]["losses"]
    assert losses[-1] < 0.5 * losses[0]


# ----------------------------------------------------------------- an architecture of one's own


def test_a_registered_architecture_works_in_every_command(tmp_path, capsys):
    assert backbones.get("toynet").trainable
    assert main(["layers", "toynet", "--size", "32", "32"]) == 0
    listing = capsys.readouterr().out
    assert [line.split()[0] for line in listing.splitlines()] == list(
        backbones.layer_names("toynet")
    )

    twin = toy_architecture.torch_twin()
    torch.save(twin.state_dict(), tmp_path / "toy.pth")
    converted = tmp_path / "toy.safetensors"
    assert main(["weights", "convert", str(tmp_path / "toy.pth"), "--arch", "toynet",
                 "--mean", "0,0,0", "--std", "1,1,1", "-o", str(converted)]) == 0  # fmt: skip
    images = np.random.default_rng(0).uniform(size=(2, 16, 16, 3)).astype(np.float32)
    with torch.no_grad():
        theirs = twin(torch.from_numpy(images.transpose(0, 3, 1, 2))).numpy()
    ours = np.asarray(load(converted)(images, ["logits"])["logits"])
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)

    picture = tmp_path / "units.png"
    assert main(["visualize", "--weights", str(converted), "--objective", "relu2:0-1",
                 "--size", "32", "--steps", "8", "--quiet", "-o", str(picture)]) == 0  # fmt: skip
    assert json.loads(picture.with_suffix(".json").read_text())["labels"] == ["relu2:0", "relu2:1"]

    trained = tmp_path / "trained.safetensors"
    assert main(["train", "--arch", "toynet", "--width", "0.5", "--dataset", "skimage-textures",
                 "--train-per-class", "32", "--test-per-class", "8", "--epochs", "1",
                 "--batch-size", "32", "--eval-steps", "1", "--no-progress",
                 "--out", str(trained)]) == 0  # fmt: skip
    assert load(trained).arch == "toynet" and "clean" in capsys.readouterr().out


def test_the_command_line_loads_architectures_named_in_the_plugins_variable():
    env = {**os.environ, "PARAMVIZ_PLUGINS": "toy_architecture", "PYTHONPATH": str(TESTS)}
    done = subprocess.run(
        [sys.executable, "-m", "paramviz.cli", "layers", "toynet", "--size", "8", "8"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "conv1" and "logits" in done.stdout
    env["PARAMVIZ_PLUGINS"] = "no_such_module"
    done = subprocess.run(
        [sys.executable, "-m", "paramviz.cli", "layers", "toynet"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert "cannot import 'no_such_module' named in $PARAMVIZ_PLUGINS" in done.stderr
