"""Texture synthesis and style transfer on the real normalised VGG-19 trunk (up to relu3_1).

Skipped when ``../shared/weights`` is absent. The pictures are saved under ``test-artifacts/``.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from skimage import data, transform

from paramviz import objectives, param
from paramviz.backbones import load
from paramviz.io import save_png
from paramviz.render import render
from paramviz.weights.convert import convert

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1")
SIZE = 128


@pytest.fixture(scope="module")
def trunk(tmp_path_factory, shared_weights):
    source = shared_weights / "vgg_normalised_conv3_1.fp16.pth"
    return load(convert(source, tmp_path_factory.mktemp("w") / "trunk.safetensors"))


def _resized(image: np.ndarray, size: int) -> np.ndarray:
    image = image.astype(np.float32) / 255
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    return transform.resize(image, (size, size), anti_aliasing=True).astype(np.float32)


def _style_loss(result) -> tuple[float, float]:
    return float(result.losses[0]), float(result.losses[-1])


def test_texture_from_a_scikit_image_texture_on_the_real_trunk(trunk, artifacts):
    texture = _resized(data.gravel(), SIZE)
    objective = objectives.style_transfer_objective(
        {}, objectives.style_targets(trunk, texture, STYLE_LAYERS)
    )
    image = param.fourier(SIZE, key=jax.random.PRNGKey(0))
    result = render(objective, image, trunk, steps=300, progress=False)
    first, last = _style_loss(result)
    picture = np.concatenate([texture, result.image[0]], 1)
    save_png(artifacts / "real_vgg_texture_gravel.png", picture)
    assert result.stopped_reason == "completed"
    assert last < first / 20, f"style loss {first:.3f} -> {last:.3f}"


def test_style_transfer_on_the_real_trunk_keeps_the_content(trunk, artifacts):
    content = _resized(data.chelsea(), SIZE)
    style = _resized(data.immunohistochemistry(), SIZE)
    content_targets = objectives.content_targets(trunk, content, ("relu3_1",))
    objective = objectives.style_transfer_objective(
        content_targets,
        objectives.style_targets(trunk, style, STYLE_LAYERS),
        content_weight=1.0,
        style_weight=10.0,
    )
    content_only = objectives.content(content_targets)

    def content_loss(image: np.ndarray) -> float:
        features = {"main": trunk(image, ("relu3_1",))}
        return -float(content_only(features))

    started = param.fourier(SIZE, key=jax.random.PRNGKey(0), init=content[None])
    result = render(objective, started, trunk, steps=200, progress=False)
    noise = param.fourier(SIZE, key=jax.random.PRNGKey(0))
    save_png(
        artifacts / "real_vgg_style_transfer.png",
        np.concatenate([content, style, result.image[0]], 1),
    )
    assert result.losses[-1] < result.losses[0] / 2
    assert content_loss(result.image) < content_loss(noise.to_image(noise.params)) / 2
