"""Small input files the command-line tests give: converted weights of a tiny CNN, a picture."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from paramviz import backbones
from paramviz.io import save_png

SPEC = "conv4k3s1p1,relu,maxpool2,conv8k3s1p1,relu"


def small_weights(path: Path, spec: str = SPEC) -> Path:
    """A random sequential CNN of ``spec`` saved as a converted ``.safetensors`` file."""
    net = backbones.init("sequential", jax.random.PRNGKey(0), (16, 16), spec=spec)
    return backbones.save(path, net)


def random_picture(path: Path, height: int = 20, width: int = 24) -> Path:
    """A PNG of uniform noise."""
    return save_png(path, np.random.default_rng(0).uniform(size=(height, width, 3)))


def content_and_style(folder: Path) -> dict[str, Path]:
    """A 40x48 noise content picture and a 40x40 striped style picture, as PNGs in ``folder``."""
    stripes = np.tile((np.arange(40) % 8 < 4)[None, :, None], (40, 1, 3)).astype(np.float32)
    return {
        "content": save_png(
            folder / "content.png", np.random.default_rng(0).uniform(size=(40, 48, 3))
        ),
        "style": save_png(folder / "style.png", 0.2 + 0.6 * stripes),
    }
