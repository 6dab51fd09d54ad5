"""Numbers for pictures: what a sceptical reader asks of a visualisation or a style transfer.

Every metric is a pure function of arrays (NHWC or HWC float RGB in [0, 1], jax or numpy). A
single image ``(H, W, 3)`` (or a greyscale ``(H, W)``) gives a float; a batch ``(N, H, W, 3)``
gives one value per image (an ``(N,)`` array, or a structure of them).

**Judged by another network** (:func:`style_distance`, :func:`content_distance`,
:func:`top_k_recognised`): the judge should be a network the optimisation did *not* use --
typically the normalised VGG-19 trunk at :data:`JUDGE_LAYERS` for pictures made with a ResNet, so a
picture cannot score well by exploiting its own network's quirks.

**Spectral statistics** (:func:`spectrum_slope`, :func:`high_frequency_ratio`,
:func:`checkerboard_energy`) of the luminance, windowed by a 2-D Hann window (see
:func:`power_spectrum`): natural images have power ``P(f) ∝ f^-2`` (van der Schaaf & van Hateren
1996; Torralba & Oliva 2003), white noise ``f^0``; the checkerboard artefacts discussed by Nakano
and Engstrom et al. (Distill 2019) are peaks at the frequencies of the network's strides.

**Robustness of a feature** (:func:`transfer_robustness`): the objective's value under random
transforms the optimisation never saw, relative to its value on the picture itself.

Frequencies are in cycles per pixel: ``fftfreq`` order, ``|f| = sqrt(fx^2 + fy^2)``, Nyquist 0.5
along an axis and ``sqrt(1/2)`` in the corners of the DFT grid.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from paramviz import xla
from paramviz.backbones.base import Backbone
from paramviz.errors import UserError
from paramviz.objectives import (
    MAIN,
    Objective,
    content_targets,
    gram,
    style_targets,
)
from paramviz.render import network_features, required_layers
from paramviz.transforms import Transform, compose, random_rotate, random_scale

JUDGE_LAYERS: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1")
"""Default judge layers: early style layers of the (normalised) VGG-19 trunk."""

LUMA_WEIGHTS: tuple[float, float, float] = (0.2126, 0.7152, 0.0722)
"""Rec. 709 luma weights, applied to the stored (gamma-encoded) RGB values."""

SLOPE_BAND: tuple[float, float] = (0.05, 0.4)
"""Default band of :func:`spectrum_slope` in cycles/px: periods of 20 px down to 2.5 px.

Above ~3 bins from DC (Hann leakage from the strong low frequencies biases the lowest bins) and
below the Nyquist corner (incomplete annuli, anti-aliasing filters of cameras)."""

HIGH_FREQUENCY_CUTOFF = 0.25
"""Default cutoff of :func:`high_frequency_ratio`: ``|f| > 0.25`` cycles/px (periods < 4 px)."""

STRIDE_PERIODS: tuple[int, ...] = (2, 4, 8, 16, 32)
"""Periods (px) of the cumulative strides of VGG/ResNet/AlexNet-like networks."""

_FLOOR = 1e-12  # checkerboard: added to peak and background, relative to the mean power


# ---------------------------------------------------------------------------------------------
# batching


def _per_image(fn: Callable[[np.ndarray], Any], images: Any) -> Any:
    """``fn`` of one image ``(H, W[, C])``; for a batch ``(N, H, W, C)`` stacked leafwise."""
    array = np.asarray(images, np.float64)
    if array.ndim in (2, 3):
        return fn(array)
    if array.ndim == 4:
        results = [fn(image) for image in array]
        return jax.tree.map(lambda *values: np.stack(values), *results)
    raise UserError(f"expected an image (H, W[, C]) or a batch (N, H, W, C), got {array.shape}")


def _batched(images: Any) -> tuple[np.ndarray, bool]:
    """NHWC float32 batch and whether the input was a single HWC image (NumPy: indexing a JAX
    array eagerly compiles a program per shape in every new process)."""
    array = np.asarray(images, np.float32)
    if array.ndim == 3:
        return array[None], True
    if array.ndim == 4:
        return array, False
    raise UserError(f"expected an image (H, W, C) or a batch (N, H, W, C), got {array.shape}")


def _unbatched(values: jax.Array, single: bool) -> float | np.ndarray:
    values = np.asarray(values, np.float64)
    return float(values[0]) if single else values


# ---------------------------------------------------------------------------------------------
# spectra


def luminance(image: Any) -> np.ndarray:
    """``(H, W)`` float64 greyscale: ``Y = 0.2126 R + 0.7152 G + 0.0722 B`` (Rec. 709).

    Applied to the stored values (no gamma decoding), as image statistics papers usually do.
    ``(H, W)`` and ``(H, W, 1)`` inputs are returned as they are.
    """
    array = np.asarray(image, np.float64)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        return array
    if array.ndim == 3 and array.shape[-1] == 3:
        return array @ np.asarray(LUMA_WEIGHTS)
    raise UserError(f"expected one image (H, W), (H, W, 1) or (H, W, 3), got {array.shape}")


def hann_window(height: int, width: int) -> np.ndarray:
    """Separable periodic Hann window ``w(y, x) = sin^2(pi y / H) sin^2(pi x / W)``.

    Periodic (not symmetric) so that its DFT has exactly three non-zero taps per axis
    (``1/2`` at 0 and ``-1/4`` at +-1 bin): a tone on a DFT bin spreads over a 3x3 block only.
    """
    return np.outer(
        np.sin(np.pi * np.arange(height) / height) ** 2,
        np.sin(np.pi * np.arange(width) / width) ** 2,
    )


def frequencies(height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fy, fx, |f|)`` of the unshifted DFT grid in cycles/px, broadcast to ``(H, W)``."""
    fy = np.broadcast_to(np.fft.fftfreq(height)[:, None], (height, width))
    fx = np.broadcast_to(np.fft.fftfreq(width)[None, :], (height, width))
    return fy, fx, np.hypot(fy, fx)


