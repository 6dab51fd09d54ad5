"""paramviz.param: Lucid's pixel and Fourier parameterisations, their inverses and gradients."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from paramviz import param

COLOR_OPTIONS = [(d, s) for d in (True, False) for s in (True, False)]  # (decorrelate, sigmoid)


def lucid_fft_image_numpy(real, imag, h, w, decay_power=1.0):
    """Lucid's fft_image written independently in float64 NumPy (numpy's irfft2 == TF's irfft2d)."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[: w // 2 + 2] if w % 2 == 1 else np.fft.fftfreq(w)[: w // 2 + 1]
    freqs = np.sqrt(fx * fx + fy * fy)
    scale = 1.0 / np.maximum(freqs, 1.0 / max(w, h)) ** decay_power
    scale *= np.sqrt(w * h)
    spectrum = scale * (np.float64(real) + 1j * np.float64(imag))
    image = np.transpose(np.fft.irfft2(spectrum), (0, 2, 3, 1))
    return image[:, :h, :w, :] / 4.0


def lucid_to_valid_rgb_numpy(t, decorrelate, sigmoid):
    """Lucid's color.py:to_valid_rgb in NumPy (forward only; the clip's value is x/max(1,|x|))."""
    if decorrelate:
        m = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
        t = t @ (m / np.max(np.linalg.norm(m, axis=0))).T
    if decorrelate and not sigmoid:
        t = t + np.array([0.48, 0.46, 0.41])
    if sigmoid:
        return 1.0 / (1.0 + np.exp(-t))
    x = 2 * t - 1
    return x / np.maximum(1.0, np.abs(x)) / 2 + 0.5


