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
