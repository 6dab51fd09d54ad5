"""experiments.metrics on constructed images whose answers are known in advance."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers.compiles import compiled_programs
from skimage import data

from paramviz import backbones
from paramviz.errors import UserError
from paramviz.experiments import metrics
from paramviz.objectives import channel, neuron

CHECKERBOARD_THRESHOLD = 100.0  # a periodic pattern: E(p) >> 1
SMOOTH_THRESHOLD = 3.0  # noise / natural images: E(p) ~ 1, single values up to ~2.5


# ---------------------------------------------------------------------------------------------
# constructed images


def checkerboard(size: int, period: int) -> np.ndarray:
    """Squares of ``period / 2`` px alternating 0 / 1: period ``period`` along y, x, diagonals."""
    rows, cols = np.indices((size, size))
    half = period // 2
    return ((rows // half + cols // half) % 2).astype(np.float64)


def power_law_noise(size: int, seed: int, exponent: float = -2.0) -> np.ndarray:
    """Random phases, DFT amplitude exactly ``|f|^(exponent / 2)``: power ``∝ |f|^exponent``."""
    spectrum = np.fft.fft2(np.random.default_rng(seed).standard_normal((size, size)))
    radius = metrics.frequencies(size, size)[2]
    amplitude = np.where(radius > 0, np.where(radius > 0, radius, 1.0) ** (exponent / 2), 0.0)
    image = np.real(np.fft.ifft2(spectrum / np.abs(spectrum) * amplitude))
    return (image - image.min()) / (image.max() - image.min())


def white_noise(size: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((size, size))


def finite_values(result: metrics.Checkerboard) -> list[float]:
    return [v for v in result.per_period.values() if np.isfinite(v)]


# ---------------------------------------------------------------------------------------------
# spectra


def test_luminance_weights_and_greyscale_pass_through():
    rgb = np.zeros((2, 2, 3))
    rgb[..., 1] = 1.0
    np.testing.assert_allclose(metrics.luminance(rgb), 0.7152)
    grey = white_noise(4, 0)
    np.testing.assert_array_equal(metrics.luminance(grey), grey)
    np.testing.assert_array_equal(metrics.luminance(grey[..., None]), grey)


def test_power_spectrum_normalisation_white_noise_has_its_variance_everywhere():
    image = np.random.default_rng(1).normal(0.5, 0.1, (128, 128))
    power = metrics.power_spectrum(image)
    assert power[0, 0] == pytest.approx(0.0, abs=1e-20)  # the weighted mean is removed
    assert np.mean(power) == pytest.approx(0.01, rel=0.05)


def test_radial_bins_run_from_one_cycle_per_image_to_nyquist():
    f, power = metrics.radial_power_spectrum(white_noise(32, 0))
    np.testing.assert_allclose(f, np.arange(1, 17) / 32)
    assert power.shape == (16,) and np.all(power > 0)


@pytest.mark.parametrize("period", [2, 8])
def test_pure_checkerboard_has_huge_energy_at_its_period_only(period):
    image = checkerboard(64, period)
    result = metrics.checkerboard_energy(image)
    assert result.per_period[period] > CHECKERBOARD_THRESHOLD
    others = [v for p, v in result.per_period.items() if p != period and np.isfinite(v)]
    assert others and max(others) < SMOOTH_THRESHOLD
    assert result.summary == result.per_period[period]
    assert np.isnan(result.per_period[32])  # 64 / 32 = 2 cycles: not measurable with radius 3


def test_two_pixel_checkerboard_is_all_high_frequency():
    assert metrics.high_frequency_ratio(checkerboard(64, 2)) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_power_law_noise_has_slope_minus_two_and_no_checkerboard(seed):
    image = power_law_noise(128, seed)
    assert metrics.spectrum_slope(image) == pytest.approx(-2.0, abs=0.2)
    result = metrics.checkerboard_energy(image)
    assert len(finite_values(result)) == 5
    assert result.summary < SMOOTH_THRESHOLD


def test_faint_checkerboard_on_natural_statistics_is_detected():
    image = power_law_noise(128, 3) + 0.02 * checkerboard(128, 2)  # 2 % of the range
    result = metrics.checkerboard_energy(image)
    assert result.per_period[2] > 10
    assert max(v for p, v in result.per_period.items() if p != 2) < SMOOTH_THRESHOLD


@pytest.mark.parametrize("seed", [0, 1])
def test_white_noise_is_flat_and_its_high_frequency_ratio_is_the_band_area(seed):
    image = white_noise(128, seed)
    assert metrics.spectrum_slope(image) == pytest.approx(0.0, abs=0.2)
    radius = metrics.frequencies(128, 128)[2]
    expected = np.count_nonzero(radius > 0.25) / (radius.size - 1)  # DFT bins above the cutoff
    assert expected == pytest.approx(1 - np.pi / 16, abs=0.01)  # continuum: square minus disc
    assert metrics.high_frequency_ratio(image) == pytest.approx(expected, abs=0.02)
    assert metrics.checkerboard_energy(image).summary < SMOOTH_THRESHOLD


@pytest.mark.parametrize("name", ["astronaut", "chelsea"])
def test_photographs_fall_off_like_natural_images(name):
    image = getattr(data, name)() / 255.0
    assert -3.0 < metrics.spectrum_slope(image) < -1.5
    assert metrics.high_frequency_ratio(image) < 0.1


def test_batches_give_one_value_per_image():
    images = np.stack([power_law_noise(64, 0), checkerboard(64, 2)])[..., None].repeat(3, -1)
    slopes = metrics.spectrum_slope(images)
    assert slopes.shape == (2,)
    assert slopes[0] == pytest.approx(metrics.spectrum_slope(images[0]))
    result = metrics.checkerboard_energy(images)
    assert result.per_period[2].shape == (2,) and result.summary[1] > CHECKERBOARD_THRESHOLD


def test_a_band_without_bins_is_a_user_error():
    with pytest.raises(UserError, match="radial bins"):
        metrics.spectrum_slope(white_noise(16, 0), band=(0.3, 0.35))


# ---------------------------------------------------------------------------------------------
# judged style and content


def tiny_judge(spec: str, size: int = 16, seed: int = 0) -> backbones.Backbone:
    return backbones.init(
        "sequential",
        jax.random.key(seed),
        image_size=(size, size),
        spec=spec,
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
    )


@pytest.fixture(scope="module")
def pointwise_judge() -> backbones.Backbone:
    return tiny_judge("conv8k1,relu")


@pytest.fixture(scope="module")
def conv_judge() -> backbones.Backbone:
    return tiny_judge("conv8k3s1p1,relu")


@pytest.fixture(scope="module")
def style_image() -> np.ndarray:
    return np.random.default_rng(0).random((16, 16, 3)).astype(np.float32)


def permuted_pixels(image: np.ndarray, seed: int = 1) -> np.ndarray:
    h, w, c = image.shape
    order = np.random.default_rng(seed).permutation(h * w)
    return image.reshape(h * w, c)[order].reshape(h, w, c)


@pytest.mark.parametrize("norm", ["l1", "l2"])
def test_style_distance_of_the_style_image_itself_is_zero(conv_judge, style_image, norm):
    distance = metrics.style_distance(
        conv_judge, style_image, style_image, ("conv1", "relu1"), norm=norm
    )
    assert distance == pytest.approx(0.0, abs=1e-6)


def test_gram_distance_ignores_where_pixels_are_for_a_pointwise_judge(pointwise_judge, style_image):
    shuffled = permuted_pixels(style_image)
    per_layer = metrics.style_distance(
        pointwise_judge, shuffled, style_image, ("conv1", "relu1"), per_layer=True
    )
    assert set(per_layer) == {"conv1", "relu1"}
    assert max(per_layer.values()) == pytest.approx(0.0, abs=1e-5)


def test_gram_distance_sees_destroyed_texture_through_three_by_three_filters(
    conv_judge, style_image
):
    smooth = np.repeat(np.repeat(style_image[::4, ::4], 4, 0), 4, 1)  # 4 px blocks: a texture
    shuffled = permuted_pixels(smooth)
    distance = metrics.style_distance(conv_judge, shuffled, smooth, ("conv1", "relu1"))
    assert distance > 0.01


def test_content_distance_is_zero_for_itself_and_grows_with_noise(conv_judge, style_image):
    layers = ("conv1", "relu1")
    noise = np.random.default_rng(2).normal(size=style_image.shape).astype(np.float32)
    sigmas = (0.0, 0.01, 0.03, 0.1, 0.3)
    images = np.stack([style_image + s * noise for s in sigmas])
    distances = metrics.content_distance(conv_judge, images, style_image, layers)
    assert distances.shape == (len(sigmas),)
    assert distances[0] == pytest.approx(0.0, abs=1e-7)
    assert np.all(np.diff(distances) > 0)
    single = metrics.content_distance(conv_judge, images[2], style_image, layers)
    assert single == pytest.approx(distances[2], rel=1e-5)


def test_one_pass_of_the_judge_serves_the_style_and_the_content_distance(conv_judge, style_image):
    layers = ("conv1", "relu1")
    picture = np.random.default_rng(3).uniform(size=style_image.shape).astype(np.float32)
    acts = metrics.judge_activations(conv_judge, picture, layers)
    for distance, reference in ((metrics.style_distance, style_image[::-1]),
                                (metrics.content_distance, style_image)):  # fmt: skip
        fresh = distance(conv_judge, picture, reference, layers)
        assert fresh > 0.01
        assert distance(conv_judge, picture, reference, layers, activations=acts) == fresh
    other = metrics.judge_activations(conv_judge, style_image, layers)  # another picture's
    given = metrics.content_distance(conv_judge, picture, style_image, layers, activations=other)
    assert given == pytest.approx(0.0, abs=1e-7)  # so the given activations are what is compared


def test_a_judged_distance_compiles_one_program_per_layer_shape():
    """A layer's Gram, difference and norms are one program and the batch is NumPy: eagerly,
    each operation compiled a program of its own in every new process (a spec and size used
    nowhere else, so nothing comes from an earlier test)."""
    judge = tiny_judge("conv5k3s1p1,relu,conv7k3s2p1", size=13)
    picture, reference = np.random.default_rng(4).uniform(size=(2, 13, 13, 3)).astype(np.float32)
    with compiled_programs() as compiled:
        distance = metrics.style_distance(judge, picture, reference, ("relu1", "conv2"))
    assert sorted(compiled) == ["_layer_distance", "_layer_distance", "_targets", "_targets"]
    assert distance > 0.01


def test_content_distance_needs_the_content_size(conv_judge, style_image):
    with pytest.raises(UserError, match="content image"):
        metrics.content_distance(conv_judge, style_image[:8, :8], style_image, ("relu1",))


# ---------------------------------------------------------------------------------------------
# robustness


def test_constant_image_is_equally_strong_under_every_held_out_transform(conv_judge):
    image = jnp.full((1, 16, 16, 3), 0.6, jnp.float32)
    activations = conv_judge(image, ("relu1",))["relu1"]
    strongest = int(jnp.argmax(jnp.mean(activations, axis=(0, 1, 2))))
    objective = channel("relu1", strongest)
    for transform in (metrics.random_shift(3.0), metrics.HELD_OUT):
        result = metrics.transfer_robustness(
            objective, conv_judge, image, jax.random.key(0), transforms=transform, n=8
        )
        assert result.untransformed > 0
        assert np.all(np.isfinite(result.transformed)) and result.transformed.shape == (8,)
        assert result.ratio == pytest.approx(1.0, abs=1e-5)
        assert result.worst == pytest.approx(1.0, abs=1e-5)


def test_a_one_pixel_feature_is_not_robust_to_sub_pixel_shifts(conv_judge):
    image = np.zeros((9, 9, 3), np.float32)
    image[4, 4] = 1.0
    # The centre pixel of the transformed input: after a shift (dy, dx) ~ U(-2, 2)^2 it keeps the
    # bilinear weight max(0, 1-|dy|) max(0, 1-|dx|), whose mean is (1/4)^2.
    objective = neuron("input", 0)
    result = metrics.transfer_robustness(
        objective, conv_judge, image, jax.random.key(1), transforms=metrics.random_shift(2.0), n=256
    )
    assert result.untransformed == pytest.approx(1.0)
    assert result.ratio == pytest.approx(1 / 16, abs=0.03)
    assert result.worst == pytest.approx(0.0, abs=1e-6)


def test_random_shift_by_whole_pixels_moves_the_content():
    image = jnp.arange(25.0).reshape(1, 5, 5, 1)
    shift = metrics.random_shift(1.0)
    key = jax.random.key(3)
    dy, dx = jax.random.uniform(key, (2,), minval=-1.0, maxval=1.0)
    moved = shift(key, image)
    # interior pixel (2, 2) reads the input at (2 - dy, 2 - dx), bilinearly
    y, x = 2 - float(dy), 2 - float(dx)
    expected = 5 * y + x  # the image is linear in (row, column)
    assert float(moved[0, 2, 2, 0]) == pytest.approx(expected, abs=1e-4)


# ---------------------------------------------------------------------------------------------
# recognition


def test_top_k_from_constructed_logits():
    logits = np.array(
        [
            [9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0],  # class 5 ranks 6th
            [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0],  # class 5 ranks 2nd
            [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],  # all tied: counted as top-1
        ]
    )
    result = metrics.top_k_recognised(lambda images: logits, np.zeros((3, 2, 2, 3)), 5, k=5)
    np.testing.assert_array_equal(result.ranks, [5, 1, 0])
    np.testing.assert_array_equal(result.hits, [False, True, True])
    assert result.rate == pytest.approx(2 / 3)
    top1 = metrics.top_k_recognised(lambda images: logits, np.zeros((3, 2, 2, 3)), [0, 6, 3], k=1)
    np.testing.assert_array_equal(top1.hits, [True, True, True])


def test_top_k_with_a_backbone_judge_reads_its_logits():
    judge = backbones.init(
        "sequential",
        jax.random.key(4),
        image_size=(4, 4),
        spec="flatten,linear10",
        input_size=(4, 4),
    )
    images = np.random.default_rng(5).random((6, 4, 4, 3)).astype(np.float32)
    logits = np.asarray(judge(jnp.asarray(images), ("logits",))["logits"])
    best = logits.argmax(axis=1)
    worst = logits.argmin(axis=1)
    assert metrics.top_k_recognised(judge, images, best, k=1).rate == 1.0
    assert metrics.top_k_recognised(judge, images, worst, k=9).rate == 0.0
    assert metrics.top_k_recognised(judge, images, worst, k=10).rate == 1.0


def test_top_k_rejects_unknown_classes():
    with pytest.raises(UserError, match="out of range"):
        metrics.top_k_recognised(lambda images: np.zeros((1, 3)), np.zeros((1, 2, 2, 3)), 3)
