"""MACO (Fel et al. 2023): only the phase moves, the magnitude stays that of photographs, and on
a deep layer its pictures keep a natural spectrum where pixel ascent does not; plus its
transparency map and ``--param maco``."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from paramviz import attribution, backbones, objectives, param, render
from paramviz.cli import main
from paramviz.experiments import metrics

DEEP = "conv8k3s1p1,relu,conv8k3s2p1,relu,conv16k3s1p1,relu,conv16k3s2p1,relu,conv16k3s1p1,relu"
SIZE = 64


@pytest.fixture(scope="module")
def deep_net() -> backbones.Backbone:
    return backbones.init("sequential", jax.random.PRNGKey(2), (SIZE, SIZE), spec=DEEP)


def interior_ratio(phase: np.ndarray, magnitude: np.ndarray) -> np.ndarray:
    """``|rfft2(image)| / magnitude`` over the interior columns (where irfft2 keeps a spectrum)."""
    spatial = param.maco_spatial(SIZE, SIZE, magnitude, phase)
    spectrum = np.fft.rfft2(np.moveaxis(np.asarray(spatial), -1, 1))
    return (np.abs(spectrum) / magnitude)[..., 1:-1]


def test_only_the_phase_moves_and_the_magnitude_stays_fixed(deep_net):
    start = param.maco(SIZE, 2, key=jax.random.PRNGKey(0))
    assert set(start.params) == {"phase"}
    magnitude = param.natural_magnitude(SIZE, SIZE)
    result = render.render(
        objectives.channel("relu5", 0), start, deep_net, steps=20, learning_rate=0.1, progress=False
    )
    moved = np.abs(np.asarray(result.params["phase"]) - np.asarray(start.params["phase"]))
    assert moved.mean() > 0.05
    for phase in (start.params["phase"], result.params["phase"]):
        ratio = interior_ratio(np.asarray(phase), magnitude)
        for one in ratio:  # one scale per image: its standardisation
            assert one.std() / one.mean() < 1e-4


def test_the_fixed_magnitude_falls_like_photographs():
    magnitude = param.natural_magnitude(SIZE, SIZE)
    start = param.maco(SIZE, 4, key=jax.random.PRNGKey(1))
    pictures = np.asarray(start.to_image(start.params))
    assert magnitude.shape == (3, SIZE, SIZE // 2 + 1) and not magnitude.flags.writeable
    assert metrics.spectrum_slope(pictures).max() < -1.5  # photographs ~ -2, noise 0


def test_on_a_deep_layer_maco_keeps_a_natural_spectrum_where_pixels_do_not(deep_net):
    objective = objectives.channel("relu5", 3)
    slopes, gains = {}, {}
    for name, start in (
        ("pixel", param.pixel(SIZE, 2, key=jax.random.PRNGKey(0))),
        ("maco", param.maco(SIZE, 2, key=jax.random.PRNGKey(0))),
    ):
        result = render.render(
            objective,
            start,
            deep_net,
            transforms="mild",
            steps=48,
            learning_rate=0.05,
            progress=False,
        )
        before = float(objective(features(deep_net, objective, start.to_image(start.params))))
        after = float(objective(features(deep_net, objective, result.image)))
        slopes[name] = float(np.mean(metrics.spectrum_slope(result.image)))
        gains[name] = after - before
    assert slopes["maco"] < -1.5 and slopes["pixel"] > slopes["maco"] + 0.5
    assert gains["maco"] > 0 and gains["pixel"] > 0


def features(net, objective, images):
    nets = {"main": net}
    return render.network_features(nets, render.required_layers(objective, nets), images, images)


def test_transparency_is_where_the_neuron_looks(deep_net):
    """A neuron of conv3 (three 3x3 convs, the second of stride 2) sees a 9 x 9 window around
    its position: the map is zero outside it."""
    images = np.random.default_rng(0).random((1, SIZE, SIZE, 3)).astype(np.float32)
    alpha = attribution.transparency(objectives.neuron("conv3", 0), images, deep_net, draws=2)
    assert alpha.shape == (1, SIZE, SIZE) and alpha.max() == pytest.approx(1.0)
    y, x = np.nonzero(alpha[0] > 0)
    assert (y.min(), y.max(), x.min(), x.max()) == (28, 36, 28, 36)  # centre 32, +-4


def test_visualize_takes_param_maco(deep_net, tmp_path, capsys):
    weights = backbones.save(tmp_path / "deep.safetensors", deep_net)
    out = tmp_path / "maco.png"
    argv = ["visualize", "--objective", "relu5:0-1", "--weights", weights, "--param", "maco"]
    argv += ["--size", SIZE, "--steps", 4, "--quiet", "-o", out]
    assert main([str(a) for a in argv]) == 0
    assert out.is_file()
