"""How an image is represented: a pytree of float parameters plus a pure map to pixels.

The maths follows Lucid (``lucid/optvis/param/spatial.py``, ``color.py``, ``images.py``,
``unit_balls.py``) number for number, so images rendered here match Lucid's for the same
parameters. Every constructor also takes ``init=`` an image batch and inverts the map, so the first
rendered image *is* that batch (style transfer starts from the content image this way).

Parameters are always real float32 arrays: a spectrum is stored as separate real and imaginary
parts because ``jax.grad`` of a complex parameter is the conjugate, which optax would follow the
wrong way.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import Partial

from paramviz.errors import UserError
from paramviz.rng import normal


class ImageParam(NamedTuple):
    """``to_image(params)`` gives an (N, H, W, 3) batch in [0, 1]; ``params`` are never complex.

    ``to_image`` is a :class:`jax.tree_util.Partial` of a module-level function: its settings are
    static leaves and its arrays array leaves, so render compiles one step per structure.
    """

    params: Any
    to_image: Callable[[Any], jax.Array]


Size = int | tuple[int, int]

# lucid/optvis/param/color.py: square root of ImageNet's colour correlation (rows R, G, B; columns
# the decorrelated components), normalised by its largest column L2 norm (0.46195...).
COLOR_CORRELATION_SVD_SQRT = np.array(
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=np.float32
)
MAX_NORM_SVD_SQRT = np.max(np.linalg.norm(COLOR_CORRELATION_SVD_SQRT, axis=0))
COLOR_CORRELATION_NORMALIZED = COLOR_CORRELATION_SVD_SQRT / MAX_NORM_SVD_SQRT
COLOR_MEAN = np.array([0.48, 0.46, 0.41], dtype=np.float32)

# Inverting a sigmoid needs values strictly inside (0, 1); 1e-4 keeps the round trip within 1e-4.
_SIGMOID_INIT_EPS = 1e-4
# Lucid's fft_image divides the spatial image by 4 ("TODO: is that a magic constant?").
_LUCID_FFT_DIVISOR = 4.0


# --------------------------------------------------------------------------------------------
# Range: the L_inf ball with Lucid's projected gradient (unit_balls.py)


@jax.custom_vjp
def constrain_l_inf(x: jax.Array) -> jax.Array:
    """``x / max(1, |x|)`` elementwise: clip into [-1, 1] without freezing clipped values.

    The true derivative is 0 outside the ball, so a value pushed past the edge would never come
    back. Lucid's ``_constrain_L_inf_grad(precondition=False)`` instead passes the incoming gradient
    through unchanged, except where the value sits at or past the edge *and* the step would push it
    further out; there the gradient is zeroed.

    "Further out" depends on which way the optimiser moves. This is written for the cotangent of a
    *minimised* loss (optax, and paramviz's render, which minimises ``-objective``): a descent step
    moves ``x`` by ``-g``, i.e. outward where ``x * g < 0``. Lucid's code tests ``x * g > 0``
    while its render also minimises ``-objective``, so taken literally it blocks the *inward* steps
    and lets clipped values drift off for good; we implement the documented intent instead.
    """
    return x / jnp.maximum(1.0, jnp.abs(x))


def _constrain_l_inf_fwd(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    return constrain_l_inf(x), x


def _constrain_l_inf_bwd(x: jax.Array, g: jax.Array) -> tuple[jax.Array]:
    at_edge = jnp.abs(x) >= 1.0
    descent_goes_outward = x * g < 0.0
    return (jnp.where(at_edge & descent_goes_outward, jnp.zeros_like(g), g),)


constrain_l_inf.defvjp(_constrain_l_inf_fwd, _constrain_l_inf_bwd)


# --------------------------------------------------------------------------------------------
# Colour: lucid/optvis/param/color.py:to_valid_rgb and its exact inverse


def to_valid_rgb(t: jax.Array, *, decorrelate: bool, sigmoid: bool) -> jax.Array:
    """Lucid's ``to_valid_rgb``: optional decorrelated colour -> RGB, then squash into [0, 1].

    ``sigmoid=False`` is Lucid's clipped alternative: (after adding the ImageNet colour mean when
    decorrelated) ``constrain_l_inf(2t - 1) / 2 + 0.5``.
    """
    if decorrelate:
        t = t @ jnp.asarray(COLOR_CORRELATION_NORMALIZED.T)
    if sigmoid:
        return jax.nn.sigmoid(t)
    if decorrelate:
        t = t + jnp.asarray(COLOR_MEAN)
    return constrain_l_inf(2.0 * t - 1.0) / 2.0 + 0.5


def from_valid_rgb(rgb: Any, *, decorrelate: bool, sigmoid: bool) -> np.ndarray:
    """The ``t`` that :func:`to_valid_rgb` maps to ``rgb`` (clipped into its open range first).

    NumPy, on the host: it makes initial values, and each eager JAX operation would compile a
    program of its own in every new process.
    """
    rgb = np.asarray(rgb, np.float32)
    if sigmoid:
        p = np.clip(rgb, _SIGMOID_INIT_EPS, 1.0 - _SIGMOID_INIT_EPS)
        t = np.log(p) - np.log1p(-p)
    else:
        t = np.clip(rgb, 0.0, 1.0)
        if decorrelate:
            t = t - COLOR_MEAN
    if decorrelate:
        inverse = np.linalg.inv(COLOR_CORRELATION_NORMALIZED.T.astype(np.float64))
        t = t @ inverse.astype(np.float32)
    return t.astype(np.float32)


# --------------------------------------------------------------------------------------------
# Spectrum: lucid/optvis/param/spatial.py:rfft2d_freqs and fft_image


def rfft2d_freqs(h: int, w: int) -> np.ndarray:
    """Lucid's frequency grid (cycles/pixel) of an rfft2 spectrum, shape (h, w//2+1[+1]).

    For odd ``w`` Lucid keeps one extra column, runs the inverse FFT at width ``w + 1`` and crops.
    """
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[: w // 2 + (2 if w % 2 else 1)]
    return np.sqrt(fx * fx + fy * fy)


def spectrum_scale(h: int, w: int, decay_power: float = 1.0) -> np.ndarray:
    """Lucid's per-frequency gain: ``1 / max(f, 1/max(h, w))**decay_power * sqrt(h*w)``.

    Combined with an unnormalised-forward / ``1/n``-inverse FFT this is the orthonormal transform
    for even widths (see :func:`fourier`), so the learning rate means what it means for pixels.
    """
    freqs = rfft2d_freqs(h, w)
    return (1.0 / np.maximum(freqs, 1.0 / max(h, w)) ** decay_power * np.sqrt(h * w)).astype(
        np.float32
    )


GAINS = ("lucid", "photo")


def photo_gain(h: int, w: int) -> np.ndarray:
    """Lucid's gain times how much faster photographs fall off than ``1/f`` at this size.

    The ratio of :func:`natural_magnitude` (mean over colour channels) to ``1/f``, its median
    over rings of one frequency bin, scaled to 1 at the lowest frequencies and capped at 1 (the
    DC gain is Lucid's). Photographs resized to 96-128 px fall to about a quarter of ``1/f``
    at the Nyquist corner (camera and resampling filters), so this gain ends at about a quarter
    of Lucid's there. Under Adam, which moves every coefficient by about the learning rate, the
    gain *is* the spectrum of every update: Lucid's ``1/f`` drives the frequencies a VGG barely
    sees as hard as photographs never have them, and on the VGG-19 trunk they grow into a 2-px
    checkerboard (experiments/README.md, "The Fourier checkerboard").
    """
    scale = spectrum_scale(h, w)
    freqs = rfft2d_freqs(h, w)
    ratio = natural_magnitude(h, w).mean(axis=0) / scale
    rings = np.rint(freqs * max(h, w)).astype(int)
    profile = np.array([np.median(ratio[rings == ring]) for ring in range(rings.max() + 1)])
    profile = np.minimum(profile / np.mean(profile[1:4]), 1.0)
    gain = scale * profile[rings]
    gain[0, 0] = scale[0, 0]
    return gain.astype(np.float32)


def _fft_width(w: int) -> int:
    return w + 1 if w % 2 else w


def _spectrum_to_image(real: jax.Array, imag: jax.Array, scale: np.ndarray, h: int, w: int):
    """(N, 3, h, wf) real/imag spectrum -> (N, h, w, 3) image, exactly Lucid's ``fft_image``.

    TF's ``irfft2d`` (like ``jnp.fft.irfft2`` with the default ``norm="backward"``) divides by
    ``h * w_fft``. For even ``w`` (``w_fft == w``) the gain's ``sqrt(h*w)`` therefore makes it the
    orthonormal inverse, ``irfft2(sqrt(hw) * X) == irfft2(X, norm="ortho")``, which is how Lucent
    writes it. For odd ``w`` Lucid transforms at ``w_fft = w + 1`` (keeping the extra column) but
    still scales by ``sqrt(h*w)``: its image is ``sqrt(w / (w+1))`` times an ortho transform at
    ``w + 1``. (Lucent calls ``irfftn(s=(h, w), norm="ortho")``, which for odd ``w`` ignores the
    extra column: a different image.) Writing Lucid's two steps literally keeps its numbers.
    """
    spectrum = jax.lax.complex(real, imag) * jnp.asarray(scale)
    image = jnp.fft.irfft2(spectrum, s=(h, _fft_width(w)))  # norm="backward", as TF
    image = jnp.transpose(image, (0, 2, 3, 1))[:, :h, :w, :]
    return image / _LUCID_FFT_DIVISOR


def _image_to_spectrum(image: np.ndarray, scale: np.ndarray, w: int):
    """Inverse of :func:`_spectrum_to_image` (odd widths: edge-replicate one column first), in
    NumPy like :func:`from_valid_rgb`."""
    x = np.transpose(image, (0, 3, 1, 2)) * _LUCID_FFT_DIVISOR
    if _fft_width(w) != w:
        x = np.pad(x, ((0, 0), (0, 0), (0, 0), (0, 1)), mode="edge")
    spectrum = np.fft.rfft2(x) / scale
    return spectrum.real.astype(np.float32), spectrum.imag.astype(np.float32)


# --------------------------------------------------------------------------------------------
# Constructors


def _height_width(size: Size) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, int) else size
    if h < 1 or w < 1:
        raise ValueError(f"image size must be positive, got {size!r}")
    return int(h), int(w)


MIN_SPECTRUM_SIDE = 2  # below it the photographs' gain has no ring to read, MACO no phase


def _spectrum_size(size: Size, kind: str) -> tuple[int, int]:
    """``size`` as (H, W), refused in one line when it is too small to hold a spectrum."""
    h, w = _height_width(size)
    if min(h, w) < MIN_SPECTRUM_SIDE:
        raise UserError(
            f"a {h}x{w} picture is too small for the {kind} parameterisation (a spectrum "
            f"needs at least {MIN_SPECTRUM_SIDE} pixels a side): use a larger --size or "
            "--param pixel"
        )
    return h, w


def _init_batch(init: Any, batch: int | None, h: int, w: int) -> np.ndarray:
    """``init`` as a float32 (batch, h, w, 3) array; a single image or batch of 1 is repeated."""
    images = np.asarray(init, dtype=np.float32)
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[1:] != (h, w, 3):
        raise ValueError(f"init must be (N, {h}, {w}, 3) RGB in [0, 1], got {images.shape}")
    batch = images.shape[0] if batch is None else batch
    if images.shape[0] not in (1, batch):
        raise ValueError(f"init holds {images.shape[0]} images but batch={batch}")
    return np.broadcast_to(images, (batch, h, w, 3))


def _require_key(key: jax.Array | None) -> jax.Array:
    if key is None:
        raise ValueError("a PRNG key is needed for a random start (pass key=, or init=)")
    return key


def pixel(
    size: Size,
    batch: int | None = None,
    *,
    key: jax.Array | None = None,
    sd: float = 0.01,
    decorrelate: bool = False,
    sigmoid: bool = True,
    init: Any = None,
) -> ImageParam:
    """One parameter per pixel and channel (Lucid's ``pixel_image``), drawn from ``N(0, sd)``.

    ``params = {"pixels": (N, H, W, 3)}``; ``batch`` defaults to the number of ``init`` images,
    else 1.
    """
    h, w = _height_width(size)
    if init is None:
        pixels = normal(_require_key(key), (batch or 1, h, w, 3), sd)
    else:
        images = _init_batch(init, batch, h, w)
        pixels = from_valid_rgb(images, decorrelate=decorrelate, sigmoid=sigmoid)
    return ImageParam({"pixels": pixels}, Partial(_pixel_image, decorrelate, sigmoid))


def _pixel_image(decorrelate: bool, sigmoid: bool, params: dict[str, jax.Array]) -> jax.Array:
    return to_valid_rgb(params["pixels"], decorrelate=decorrelate, sigmoid=sigmoid)


def fourier(
    size: Size,
    batch: int | None = None,
    *,
    key: jax.Array | None = None,
    sd: float = 0.01,
    decay_power: float = 1.0,
    decorrelate: bool = True,
    sigmoid: bool = True,
    init: Any = None,
    gain: str = "lucid",
) -> ImageParam:
    """Lucid's ``fft_image``: a scaled real-FFT spectrum whose random start falls off as 1/f.

    ``params = {"real": ..., "imag": ...}``, each (N, 3, H, W//2+1) (+1 column for odd W), drawn
    from ``N(0, sd)``. The spatial image is ``irfft2(spectrum_scale * (real + i imag)) / 4``,
    cropped to (H, W). ``decay_power`` is 1 in Lucid and Lucent; Horama uses 1.5.
    ``gain="photo"`` replaces Lucid's ``1/f**decay_power`` gain by :func:`photo_gain`.
    ``batch`` defaults to the number of ``init`` images, else 1.
    """
    h, w = _spectrum_size(size, "fourier")
    if gain not in GAINS:
        raise ValueError(f"unknown gain {gain!r}; choose one of {GAINS}")
    scale = photo_gain(h, w) if gain == "photo" else spectrum_scale(h, w, decay_power)
    if init is None:
        shape = (2, batch or 1, 3, *scale.shape)
        real, imag = normal(_require_key(key), shape, sd)
    else:
        images = _init_batch(init, batch, h, w)
        t = from_valid_rgb(images, decorrelate=decorrelate, sigmoid=sigmoid)
        real, imag = _image_to_spectrum(t, scale, w)
    to_image = Partial(_fourier_image, h, w, decorrelate, sigmoid, scale)
    return ImageParam({"real": real, "imag": imag}, to_image)


def _fourier_image(
    h: int,
    w: int,
    decorrelate: bool,
    sigmoid: bool,
    scale: jax.Array,
    params: dict[str, jax.Array],
) -> jax.Array:
    t = _spectrum_to_image(params["real"], params["imag"], scale, h, w)
    return to_valid_rgb(t, decorrelate=decorrelate, sigmoid=sigmoid)


# --------------------------------------------------------------------------------------------
# MACO: the phase only, against a fixed natural-image magnitude (Fel et al., NeurIPS 2023)

MAGNITUDE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
"""scikit-image's colour photographs whose mean spectrum is MACO's fixed magnitude."""


@functools.lru_cache(maxsize=16)
def natural_magnitude(h: int, w: int) -> np.ndarray:
    """``(3, h, w_fft//2+1)``: the mean ``|rfft2|`` of :data:`MAGNITUDE_PHOTOS` in the
    decorrelated colour space, each photo centre-cropped to ``h:w``, resized, each channel's
    mean removed (the rendered image is standardised anyway).

    Horama downloads an ImageNet average; these bundled photos give the same ~1/f fall-off
    without a download. Read-only (cached).
    """
    import skimage.data
    from PIL import Image

    inverse = np.linalg.inv(COLOR_CORRELATION_NORMALIZED.T.astype(np.float64))
    spectra = []
    for name in MAGNITUDE_PHOTOS:
        photo = Image.fromarray(getattr(skimage.data, name)()[..., :3])
        side = min(photo.width / w, photo.height / h)
        box_w, box_h = w * side, h * side
        left, top = (photo.width - box_w) / 2, (photo.height - box_h) / 2
        crop = photo.resize(
            (w, h), Image.Resampling.LANCZOS, (left, top, left + box_w, top + box_h)
        )
        t = (np.asarray(crop, np.float64) / 255.0 - COLOR_MEAN) @ inverse
        if _fft_width(w) != w:
            t = np.pad(t, ((0, 0), (0, 1), (0, 0)), mode="edge")
        t = t - t.mean(axis=(0, 1))  # no DC: a random phase there would only cast a colour
        spectra.append(np.abs(np.fft.rfft2(np.moveaxis(t, -1, 0))))
    magnitude = np.mean(spectra, axis=0).astype(np.float32)
    magnitude.setflags(write=False)
    return magnitude


def photo_fourier(size: Size, batch: int | None = None, **options: Any) -> ImageParam:
    """:func:`fourier` with the gain of photographs (:func:`photo_gain`): the ``fourier`` the
    command line and the experiments use, because under Adam Lucid's 1/f gain grows a 2-pixel
    checkerboard where a network barely looks (experiments/README.md)."""
    return fourier(size, batch, gain="photo", **options)


def maco(
    size: Size,
    batch: int | None = None,
    *,
    key: jax.Array | None = None,
    magnitude: np.ndarray | None = None,
    decorrelate: bool = True,
    init: Any = None,
) -> ImageParam:
    """MACO (Fel et al. 2023): only the phase of the spectrum is optimised; its magnitude stays
    the fixed ``magnitude`` (default :func:`natural_magnitude`), so every picture keeps a
    natural image's energy per frequency and cannot drift into high-frequency patterns.

    ``params = {"phase": (N, 3, H, W//2+1)}`` (+1 column for odd W), uniform in [-pi, pi) from
    ``key``. The spatial image (inverse FFT) is standardised per image, recorrelated and squashed
    by a sigmoid, as in Horama's ``maco_preconditioner``. ``init`` takes an image's *phase* (its
    magnitude is replaced by the fixed one, so the start resembles it but is not it).
    """
    h, w = _spectrum_size(size, "maco")
    magnitude = natural_magnitude(h, w) if magnitude is None else np.asarray(magnitude, np.float32)
    expected = (3, h, _fft_width(w) // 2 + 1)
    if magnitude.shape != expected:
        raise ValueError(f"magnitude must have shape {expected}, got {magnitude.shape}")
    if init is None:
        shape = (batch or 1, *expected)
        phase = jax.random.uniform(_require_key(key), shape, minval=-np.pi, maxval=np.pi)
    else:
        t = from_valid_rgb(_init_batch(init, batch, h, w), decorrelate=decorrelate, sigmoid=True)
        real, imag = _image_to_spectrum(t, np.ones(expected[1:], np.float32), w)
        phase = np.arctan2(imag, real)
    to_image = Partial(_maco_image, h, w, decorrelate, magnitude)
    return ImageParam({"phase": jnp.asarray(phase, jnp.float32)}, to_image)


def maco_spatial(h: int, w: int, magnitude: jax.Array, phase: jax.Array) -> jax.Array:
    """``(N, h, w, 3)``: the standardised inverse FFT of ``magnitude * exp(i phase)``."""
    spectrum = jax.lax.complex(magnitude * jnp.cos(phase), magnitude * jnp.sin(phase))
    t = jnp.fft.irfft2(spectrum, s=(h, _fft_width(w)))
    t = jnp.transpose(t, (0, 2, 3, 1))[:, :h, :w, :]
    mean = jnp.mean(t, axis=(1, 2, 3), keepdims=True)
    return (t - mean) / (jnp.std(t, axis=(1, 2, 3), keepdims=True) + 1e-8)


def _maco_image(
    h: int, w: int, decorrelate: bool, magnitude: jax.Array, params: dict[str, jax.Array]
) -> jax.Array:
    t = maco_spatial(h, w, magnitude, params["phase"])
    return to_valid_rgb(t, decorrelate=decorrelate, sigmoid=True)


def image(
    size: Size,
    batch: int | None = None,
    *,
    key: jax.Array | None = None,
    fft: bool = True,
    decorrelate: bool = True,
    sigmoid: bool = True,
    init: Any = None,
    **kwargs: Any,
) -> ImageParam:
    """Lucid's ``param.image`` front: :func:`fourier` if ``fft`` else :func:`pixel`.

    Defaults are Lucid's (Fourier, decorrelated colour, sigmoid). ``kwargs`` go to the chosen
    constructor (``sd``; ``decay_power`` for Fourier).
    """
    make = fourier if fft else pixel
    return make(size, batch, key=key, decorrelate=decorrelate, sigmoid=sigmoid, init=init, **kwargs)
