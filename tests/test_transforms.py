"""transforms: Lucid's priors as pure, jit-able ``(key, images) -> images`` functions."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import paramviz.transforms as T
from paramviz.transforms import _core

N, S = 2, 20  # a small batch of small square images keeps every compile cheap
IMAGES = jnp.asarray(np.random.default_rng(0).uniform(0, 1, (N, S, S, 3)), dtype=jnp.float32)

# (name, transform, output side for an S×S input, random?)
CASES = [
    ("pad-constant", T.pad(3, mode="constant"), S + 6, False),
    ("pad-reflect", T.pad(3, mode="reflect"), S + 6, False),
    ("jitter", T.jitter(4), S - 4, True),
    ("jitter-independent", T.jitter(4, independent=True), S - 4, True),
    ("translate", T.translate(4), S, True),
    ("scale", T.random_scale([0.8, 0.9, 1.1, 1.25]), S, True),
    ("scale-reflect", T.random_scale([0.8, 1.25], fill="reflect", independent=True), S, True),
    ("rotate", T.random_rotate([-30, -10, 10, 30]), S, True),
    ("rotate-edge", T.random_rotate([-0.3, 0.3], "radians", fill="edge"), S, True),
    ("compose", T.compose(T.pad(2), T.jitter(2), T.random_rotate([-5, 5])), S + 2, True),
    ("none", T.none, S, False),
    ("standard", T.standard, S + 12, True),
    ("mild", T.mild, S + 4, True),
]


@pytest.mark.parametrize(
    ("transform", "side", "is_random"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_transform_contract(transform, side, is_random):
    """Static shape under jit, reproducible per key, key-dependent, differentiable."""
    expected = (N, side, side, 3)
    assert jax.eval_shape(transform, jax.random.key(0), IMAGES).shape == expected
    weights = jax.random.normal(jax.random.key(9), expected)

    @jax.jit  # one compile gives the output and its gradient
    def output_and_grad(key, images):
        def loss(x):
            out = transform(key, x)
            return jnp.sum(out * weights), out

        return jax.grad(loss, has_aux=True)(images)[::-1]

    runs = [output_and_grad(jax.random.key(seed), IMAGES) for seed in (0, 1, 2, 3, 0)]
    outputs = [np.asarray(out) for out, _ in runs]
    assert outputs[0].shape == expected
    np.testing.assert_array_equal(outputs[0], outputs[-1])
    differs = any(not np.array_equal(outputs[0], other) for other in outputs[1:4])
    assert differs == is_random
    grad = runs[0][1]
    assert grad.shape == IMAGES.shape
    assert bool(jnp.all(jnp.isfinite(grad))) and float(jnp.abs(grad).max()) > 0


@pytest.mark.parametrize("quarter_turns", [1, -1])
def test_rotate_90_degrees_equals_rot90(quarter_turns):
    rotated = T.random_rotate([90 * quarter_turns])(jax.random.key(0), IMAGES)
    expected = jnp.rot90(IMAGES, quarter_turns, axes=(1, 2))
    np.testing.assert_allclose(rotated[:, 1:-1, 1:-1], expected[:, 1:-1, 1:-1], atol=1e-5)


@pytest.mark.parametrize("fill", ["constant", "edge", "reflect"])
def test_scale_one_and_rotate_zero_are_identities(fill):
    key = jax.random.key(0)
    np.testing.assert_allclose(T.random_scale([1.0], fill=fill)(key, IMAGES), IMAGES, atol=1e-6)
    np.testing.assert_allclose(T.random_rotate([0], fill=fill)(key, IMAGES), IMAGES, atol=1e-6)


def test_scale_magnifies_about_the_centre():
    # A horizontal ramp holding each pixel's offset from the centre: zooming by s divides it by s.
    offsets = jnp.arange(S, dtype=jnp.float32) - (S - 1) / 2
    ramp = jnp.broadcast_to(offsets[None, None, :, None], (1, S, S, 3))
    zoomed = T.random_scale([2.0])(jax.random.key(0), ramp)
    np.testing.assert_allclose(zoomed, ramp / 2.0, atol=1e-5)
    shrunk = T.random_scale([0.5], value=0.25)(jax.random.key(0), ramp)
    inner = slice(S // 4 + 1, -S // 4 - 1)
    np.testing.assert_allclose(shrunk[:, inner, inner], 2.0 * ramp[:, inner, inner], atol=1e-5)
    assert float(shrunk[0, 0, 0, 0]) == 0.25  # outside the shrunk content: the constant fill


def test_edge_fill_repeats_the_border_pixel():
    shrunk = T.random_scale([0.5], fill="edge")(jax.random.key(0), IMAGES)
    np.testing.assert_allclose(shrunk[:, 0, 0], IMAGES[:, 0, 0], atol=1e-6)


@pytest.mark.parametrize("fill", ["constant", "edge", "reflect"])
@pytest.mark.parametrize("factor", [0.3, 0.92, 1.1, 3.0])
def test_scale_warp_samples_as_the_affine_warp_of_its_zoom(fill, factor):
    # A canvas of unequal sides, so that mixing up the axes shows; 0.3 and 3.0 reach far outside.
    images = jax.random.uniform(jax.random.key(1), (2, 9, 14, 3))
    cotangent = jax.random.normal(jax.random.key(2), images.shape)

    def loss(warp):
        return lambda x: jnp.vdot(warp(x), cotangent)

    separable = jax.value_and_grad(loss(lambda x: T.scale_warp(x, factor, fill=fill, value=0.3)))
    two_d = jax.value_and_grad(
        loss(lambda x: T.affine_warp(x, jnp.eye(2) / factor, fill=fill, value=0.3))
    )
    np.testing.assert_allclose(
        T.scale_warp(images, factor, fill=fill, value=0.3),
        T.affine_warp(images, jnp.eye(2) / factor, fill=fill, value=0.3),
        atol=1e-6,
    )
    np.testing.assert_allclose(separable(images)[1], two_d(images)[1], atol=1e-5)


def test_a_canvas_too_large_for_the_flat_index_is_refused():
    canvas = jax.ShapeDtypeStruct((1, 50000, 50000, 3), jnp.float32)
    with pytest.raises(ValueError, match="a 50000x50000 canvas has more pixels than a 32-bit"):
        jax.eval_shape(lambda x: T.affine_warp(x, jnp.eye(2)), canvas)


def crop_offset(output: np.ndarray, image: np.ndarray) -> tuple[int, int] | None:
    """The (row, column) where ``output`` is an exact crop of ``image``, or None."""
    h, w = output.shape[:2]
    for oy in range(image.shape[0] - h + 1):
        for ox in range(image.shape[1] - w + 1):
            if np.array_equal(image[oy : oy + h, ox : ox + w], output):
                return oy, ox
    return None


def test_jitter_is_a_crop_shared_across_the_batch():
    out = np.asarray(T.jitter(5)(jax.random.key(3), IMAGES))
    offsets = {crop_offset(out[i], np.asarray(IMAGES[i])) for i in range(N)}
    assert len(offsets) == 1 and None not in offsets


@pytest.mark.parametrize("count", [5, 26])
def test_a_draw_is_uniform_over_its_range(count):
    draws = np.asarray(jax.vmap(lambda k: _core._draw_below(k, count))(jax.random.split(
        jax.random.key(0), 260 * count)))  # fmt: skip
    frequencies = np.bincount(draws, minlength=count) / draws.size
    assert draws.min() == 0 and draws.max() == count - 1
    # 5 standard deviations of a binomial frequency (p = 1/count, 260·count draws)
    assert np.abs(frequencies - 1 / count).max() < 5 * np.sqrt((1 / count) / (260 * count))


def test_the_standard_stack_hashes_its_key_once_per_draw():
    """A split and one hash for each of its four random transforms: XLA:CPU compiles every hash
    as a loop of its own, so ``randint``'s three per draw lengthened each render's compile."""
    jaxpr = str(jax.make_jaxpr(T.standard)(jax.random.key(0), IMAGES))
    assert (jaxpr.count("random_split"), jaxpr.count("random_bits")) == (1, 4)


def test_translate_shifts_with_zero_fill():
    out = np.asarray(T.translate(5)(jax.random.key(3), IMAGES))
    framed = np.pad(np.asarray(IMAGES), ((0, 0), (4, 0), (4, 0), (0, 0)))
    shifts = {crop_offset(out[i], framed[i]) for i in range(N)}
    assert len(shifts) == 1 and None not in shifts


@pytest.mark.parametrize(
    "make",
    [
        lambda independent: T.jitter(6, independent=independent),
        lambda independent: T.translate(6, independent=independent),
        lambda independent: T.random_scale([0.8, 0.9, 1.1, 1.2], independent=independent),
        lambda independent: T.random_rotate(range(-20, 21, 5), independent=independent),
    ],
    ids=["jitter", "translate", "scale", "rotate"],
)
def test_independent_draws_differ_across_the_batch(make):
    same = jnp.broadcast_to(IMAGES[:1], (6, S, S, 3))
    shared = np.asarray(jax.jit(make(False))(jax.random.key(0), same))
    assert all(np.array_equal(shared[0], other) for other in shared[1:])
    separate = np.asarray(jax.jit(make(True))(jax.random.key(0), same))
    assert any(not np.array_equal(separate[0], other) for other in separate[1:])


def test_standard_preset_on_128_gives_140():
    # Lucid: 128 -> pad 152 -> jitter 144 -> scale/rotate keep 144 here -> jitter 140.
    images = jax.ShapeDtypeStruct((1, 128, 128, 3), jnp.float32)
    assert jax.eval_shape(T.standard, jax.random.key(0), images).shape == (1, 140, 140, 3)
    assert jax.eval_shape(T.preset("mild"), jax.random.key(0), images).shape == (1, 132, 132, 3)


def test_standard_preset_uses_lucids_lists():
    assert T.STANDARD_SCALES[0] == 0.9 and T.STANDARD_SCALES[-1] == 1.1
    assert len(T.STANDARD_SCALES) == 11
    assert len(T.STANDARD_ANGLES) == 26 and T.STANDARD_ANGLES.count(0) == 6


def test_unknown_preset_lists_the_valid_names():
    assert T.preset("none") is T.none
    with pytest.raises(ValueError, match="mild, none, standard"):
        T.preset("lucid")


def test_bad_options_raise_value_error():
    with pytest.raises(ValueError, match="constant, reflect"):
        T.pad(2, mode="wrap")
    with pytest.raises(ValueError, match="units"):
        T.random_rotate([1], units="turns")
