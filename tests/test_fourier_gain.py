"""The Fourier parameterisation's gain: Lucid's ``1/f`` under Adam grows a 2-px
checkerboard on the VGG-19 trunk; the gain of photographs (``param.photo_gain``, what the CLI and
the experiments use) does not."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from paramviz import param, render, tasks
from paramviz.experiments import metrics
from paramviz.experiments.pictures import load_picture

SIZE = 96


def test_the_photo_gain_is_lucids_at_low_frequencies_and_a_fraction_near_nyquist():
    lucid, photo = param.spectrum_scale(SIZE, SIZE), param.photo_gain(SIZE, SIZE)
    freqs = param.rfft2d_freqs(SIZE, SIZE)
    ratio = photo / lucid
    assert np.all(ratio <= 1.0 + 1e-6) and ratio[0, 0] == pytest.approx(1.0)
    assert np.median(ratio[(freqs > 0) & (freqs < 0.04)]) == pytest.approx(1.0, abs=0.1)
    assert np.median(ratio[freqs > 0.6]) < 0.4  # photographs: about a quarter of 1/f there


def test_the_photo_gain_keeps_the_exact_inversion():
    picture = load_picture("chelsea", 48)[None]
    start = param.fourier(48, init=picture, gain="photo")
    np.testing.assert_allclose(start.to_image(start.params), picture, atol=2e-4)


def test_the_cli_and_experiments_use_the_photo_gain():
    made = tasks.make_param("fourier", 1, (SIZE, SIZE), seed=0)
    np.testing.assert_array_equal(made.to_image.args[-1], param.photo_gain(SIZE, SIZE))


@pytest.fixture(scope="module")
def trunk(shared_weights):
    from paramviz.weights.local import real_vgg_trunk
    from paramviz.weights.resolve import resolve_backbone

    return resolve_backbone(str(real_vgg_trunk()), pooling="avg")


def test_on_the_trunk_lucids_gain_grows_a_two_pixel_checkerboard_the_photo_gain_does_not(trunk):
    content, style = load_picture("chelsea", SIZE), load_picture("immunohistochemistry", SIZE)
    layers = ["relu1_1", "relu2_1", "relu3_1"]
    objective = tasks.style_objective(
        trunk, style, layers, content_image=content, content_layers=["relu3_1"]
    )
    excess = {}
    for gain in param.GAINS:
        start = param.fourier(SIZE, key=jax.random.PRNGKey(0), init=content[None], gain=gain)
        result = render.render(objective, start, trunk, steps=150, progress=False)
        excess[gain] = metrics.colour_checkerboard_energy(result.image[0], (2,))
    assert excess["lucid"] > 5 and excess["photo"] < excess["lucid"] / 3