def _spectrum(image: np.ndarray) -> np.ndarray:
    grey = luminance(image)
    window = hann_window(*grey.shape)
    centred = grey - np.sum(window * grey) / np.sum(window)
    return np.abs(np.fft.fft2(window * centred)) ** 2 / np.sum(window**2)


def power_spectrum(image: Any) -> np.ndarray:
    """Windowed power spectrum ``P(k) = |DFT[w (Y - Ybar_w)](k)|^2 / sum(w^2)`` (unshifted grid).

    ``Y`` is :func:`luminance`, ``w`` :func:`hann_window` (it tapers the borders to zero, so the
    jump between opposite edges of a non-periodic picture does not leak a ``1/f^2`` cross of
    power along the axes), ``Ybar_w = sum(w Y) / sum(w)`` the window-weighted mean, so that
    ``P(0) = 0`` exactly. The normalisation gives white noise of variance ``s^2`` the expected
    power ``s^2`` at every frequency. A batch gives ``(N, H, W)``.
    """
    return _per_image(_spectrum, image)


def _radial(power: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    step = 1.0 / min(power.shape)
    rings = np.rint(frequencies(*power.shape)[2] / step).astype(int)
    count = min(power.shape) // 2
    sums = np.bincount(rings.ravel(), power.ravel(), minlength=count + 1)
    sizes = np.bincount(rings.ravel(), minlength=count + 1)
    k = np.arange(1, count + 1)
    return k * step, sums[k] / sizes[k]


def radial_power_spectrum(image: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(f, Pbar(f))``: :func:`power_spectrum` averaged over annuli of width ``D = 1/min(H, W)``.

    Annulus ``k = 1 .. min(H, W) // 2`` holds the bins with ``round(|f| / D) = k`` and is reported
    at ``f = k D`` (up to 0.5 cycles/px; the incomplete annuli of the corners are left out).
    """
    return _per_image(lambda image: _radial(_spectrum(image)), image)


def _slope(power: np.ndarray, band: tuple[float, float]) -> float:
    f, mean_power = _radial(power)
    inside = (f >= band[0]) & (f <= band[1])
    if np.count_nonzero(inside) < 3:
        raise UserError(
            f"the band {band} cycles/px holds {np.count_nonzero(inside)} radial bins of a "
            f"{power.shape[0]}x{power.shape[1]} image; at least 3 are needed (widen the band or "
            "use a larger image)"
        )
    tiny = np.finfo(np.float64).tiny
    log_p = np.log10(np.maximum(mean_power[inside], tiny))
    return float(np.polyfit(np.log10(f[inside]), log_p, 1)[0])


def spectrum_slope(image: Any, band: tuple[float, float] = SLOPE_BAND) -> float | np.ndarray:
    """Slope ``a`` of the least-squares line ``log10 Pbar(f) = a log10 f + c``, ``f`` in ``band``.

    ``Pbar`` is :func:`radial_power_spectrum`; every annulus in the band (inclusive, cycles/px)
    weighs the same. Natural photographs give ``a ~ -2`` (power ``∝ 1/f^2``), white noise 0;
    smoother pictures are steeper, noisy or artefact-ridden ones flatter. Meaningless for pictures
    without broadband content (a pure pattern).
    """
    return _per_image(lambda image: _slope(_spectrum(image), band), image)


def _high_frequency_ratio(power: np.ndarray, cutoff: float) -> float:
    radius = frequencies(*power.shape)[2]
    total = np.sum(power[radius > 0])
    return float(np.sum(power[radius > cutoff]) / total) if total > 0 else math.nan


def high_frequency_ratio(image: Any, cutoff: float = HIGH_FREQUENCY_CUTOFF) -> float | np.ndarray:
    """``sum_{|f| > cutoff} P(f) / sum_{f != 0} P(f)``, all DFT bins of :func:`power_spectrum`.

    The share of (non-DC) power at periods shorter than ``1 / cutoff`` px. White noise gives the
    share of DFT bins above the cutoff (``~ 1 - pi cutoff^2``, 0.80 for 0.25); a 128 px ``1/f^2``
    image ~0.2 (equal power per octave); photographs ~0.01-0.03; a 2 px checkerboard 1. NaN for a
    constant image.
    """
    return _per_image(lambda image: _high_frequency_ratio(_spectrum(image), cutoff), image)


# ---------------------------------------------------------------------------------------------
# checkerboard artefacts


class Checkerboard(NamedTuple):
    """:func:`checkerboard_energy`: ``per_period[p]`` and their ``summary`` (the largest)."""

    per_period: dict[int, float | np.ndarray]
    summary: float | np.ndarray


def checkerboard_bins(period: int, height: int, width: int) -> list[tuple[int, int]]:
    """DFT bins ``(ky, kx)`` of a period: ``(1/p, 0)``, ``(0, 1/p)``, ``(1/p, +-1/p)`` cycles/px.

    The fundamentals of a pattern repeating every ``p`` px along y, x and the diagonals (a
    stride-``p`` layer's artefacts); ``k = round(N / p)``, duplicates (at Nyquist) removed.
    """
    ky, kx = round(height / period), round(width / period)
    bins = [(ky, 0), (0, kx), (ky, kx), (ky, -kx)]
    return list(dict.fromkeys((y % height, x % width) for y, x in bins))


def _block(power: np.ndarray, centre: tuple[int, int], radius: int) -> np.ndarray:
    """The ``(2 radius + 1)^2`` bins around ``centre``, wrapping around the periodic grid."""
    rows = (centre[0] + np.arange(-radius, radius + 1)) % power.shape[0]
    cols = (centre[1] + np.arange(-radius, radius + 1)) % power.shape[1]
    return power[np.ix_(rows, cols)]


def _whitened(power: np.ndarray) -> np.ndarray:
    """``P(f) |f|^-a`` with the picture's own slope ``a`` (clipped to [-4, 0]); DC stays 0."""
    try:
        slope = _slope(power, SLOPE_BAND)
    except UserError:  # too small for the band: no whitening
        slope = 0.0
    slope = float(np.clip(slope, -4.0, 0.0)) if np.isfinite(slope) else 0.0
    radius = frequencies(*power.shape)[2]
    return np.where(radius > 0, power * np.where(radius > 0, radius, 1.0) ** -slope, 0.0)


def _period_energy(whitened: np.ndarray, period: int, radius: int) -> float:
    height, width = whitened.shape
    if min(round(height / period), round(width / period)) <= radius:
        return math.nan  # the neighbourhood would reach DC: too few cycles across the picture
    ring = np.ones((2 * radius + 1,) * 2, bool)
    ring[radius - 1 : radius + 2, radius - 1 : radius + 2] = False
    floor = _FLOOR * np.mean(whitened)
    peaks, backgrounds = 0.0, 0.0
    for centre in checkerboard_bins(period, height, width):
        block = _block(whitened, centre, radius)
        peaks += np.mean(block[~ring]) + floor
        backgrounds += np.median(block[ring]) / math.log(2) + floor
    return float(peaks / backgrounds)


def _checkerboard_of(power: np.ndarray, periods: Sequence[int], radius: int) -> Checkerboard:
    whitened = _whitened(power)
    per_period = {p: _period_energy(whitened, p, radius) for p in periods}
    finite = [v for v in per_period.values() if np.isfinite(v)]
    return Checkerboard(per_period, max(finite) if finite else math.nan)


def _checkerboard(image: np.ndarray, periods: Sequence[int], radius: int) -> Checkerboard:
    return _checkerboard_of(_spectrum(image), periods, radius)


def checkerboard_energy(
    image: Any, periods: Sequence[int] = STRIDE_PERIODS, radius: int = 3
) -> Checkerboard:
    """Spectral power at the stride frequencies relative to the neighbouring frequencies.

    With ``Q(f) = P(f) |f|^-a`` (:func:`power_spectrum` divided by the picture's own power law,
    slope ``a`` from :func:`spectrum_slope` clipped to [-4, 0], so that neighbours at slightly
    lower and higher frequencies are comparable), for each bin ``b`` of
    :func:`checkerboard_bins`: ``peak_b`` = mean of ``Q`` over the 3x3 bins around ``b`` (the
    Hann main lobe: all of a tone's power), ``background_b`` = median of ``Q`` over the rest of the
    ``(2 radius + 1)^2`` square, divided by ``ln 2`` (the median of exponentially distributed
    periodogram values is ``ln 2`` times their mean; the median ignores other peaks nearby)::

        E(p) = sum_b (peak_b + e) / sum_b (background_b + e),   e = 1e-12 mean(Q)

    ~1 for noise and natural images (a smooth spectrum; single values scatter between about 0.4
    and 2.5 because a periodogram is noisy), >> 1 when a pattern of period ``p`` is present (a
    pure pattern gives ~1e13; ``e`` keeps it finite and makes an empty neighbourhood 1). Periods
    with ``round(N / p) <= radius`` cycles across the picture are NaN (the square would reach DC).
    ``summary`` is the largest finite ``E(p)``: the worst artefact.
    """
    return _per_image(lambda image: _checkerboard(image, tuple(periods), radius), image)


# ---------------------------------------------------------------------------------------------
# colour and local artefacts

OPPONENT_CHANNELS: tuple[str, ...] = ("luminance", "red-green", "blue-yellow")
"""What :func:`opponent_channels` returns: Rec. 709 luma, ``R - G`` and ``B - (R + G) / 2``."""

QUANTISATION_POWER = (1.0 / 255.0) ** 2 / 12.0
"""Power of 8-bit rounding noise (white, variance ``q^2 / 12``): the floor every saved picture
has, added to each channel's spectrum so that a flat channel (the chroma of a grey picture) reads
as noise, not as 0/0, and patterns fainter than one grey level are not reported."""

LOCAL_TILE = 32
"""Side (px) of the tiles of :func:`local_checkerboard_energy`; they overlap by half."""


def opponent_channels(image: Any) -> np.ndarray:
    """``(3, H, W)`` float64: luminance and the two colour-opponent channels of an RGB image.

    An isoluminant pattern (an orange/blue checkerboard at constant brightness) is invisible in
    the first and plain in the other two.
    """
    rgb = np.asarray(image, np.float64)
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise UserError(f"expected one RGB image (H, W, 3), got {rgb.shape}")
    r, g, b = np.moveaxis(rgb, -1, 0)
    return np.stack([luminance(rgb), r - g, b - (r + g) / 2])


NYQUIST_DISC = 0.08
"""Radius (cycles/px) of the discs around the 2-px frequencies that :func:`two_pixel_excess`
averages: 2-px artefacts drift in phase across a picture, so their power spreads over many bins
near Nyquist instead of making one peak."""
REFERENCE_BAND = (0.1, 0.35)
"""The band (cycles/px) whose whitened power :func:`two_pixel_excess` compares against."""


def _nyquist_distance(height: int, width: int) -> np.ndarray:
    """Each bin's distance to the nearest 2-px frequency: (1/2, 1/2), (1/2, 0) or (0, 1/2)."""
    fy, fx, _ = frequencies(height, width)
    ay, ax = 0.5 - np.abs(fy), 0.5 - np.abs(fx)
    return np.minimum(np.hypot(ay, ax), np.minimum(np.hypot(ay, fx), np.hypot(fy, ax)))


def _two_pixel_excess(power: np.ndarray) -> float:
    whitened = _whitened(power)
    near = _nyquist_distance(*power.shape) < NYQUIST_DISC
    radius = frequencies(*power.shape)[2]
    band = (radius >= REFERENCE_BAND[0]) & (radius <= REFERENCE_BAND[1]) & ~near
    return float(np.mean(whitened[near]) / max(np.mean(whitened[band]), np.finfo(float).tiny))


def two_pixel_excess(image: Any) -> float | np.ndarray:
    """Whitened power near the 2-px frequencies relative to the band 0.1-0.35 cycles/px.

    With ``Q`` as in :func:`checkerboard_energy` (the spectrum divided by the picture's own power
    law): ``mean Q`` over the bins within :data:`NYQUIST_DISC` of (1/2, 1/2), (1/2, 0), (0, 1/2),
    over ``mean Q`` in :data:`REFERENCE_BAND`. ~1 for noise, below 1 for photographs (resizing
    and cameras filter near Nyquist), >> 1 for a 2-px checkerboard, exact or drifting -- the kind
    the Fourier parameterisation under Adam makes on the VGG-19 trunk, which the 3x3-bin peak of
    :func:`checkerboard_energy` reads as ~1 because its neighbours carry the same excess.
    """
    return _per_image(lambda image: _two_pixel_excess(_spectrum(image)), image)


def _channel_checkerboard(power: np.ndarray, periods: Sequence[int], radius: int) -> float:
    """The worst of :func:`_checkerboard_of` at the periods above 2 and the 2-px excess."""
    values = [_checkerboard_of(power, [p for p in periods if p > 2], radius).summary]
    if 2 in periods:
        values.append(_two_pixel_excess(power))
    finite = [v for v in values if np.isfinite(v)]
    return max(finite) if finite else math.nan


def _colour_checkerboard(image: np.ndarray, periods: Sequence[int], radius: int) -> float:
    values = [
        _channel_checkerboard(_spectrum(plane) + QUANTISATION_POWER, periods, radius)
        for plane in opponent_channels(image)
    ]
    finite = [v for v in values if np.isfinite(v)]
    return max(finite) if finite else math.nan


def colour_checkerboard_energy(
    image: Any, periods: Sequence[int] = STRIDE_PERIODS, radius: int = 3
) -> float | np.ndarray:
    """The worst artefact over the :func:`opponent_channels`: per channel the largest of
    :func:`checkerboard_energy` at the periods above 2 px and :func:`two_pixel_excess` (when 2 is
    among ``periods``).

    Each channel's spectrum gets :data:`QUANTISATION_POWER` added first. The luminance-only
    energy misses a checkerboard of alternating colours at constant brightness, and a 2-px
    pattern whose phase drifts; this does not.
    """
    return _per_image(lambda image: _colour_checkerboard(image, tuple(periods), radius), image)


def tiles(height: int, width: int, tile: int = LOCAL_TILE) -> list[tuple[int, int]]:
    """Top-left corners of ``tile``-px squares overlapping by half and covering the picture."""

    def starts(side: int) -> list[int]:
        if side <= tile:
            return [0]
        return sorted({*range(0, side - tile + 1, tile // 2), side - tile})

    return [(y, x) for y in starts(height) for x in starts(width)]


LOCAL_MIN_CYCLES = 8
"""A tile holds a period only with this many cycles across it (two neighbourhood widths):
with fewer, an edge or a stripe of the picture reads as a peak (32 px tiles: periods 2, 4)."""


def _local_checkerboard(image: np.ndarray, periods: Sequence[int], radius: int, tile: int):
    periods = tuple(p for p in periods if tile / p >= LOCAL_MIN_CYCLES)
    values = [
        _colour_checkerboard(image[y : y + tile, x : x + tile], periods, radius)
        for y, x in tiles(*image.shape[:2], tile)
    ]
    finite = [v for v in values if np.isfinite(v)]
    return max(finite) if finite else math.nan


def local_checkerboard_energy(
    image: Any,
    periods: Sequence[int] = STRIDE_PERIODS,
    radius: int = 3,
    tile: int = LOCAL_TILE,
) -> float | np.ndarray:
    """The worst tile's :func:`colour_checkerboard_energy` (``tile``-px tiles, half overlap).

    A checkerboard on a patch holds a small share of the whole picture's power but most of its
    tile's. Only periods with :data:`LOCAL_MIN_CYCLES` cycles across a tile are measured.
    """
    return _per_image(lambda image: _local_checkerboard(image, tuple(periods), radius, tile), image)


def _colour_high_frequency_ratio(image: np.ndarray, cutoff: float) -> float:
    powers = [_spectrum(plane) for plane in opponent_channels(image)]
    radius = frequencies(*powers[0].shape)[2]
    total = sum(np.sum(power[radius > 0]) for power in powers)
    high = sum(np.sum(power[radius > cutoff]) for power in powers)
    return float(high / total) if total > 0 else math.nan


def colour_high_frequency_ratio(
    image: Any, cutoff: float = HIGH_FREQUENCY_CUTOFF
) -> float | np.ndarray:
    """:func:`high_frequency_ratio` of the power of all three :func:`opponent_channels` together.

    Power is summed over the channels before the ratio, so a faint chroma channel cannot
    dominate, while high-frequency colour (chroma noise, colour checkerboards) counts.
    """
    return _per_image(lambda image: _colour_high_frequency_ratio(image, cutoff), image)


LAYOUT_BLUR = 1.0 / 32.0
"""Gaussian blur of :func:`layout_distance`, as a fraction of the picture's shorter side."""


def _blurred_luminance(image: np.ndarray, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(luminance(image), sigma, mode="reflect")


def layout_distance(
    image: Any, content_image: Any, blur: float = LAYOUT_BLUR
) -> float | np.ndarray:
    """``1 - corr(B * Y(x), B * Y(c))``: how far the picture's large-scale layout is from the
    content's (``Y`` luminance, ``B`` a Gaussian of ``blur`` times the shorter side).

    Style transfer may change colours, texture and contrast; what keeps content recognisable is
    where the light and dark regions are. The correlation ignores brightness and contrast, the
    blur ignores texture and noise: 0 for the content itself, ~1 for an unrelated picture.
    """
    content = np.asarray(content_image, np.float64)
    sigma = blur * min(content.shape[:2])
    reference = _blurred_luminance(content, sigma).ravel()

    def distance(picture: np.ndarray) -> float:
        blurred = _blurred_luminance(picture, sigma).ravel()
        return float(1.0 - np.corrcoef(blurred, reference)[0, 1])

    return _per_image(distance, image)


# ---------------------------------------------------------------------------------------------
# style and content, judged by an independent network


DISTANCE_NORMS = ("l1", "l2")


def _relative_distance(diff: jax.Array, reference: jax.Array, norm: str) -> jax.Array:
    """Per image: ``sum|diff| / sum|ref|`` (``"l1"``) or ``||diff||_2 / ||ref||_2`` (``"l2"``)."""
    axes = tuple(range(1, diff.ndim))
    reference = jnp.broadcast_to(reference, diff.shape)
    if norm == "l1":
        return jnp.sum(jnp.abs(diff), axes) / jnp.sum(jnp.abs(reference), axes)
    return jnp.sqrt(jnp.sum(diff**2, axes) / jnp.sum(reference**2, axes))


def _layer_mean(per_layer: Mapping[str, float | np.ndarray]) -> float | np.ndarray:
    values = list(per_layer.values())
    mean = np.mean(np.stack(values), axis=0)
    return float(mean) if np.ndim(mean) == 0 else mean


def style_distance(judge: Backbone, images: Any, style: Any, layers=JUDGE_LAYERS, **options: Any):
    """``|G_l(x) - G_l(s)| / |G_l(s)|``: the judge's Gram distance relative to the style.

    ``G_l = A^T A / (H W)`` is :func:`paramviz.objectives.gram` of the judge's activations ``A``
    at layer ``l`` (the style image's Gram averaged over its batch, as
    :func:`~paramviz.objectives.style_targets`); ``|.|`` is the entrywise L1 norm (``norm="l1"``,
    the default: the mean absolute difference of Lucid's style loss divided by the mean
    ``|G_l(s)|``) or the Frobenius norm (``"l2"``). Dividing by the style Gram's norm makes layers
    of very different activation scales comparable: 0 is a perfect match, 1 is as far as a zero
    Gram. ``options``: ``norm``, ``per_layer`` (see :func:`judged_distance`).
    """
    return judged_distance(judge, images, style, layers, **{"norm": "l1", **options}, gram_of=True)


def content_distance(judge: Backbone, images: Any, content: Any, layers=JUDGE_LAYERS, **options):
    """``||f_l(x) - f_l(c)|| / ||f_l(c)||``: the judge's feature distance relative to the content.

    ``f_l`` are the judge's activations (all positions and channels), ``||.||`` the L2 norm
    (``norm="l2"``, the default) or the L1 norm (``"l1"``). The pictures must have the content
    image's size. ``options``: ``norm``, ``per_layer`` (see :func:`judged_distance`).
    """
    return judged_distance(judge, images, content, layers, **{"norm": "l2", **options})


def judge_activations(judge: Backbone, images: Any, layers: Sequence[str]) -> dict[str, jax.Array]:
    """The judge's activations of ``images`` (a picture or a batch) at ``layers``."""
    return content_targets(judge, _batched(images)[0], tuple(layers))


def judged_distance(
    judge: Backbone,
    images: Any,
    reference: Any,
    layers: Sequence[str],
    *,
    norm: str,
    gram_of: bool = False,
    per_layer: bool = False,
    activations: Mapping[str, jax.Array] | None = None,
) -> float | np.ndarray | dict[str, float | np.ndarray]:
    """The judge's distance at ``layers`` from ``reference`` (its Grams with ``gram_of``),
    relative to the reference's: the mean over layers (one value per image), or
    ``{layer: distance}`` with ``per_layer``. ``activations``: the judge's
    :func:`judge_activations` of ``images``, when the caller has them (one forward pass serves
    the style and the content distance)."""
    batch, single = _batched(images)
    layers = tuple(layers)
    if gram_of:
        targets = style_targets(judge, reference, layers)
    else:
        targets = content_targets(judge, reference, layers)
    acts = judge_activations(judge, batch, layers) if activations is None else activations
    if norm not in DISTANCE_NORMS:
        raise UserError(f"unknown norm {norm!r}: choose 'l1' or 'l2'")
    distances = {}
    for layer in layers:
        if not gram_of and acts[layer].shape[1:] != targets[layer].shape[1:]:
            raise UserError(
                f"content distance at {layer!r}: the pictures give {acts[layer].shape[1:]} but "
                f"the content image {targets[layer].shape[1:]}; render at the content image's size"
            )
        distance = _layer_distance(acts[layer], targets[layer], norm, gram_of)
        distances[layer] = _unbatched(distance, single)
    return distances if per_layer else _layer_mean(distances)


@functools.partial(jax.jit, static_argnames=("norm", "gram_of"))
def _layer_distance(
    activations: jax.Array, target: jax.Array, norm: str, gram_of: bool
) -> jax.Array:
    """One layer's relative distance per image, as one program: eagerly, each of its operations
    would compile a program of its own in every new process."""
    value = gram(activations) if gram_of else activations
    return _relative_distance(value - target, target, norm)


# ---------------------------------------------------------------------------------------------
# robustness of an activation-maximising picture


def random_shift(max_shift: float, *, mode: str = "mirror") -> Transform:
    """Translate the content by ``(dy, dx) ~ U(-max_shift, max_shift)^2`` px, bilinearly.

    Sub-pixel shifts (unlike :func:`paramviz.transforms.jitter`'s integer crops) keep the canvas
    size;
    borders are filled by ``jax.scipy.ndimage.map_coordinates``'s ``mode`` (``"mirror"``:
    reflected about the edge pixels, like ``jnp.pad(mode="reflect")``). One draw per batch.
    """

    def shifted(key: jax.Array, images: jax.Array) -> jax.Array:
        n, h, w, c = images.shape
        dy, dx = jax.random.uniform(key, (2,), minval=-max_shift, maxval=max_shift)
        rows, cols = jnp.meshgrid(jnp.arange(h) - dy, jnp.arange(w) - dx, indexing="ij")

        def sample(plane: jax.Array) -> jax.Array:
            return jax.scipy.ndimage.map_coordinates(plane, [rows, cols], order=1, mode=mode)

        planes = jnp.moveaxis(images, -1, 1).reshape(n * c, h, w)
        return jnp.moveaxis(jax.vmap(sample)(planes).reshape(n, c, h, w), 1, -1)

    return shifted


HELD_OUT_SCALES: tuple[float, ...] = (0.8, 0.85, 1.15, 1.2)
"""Zooms outside the ``standard`` preset's 0.90-1.10."""
HELD_OUT_ANGLES: tuple[float, ...] = (-25, -20, -15, 15, 20, 25)
"""Rotations (degrees) outside the ``standard`` preset's +-10."""

HELD_OUT: Transform = compose(
    random_scale(HELD_OUT_SCALES, fill="reflect"),
    random_rotate(HELD_OUT_ANGLES, fill="reflect"),
    random_shift(8.0),
)
"""Transforms no preset uses: larger zooms and rotations, continuous shifts up to 8 px.

Reflected borders (no grey frame that would itself change the objective); the size is kept."""


@dataclasses.dataclass(frozen=True)
class Robustness:
    """:func:`transfer_robustness`: objective values on the picture and on its transformed copies.

    ``ratio = mean(transformed) / untransformed``, ``worst = min(transformed) / untransformed``.
    """

    ratio: float
    worst: float
    untransformed: float
    transformed: np.ndarray


def transfer_robustness(
    objective: Objective,
    backbone: Backbone,
    images: Any,
    key: jax.Array,
    transforms: Transform = HELD_OUT,
    n: int = 16,
    backbones: Mapping[str, Backbone] | None = None,
) -> Robustness:
    """The objective under ``n`` random draws of ``transforms``, relative to its plain value.

    ``v_0 = objective(features(x))`` with ``"input"`` = ``"image"`` = the picture ``x``;
    ``v_i = objective(features(T_i(x)))`` with ``"input"`` = ``T_i(x)`` and ``"image"`` = ``x``,
    ``T_i`` drawn with ``fold_in(key, i)`` (features as render builds them, networks ``"main"`` =
    ``backbone`` plus ``backbones``). A picture whose feature only exists for one exact pixel
    layout is a non-robust feature: ``ratio`` well below 1. Meaningful for objectives whose value
    is positive on the picture (activations, logits); ``v_0 = 0`` gives inf or NaN.
    """
    if n < 1:
        raise UserError(f"transfer_robustness needs n >= 1 transformed copies, got {n}")
    networks = {MAIN: backbone, **dict(backbones or {})}
    layers = required_layers(objective, networks)
    batch, _ = _batched(images)
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(n))

    @xla.jit
    def values(nets: Mapping[str, Backbone], image: jax.Array, draws: jax.Array):
        base = objective(network_features(nets, layers, image, image))
        moved = jax.lax.map(
            lambda k: objective(network_features(nets, layers, image, transforms(k, image))), draws
        )
        return base, moved

    base, moved = values({name: networks[name] for name in layers}, batch, keys)
    base, moved = float(base), np.asarray(moved, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = moved / base
    return Robustness(float(np.mean(ratios)), float(np.min(ratios)), base, moved)


# ---------------------------------------------------------------------------------------------
# recognition by an independent classifier


@dataclasses.dataclass(frozen=True)
class Recognition:
    """:func:`top_k_recognised`: per-image ``ranks`` (0 = top-1), ``hits`` and their ``rate``."""

    hits: np.ndarray
    ranks: np.ndarray
    rate: float
    k: int


def judge_logits(judge: Backbone | Callable[[jax.Array], Any], images: Any) -> np.ndarray:
    """``(N, classes)`` logits: a Backbone's ``"logits"`` layer, or ``judge(images)``."""
    batch, _ = _batched(images)
    if isinstance(judge, Backbone):
        return np.asarray(content_targets(judge, batch, ("logits",))["logits"])
    return np.asarray(judge(jnp.asarray(batch)))


def top_k_recognised(
    judge: Backbone | Callable[[jax.Array], Any],
    images: Any,
    classes: int | Sequence[int],
    k: int = 5,
) -> Recognition:
    """Whether the judge puts each picture's intended class among its top ``k``.

    ``rank_i = #{j : z_ij > z_i,c_i}`` (the number of classes with a strictly larger logit, so ties
    count in the picture's favour); ``hit_i = rank_i < k``; ``rate`` = mean of the hits. ``classes``
    is one class for every picture or one per picture.
    """
    logits = judge_logits(judge, images)
    if logits.ndim != 2:
        raise UserError(f"the judge must give (N, classes) logits, got shape {logits.shape}")
    count, num_classes = logits.shape
    wanted = np.broadcast_to(np.asarray(classes, int), (count,))
    if np.any((wanted < 0) | (wanted >= num_classes)):
        raise UserError(f"classes {wanted.tolist()} out of range for {num_classes} logits")
    if k < 1:
        raise UserError(f"k must be >= 1, got {k}")
    target = logits[np.arange(count), wanted][:, None]
    ranks = np.sum(logits > target, axis=1)
    hits = ranks < k
    return Recognition(hits=hits, ranks=ranks, rate=float(np.mean(hits)), k=k)


# ---------------------------------------------------------------------------------------------
# artefacts of a network's strides


def stride_periods(backbone, layers: Sequence[str], size: int) -> tuple[int, ...]:
    """The downsampling periods (px) of the network up to its deepest layer in ``layers``.

    Checkerboard artefacts of a strided network repeat at these periods (Nakano; Odena et al.).
    """
    names = backbone.layer_names[: max(backbone.layer_names.index(layer) for layer in layers) + 1]
    images = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
    shapes = jax.eval_shape(lambda x: backbone(x, names), images)
    periods = {
        round(size / shape.shape[1])
        for shape in shapes.values()
        if len(shape.shape) == 4 and 0 < shape.shape[1] < size
    }
    return tuple(sorted(p for p in periods if p >= 2)) or STRIDE_PERIODS


def spectral_metrics(images: np.ndarray, periods: Sequence[int]) -> dict[str, float]:
    """High-frequency ratio, spectrum slope and checkerboard energy (means over a batch)."""
    return {
        "high_frequency_ratio": float(np.mean(high_frequency_ratio(images))),
        "spectrum_slope": float(np.mean(spectrum_slope(images))),
        "checkerboard": float(np.nanmean(checkerboard_energy(images, periods).summary)),
    }