def radial_power_slope(images: np.ndarray) -> float:
    """Log-log slope of the radially averaged power spectrum of (N, S, S, C) square images."""
    size = images.shape[1]
    power = np.abs(np.fft.fft2(images, axes=(1, 2))) ** 2
    power = power.mean(axis=(0, 3))
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing="ij"))
    ring = np.rint(f * size).astype(int)
    rings = np.arange(2, size // 2)  # skip DC and the coarsest ring; stop before the corners
    mean_f = np.array([f[ring == r].mean() for r in rings])
    mean_power = np.array([power[ring == r].mean() for r in rings])
    return float(np.polyfit(np.log(mean_f), np.log(mean_power), 1)[0])


def render(p: param.ImageParam, params=None) -> np.ndarray:
    """``p``'s image as float64 NumPy (jitted: one compile beats eager op-by-op dispatch)."""
    return np.float64(jax.jit(p.to_image)(p.params if params is None else params))


def pre_sigmoid(p: param.ImageParam) -> np.ndarray:
    rgb = render(p)
    return np.log(rgb) - np.log1p(-rgb)


@pytest.mark.parametrize("decay_power", [1.0, 1.5])
def test_fourier_init_spectrum_falls_as_one_over_f(decay_power):
    # Power ~ 1/f^(2 decay_power). With 8 images x 3 channels the fitted slope lands within 0.04 of
    # that over seeds (-1.96..-1.99 for decay 1); the tolerance is 0.1.
    p = param.fourier(64, 8, key=jax.random.key(0), decay_power=decay_power, decorrelate=False)
    assert radial_power_slope(pre_sigmoid(p)) == pytest.approx(-2 * decay_power, abs=0.1)


def test_pixel_init_spectrum_is_flat():
    p = param.pixel(64, 8, key=jax.random.key(0))
    assert radial_power_slope(pre_sigmoid(p)) == pytest.approx(0.0, abs=0.1)


@pytest.mark.parametrize(
    ("size", "color_options"),
    [((6, 8), COLOR_OPTIONS), ((7, 5), [(True, True)])],  # colour does not depend on the size
    ids=["even", "odd"],
)
def test_fourier_matches_numpy_lucid_fft_image(size, color_options):
    h, w = size
    p = param.fourier(size, 2, key=jax.random.key(1), sd=0.05)
    assert p.params["real"].shape == (2, 3, h, w // 2 + (2 if w % 2 else 1))
    t = lucid_fft_image_numpy(p.params["real"], p.params["imag"], h, w)
    assert t.std() > 1e-2  # a non-trivial image, so the comparison means something
    for decorrelate, sigmoid in color_options:
        q = param.fourier(size, key=jax.random.key(1), decorrelate=decorrelate, sigmoid=sigmoid)
        expected = lucid_to_valid_rgb_numpy(t, decorrelate, sigmoid)
        np.testing.assert_allclose(render(q, p.params), expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    ("make", "size"),
    [(param.fourier, (8, 6)), (param.fourier, (5, 7)), (param.pixel, (5, 7))],
    ids=["fourier-even", "fourier-odd", "pixel"],
)
def test_init_round_trip(make, size):
    target = np.random.default_rng(0).uniform(0, 1, (2, *size, 3)).astype(np.float32)
    target[0, 0, 0] = [0.0, 1.0, 0.5]  # saturated values are clipped just inside for the sigmoid
    for decorrelate, sigmoid in COLOR_OPTIONS:
        p = make(size, init=target, decorrelate=decorrelate, sigmoid=sigmoid)
        rendered = render(p)
        assert rendered.shape == (2, *size, 3)
        np.testing.assert_allclose(rendered, target, atol=1e-3, rtol=0)


def test_single_init_image_is_repeated_over_the_batch():
    target = np.full((4, 4, 3), 0.25, np.float32)
    p = param.image(4, 3, init=target)
    expected = np.broadcast_to(target, (3, 4, 4, 3))
    np.testing.assert_allclose(render(p), expected, atol=1e-3)


@pytest.mark.parametrize(
    "make",
    [
        lambda: param.pixel((4, 5), 2, key=jax.random.key(0)),
        lambda: param.fourier((4, 5), 2, key=jax.random.key(0)),
        lambda: param.fourier((4, 5), init=np.full((2, 4, 5, 3), 0.3, np.float32)),
        lambda: param.image(4, key=jax.random.key(0)),
    ],
    ids=["pixel", "fourier", "fourier-init", "image"],
)
def test_params_are_real_float32(make):
    p = make()
    leaves = jax.tree.leaves(p.params)
    assert leaves and all(leaf.dtype == jnp.float32 for leaf in leaves)
    assert jax.eval_shape(p.to_image, p.params).shape[-1] == 3


@pytest.mark.parametrize(
    "make",
    [
        lambda: param.fourier((6, 5), 2, key=jax.random.key(2), sd=0.1),
        lambda: param.fourier((6, 5), 2, key=jax.random.key(2), sd=0.1, sigmoid=False),
        lambda: param.pixel((6, 5), 2, key=jax.random.key(2), sd=0.1, decorrelate=True),
    ],
    ids=["fourier", "fourier-clipped", "pixel"],
)
def test_gradient_matches_finite_differences(make):
    p = make()
    weights = jax.random.normal(jax.random.key(3), jax.eval_shape(p.to_image, p.params).shape)

    @jax.jit
    def loss(params):
        return jnp.sum(p.to_image(params) * weights)

    grads = jax.jit(jax.grad(loss))(p.params)
    name = sorted(p.params)[0]
    flat = np.asarray(p.params[name]).ravel()
    eps = 1e-2
    rng = np.random.default_rng(0)
    checked = 0
    for index in rng.choice(flat.size, 6, replace=False):
        bumped = []
        for sign in (1, -1):
            values = flat.copy()
            values[index] += sign * eps
            params = dict(p.params, **{name: jnp.asarray(values.reshape(p.params[name].shape))})
            bumped.append(float(loss(params)))
        numeric = (bumped[0] - bumped[1]) / (2 * eps)
        analytic = float(np.asarray(grads[name]).ravel()[index])
        assert analytic == pytest.approx(numeric, rel=2e-2, abs=1e-3)
        checked += abs(analytic) > 1e-3
    assert checked >= 3  # most coordinates carry a real gradient


def test_clip_gradient_blocks_only_outward_descent_steps():
    # Inside the ball: identity. At/past the edge: zero only where a descent step (-g) goes out.
    x = jnp.array([0.5, 1.5, 1.5, -2.0, -2.0])
    g = jnp.array([1.0, 1.0, -1.0, 1.0, -1.0])
    value, vjp = jax.vjp(param.constrain_l_inf, x)
    np.testing.assert_allclose(value, [0.5, 1.0, 1.0, -1.0, -1.0])
    np.testing.assert_allclose(vjp(g)[0], [1.0, 1.0, 0.0, 0.0, -1.0])


def test_image_front_picks_the_parameterisation():
    assert set(param.image(4, key=jax.random.key(0)).params) == {"real", "imag"}
    assert set(param.image(4, key=jax.random.key(0), fft=False).params) == {"pixels"}


def test_bad_arguments_raise_value_error():
    with pytest.raises(ValueError, match="key"):
        param.fourier(4)
    with pytest.raises(ValueError, match=r"init must be \(N, 4, 4, 3\)"):
        param.pixel(4, init=np.zeros((1, 5, 4, 3)))
    with pytest.raises(ValueError, match="batch=3"):
        param.fourier(4, 3, init=np.zeros((2, 4, 4, 3)))
