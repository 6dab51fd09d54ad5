"""Numerical building blocks with PyTorch semantics on NHWC arrays.

Every function here reproduces what the matching ``torch.nn`` layer computes in eval mode (the
checkpoints come from PyTorch), with static output shapes so that everything jit-compiles:

* :func:`relu` – ReLU, optionally with Lucid's redirected gradient (a ``jax.custom_vjp``);
  :func:`relu6` – ``ReLU6``, the same below 0.
* :func:`conv2d` – ``Conv2d``'s cross-correlation, with symmetric or TensorFlow ``SAME`` padding;
  :func:`input_grad_kernel` prepares, once, the flipped kernel its gradient to the input needs,
  so that a step does not flip it every time.
* :func:`depthwise_conv2d` – a ``Conv2d`` with ``groups`` = channels (one k×k filter per channel).
* :func:`max_pool` – ``MaxPool2d`` incl. ``ceil_mode`` and ``-inf`` padding; non-overlapping pools
  use a reshape-max and overlapping ones a max of shifted views, both with a backward that
  routes through an equality mask (faster than XLA's ``select_and_scatter``).
* :func:`avg_pool` – ``AvgPool2d`` incl. ``ceil_mode`` and ``count_include_pad``.
* :func:`adaptive_avg_pool` – ``AdaptiveAvgPool2d`` at any input size (torch's bin edges).
* :func:`batch_norm` – eval-mode ``BatchNorm2d`` (running statistics).
* :func:`reflect_pad`, :func:`flatten_chw` – ``ReflectionPad2d`` and ``torch.flatten`` of NCHW.

Sums over every pixel of a batch, which weight gradients need, are written as matrix-vector
products (:func:`channel_sums`): XLA:CPU's reductions over leading axes run several times slower.
"""

from __future__ import annotations

import functools
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

# --------------------------------------------------------------------------------------------- ReLU


def relu(x: jax.Array, redirect: jax.Array | float | None = None) -> jax.Array:
    """``max(x, 0)``; with ``redirect`` (a traced scalar, 1 = on) the backward pass is Lucid's.

    ``redirect=None`` is a plain ReLU (gradient 0 where ``x <= 0``, as in PyTorch).
    """
    if redirect is None:
        return jax.nn.relu(x)
    return _redirected_relu(x, jnp.asarray(redirect, dtype=x.dtype))


@jax.custom_vjp
def _redirected_relu(x: jax.Array, redirect: jax.Array) -> jax.Array:
    return jnp.maximum(x, 0)


def _redirected_relu_fwd(x, redirect):
    return jnp.maximum(x, 0), (x, redirect)


def _redirected_relu_bwd(residuals, g):
    """Lucid's ``RedirectedRelu`` gradient (lucid/misc/redirected_relu_grad.py).

    The cotangent ``g`` is d(loss)/d(output) of a loss being *minimised*. The ordinary gradient
    ``where(x < 0, 0, g)`` is used for every batch element it lets anything through; an element
    whose ordinary gradient is all zero instead gets ``g`` with only the entries that would push an
    already negative input further down (``x < 0 and g > 0``) removed, so dead units can revive.
    Lucid tests ``norm(relu_grad[b]) > 0``; "any entry non-zero" is the same test without the
    underflow of squaring tiny values.
    """
    x, redirect = residuals
    negative = x < 0
    relu_grad = jnp.where(negative, 0, g)
    redirected = jnp.where(negative & (g > 0), 0, g)
    batch_axes = tuple(range(1, g.ndim))
    gets_relu_grad = jnp.any(relu_grad != 0, axis=batch_axes, keepdims=True) | (redirect < 0.5)
    return jnp.where(gets_relu_grad, relu_grad, redirected), jnp.zeros_like(redirect)


_redirected_relu.defvjp(_redirected_relu_fwd, _redirected_relu_bwd)


def relu6(x: jax.Array, redirect: jax.Array | float | None = None) -> jax.Array:
    """``min(max(x, 0), 6)``: :func:`relu` (redirected alike) capped at 6, as ``nn.ReLU6``."""
    return jnp.minimum(relu(x, redirect), 6.0)


# ---------------------------------------------------------------------------------- convolution

_NHWC = ("NHWC", "HWIO", "NHWC")

Padding = int | str
"""A convolution's padding: ``p`` zeros on every side, or ``"same"``, TensorFlow's ``SAME``."""
Pads = tuple[tuple[int, int], tuple[int, int]]


def conv_pads(spatial: tuple[int, int], kernel: int, stride: int, padding: Padding) -> Pads:
    """``((top, bottom), (left, right))`` zeros for ``padding`` on an input of ``spatial`` size.

    ``"same"`` gives ``ceil(n / stride)`` outputs and puts the odd pixel after the input, as
    TensorFlow does (the EfficientNet-Lite checkpoints were trained that way): at stride 2 on an
    even size that is no padding before and one row after.
    """
    if padding == "same":
        return tuple(_same_pads(n, kernel, stride) for n in spatial)
    if not isinstance(padding, int):
        raise ValueError(f"padding is a number of pixels or 'same', not {padding!r}")
    return ((padding, padding), (padding, padding))


def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return (total // 2, total - total // 2)


def conv2d(
    x: jax.Array,
    kernel: jax.Array,
    stride: int,
    padding: Padding,
    flipped: jax.Array | None = None,
) -> jax.Array:
    """``nn.Conv2d`` without bias on NHWC input and an HWIO ``kernel``.

    ``flipped`` (``input_grad_kernel(kernel)``) is used by the gradient to ``x``. XLA cannot
    precompute it when the kernel is an argument of the compiled step rather than a constant,
    and would otherwise flip and transpose every kernel at every step.
    """
    pads = conv_pads(x.shape[1:3], kernel.shape[0], stride, padding)
    if flipped is None:
        return _correlate(x, kernel, stride, pads)
    return _conv_with_flipped(x, kernel, flipped, stride, pads)


def input_grad_kernel(kernel: jax.Array | np.ndarray) -> jax.Array:
    """The HWIO kernel whose correlation with an output gradient gives the input gradient.

    Made on the host with NumPy and moved with ``device_put``: a render makes these once, and
    that is quicker than compiling a program for it (``jnp.asarray`` too compiles a copy per new
    shape) in every new process.
    """
    flipped = np.swapaxes(np.flip(np.asarray(kernel), (0, 1)), 2, 3)
    return jax.device_put(np.ascontiguousarray(flipped))


def _correlate(x, kernel, stride, pads, dilation=1):
    return lax.conv_general_dilated(
        x,
        kernel,
        (stride, stride),
        pads,
        lhs_dilation=(dilation, dilation),
        dimension_numbers=_NHWC,
    )


@partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _conv_with_flipped(x, kernel, flipped, stride, pads):
    return _correlate(x, kernel, stride, pads)


def _conv_with_flipped_fwd(x, kernel, flipped, stride, pads):
    return _correlate(x, kernel, stride, pads), (x, kernel, flipped)


def _conv_with_flipped_bwd(stride, pads, residuals, g):
    """The input gradient correlates the stride-dilated ``g`` with ``flipped``; the kernel's
    gradient is JAX's own (and is dropped by the compiler when only the input's is used).
    Only the padding before the input enters: the padding after it only set ``g``'s size."""
    x, kernel, flipped = residuals
    size = kernel.shape[0]
    grad_pads = [
        (size - 1 - before, n - 1 - (m - 1) * stride + before)
        for n, m, (before, _) in zip(x.shape[1:3], g.shape[1:3], pads, strict=True)
    ]
    dx = _correlate(g, flipped, 1, grad_pads, dilation=stride)
    _, kernel_vjp = jax.vjp(lambda k: _correlate(x, k, stride, pads), kernel)
    return dx, *kernel_vjp(g), jnp.zeros_like(flipped)


_conv_with_flipped.defvjp(_conv_with_flipped_fwd, _conv_with_flipped_bwd)


def depthwise_conv2d(x: jax.Array, kernel: jax.Array, stride: int, padding: Padding) -> jax.Array:
    """``nn.Conv2d(C, C, k, groups=C)`` without bias: NHWC input, kernel ``(k, k, 1, C)``.

    Written as the sum of the k² strided shifts of the padded input, each times one weight per
    channel: XLA:CPU's grouped convolution (``feature_group_count=C``) runs these layers several
    times slower forward and to the input (benchmarks/README.md), while the shifts are plain
    elementwise work that XLA fuses. The gradients are written out too (:func:`_depthwise_bwd`):
    the input's as a correlation, the kernel's, k² sums over every pixel, as a matrix-vector
    product per shift (XLA:CPU's reductions over the leading axes are several times slower).
    """
    pads = conv_pads(x.shape[1:3], kernel.shape[0], stride, padding)
    return _depthwise(x, kernel, stride, pads)


def _shifts(x: jax.Array, size: int, stride: int, pads: Pads, out: tuple[int, int]) -> list:
    """The k² strided views of the zero-padded input, one per kernel tap, each ``out`` large."""
    n, _, _, channels = x.shape
    padded = jnp.pad(x, ((0, 0), *pads, (0, 0)))
    span = [stride * (o - 1) + 1 for o in out]
    return [
        lax.slice(
            padded, (0, i, j, 0), (n, i + span[0], j + span[1], channels), (1, stride, stride, 1)
        )
        for i in range(size)
        for j in range(size)
    ]


def _depthwise_out(x: jax.Array, size: int, stride: int, pads: Pads) -> tuple[int, int]:
    return tuple(
        (n + before + after - size) // stride + 1
        for n, (before, after) in zip(x.shape[1:3], pads, strict=True)
    )


@partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _depthwise(x, kernel, stride, pads):
    size = kernel.shape[0]
    views = _shifts(x, size, stride, pads, _depthwise_out(x, size, stride, pads))
    weights = kernel.reshape(size * size, -1)
    return functools.reduce(jnp.add, (view * w for view, w in zip(views, weights, strict=True)))


def _depthwise_fwd(x, kernel, stride, pads):
    return _depthwise(x, kernel, stride, pads), (x, kernel)


def _depthwise_bwd(stride, pads, residuals, g):
    """The input's gradient correlates the stride-dilated ``g`` with the flipped kernel, k²
    shifts again (:func:`_depthwise_input_grad`); the kernel's is the :func:`channel_sums` of
    ``view * g`` per tap.

    JAX's own transpose of the shifts (k² padded copies of ``g``, summed) is as quick on a
    ``g`` that is already in memory, but inside a network ``g`` is computed (an activation's
    gradient), and XLA:CPU fuses that computation into the k² padded copies: EfficientNet-Lite0's
    input gradient to ``block6`` at 224 px took 52 ms that way and takes 21.5 ms this way (its
    forward pass: 8 ms)."""
    x, kernel = residuals
    size = kernel.shape[0]
    views = _shifts(x, size, stride, pads, g.shape[1:3])
    dx = _depthwise_input_grad(g, kernel, stride, pads, x.shape[1:3])
    dkernel = jnp.stack([channel_sums(view * g) for view in views])
    return dx, dkernel.reshape(kernel.shape)


def _depthwise_input_grad(g, kernel, stride, pads, spatial):
    """``g`` spread to the input's grid (``stride - 1`` zeros between its pixels), padded so
    that correlating it with the flipped kernel gives exactly the input's size."""
    size = kernel.shape[0]
    edges = []
    for n, m, (before, _) in zip(spatial, g.shape[1:3], pads, strict=True):
        low = size - 1 - before
        edges.append((low, n + size - 1 - low - ((m - 1) * stride + 1), stride - 1))
    spread = lax.pad(g, jnp.zeros((), g.dtype), ((0, 0, 0), *edges, (0, 0, 0)))
    flipped = kernel[::-1, ::-1]
    return functools.reduce(
        jnp.add,
        (
            spread[:, i : i + spatial[0], j : j + spatial[1]] * flipped[i, j, 0]
            for i in range(size)
            for j in range(size)
        ),
    )


_depthwise.defvjp(_depthwise_fwd, _depthwise_bwd)


# --------------------------------------------------------------------------------------- pooling


def pooled_size(size: int, window: int, stride: int, padding: int, ceil_mode: bool) -> int:
    """PyTorch's pooling output length (a ceil-mode window must start inside input or left pad)."""
    span = size + 2 * padding - window
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def _high_padding(size: int, window: int, stride: int, padding: int, ceil_mode: bool) -> int:
    """Padding after the input so that a window sweep gives exactly PyTorch's output length."""
    out = pooled_size(size, window, stride, padding, ceil_mode)
    return max(padding, (out - 1) * stride + window - size - padding)


def max_pool(
    x: jax.Array, window: int, stride: int, padding: int = 0, ceil_mode: bool = False
) -> jax.Array:
    """``nn.MaxPool2d(window, stride, padding, ceil_mode=...)`` on NHWC; padding counts as -inf."""
    if window == stride and padding == 0:
        return _block_max(_fit_to_blocks(x, window, ceil_mode, -jnp.inf), window)
    out = tuple(pooled_size(n, window, stride, padding, ceil_mode) for n in x.shape[1:3])
    if min(out) < 1:  # the input is smaller than one window: an empty output, named by the caller
        return jnp.zeros((x.shape[0], *(max(o, 0) for o in out), x.shape[3]), x.dtype)
    pads = tuple(_window_pads(x.shape[1:3], window, stride, padding, ceil_mode))
    return _window_max(x, window, stride, pads, out)


def _window_views(x, window, stride, pads, out) -> list[jax.Array]:
    """The ``window``² strided views of the -inf-padded input, one per window position, each
    of the output's shape (row-major window order)."""
    n, _, _, c = x.shape
    padded = jnp.pad(x, ((0, 0), *pads, (0, 0)), constant_values=-jnp.inf)
    limit = tuple(stride * (o - 1) + 1 for o in out)
    return [
        lax.slice(padded, (0, i, j, 0), (n, i + limit[0], j + limit[1], c), (1, stride, stride, 1))
        for i in range(window)
        for j in range(window)
    ]


@partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3, 4))
def _window_max(x, window, stride, pads, out):
    """Max over overlapping windows as an elementwise max of shifted views; its backward is a
    mask, not XLA's ``select_and_scatter`` (5x faster for ResNet's 3×3/2 pool on CPU)."""
    return functools.reduce(jnp.maximum, _window_views(x, window, stride, pads, out))


def _window_max_fwd(x, window, stride, pads, out):
    y = _window_max(x, window, stride, pads, out)
    return y, (x, y)


def _window_max_bwd(window, stride, pads, out, residuals, g):
    """Each window's gradient goes to its first maximum in row-major order, as PyTorch's."""
    x, y = residuals
    taken = jnp.zeros(y.shape, bool)
    routed = []
    for view in _window_views(x, window, stride, pads, out):
        hit = (view == y) & ~taken
        taken = taken | hit
        routed.append(jnp.where(hit, g, 0))
    _, scatter = jax.vjp(lambda z: _window_views(z, window, stride, pads, out), x)
    return scatter(routed)


_window_max.defvjp(_window_max_fwd, _window_max_bwd)


def _window_pads(spatial, window, stride, padding, ceil_mode):
    return [(padding, _high_padding(n, window, stride, padding, ceil_mode)) for n in spatial]


def _fit_to_blocks(x: jax.Array, block: int, ceil_mode: bool, fill: float) -> jax.Array:
    """Crop (floor mode) or pad with ``fill`` (ceil mode) H and W to multiples of ``block``."""
    _, h, w, _ = x.shape
    if ceil_mode:
        extra_h, extra_w = -h % block, -w % block
        if extra_h or extra_w:
            x = jnp.pad(x, ((0, 0), (0, extra_h), (0, extra_w), (0, 0)), constant_values=fill)
        return x
    return x[:, : h - h % block, : w - w % block]


def _blocks(x: jax.Array, k: int) -> jax.Array:
    n, h, w, c = x.shape
    return x.reshape(n, h // k, k, w // k, k, c)


@partial(jax.custom_vjp, nondiff_argnums=(1,))
def _block_max(x: jax.Array, k: int) -> jax.Array:
    """Max over non-overlapping k×k blocks (H, W multiples of k)."""
    return _blocks(x, k).max(axis=(2, 4))


def _block_max_fwd(x, k):
    y = _block_max(x, k)
    return y, (x, y)


def _block_max_bwd(k, residuals, g):
    """Send each window's gradient to its first maximum in row-major order, as PyTorch does."""
    x, y = residuals
    hits = _blocks(x, k) == y[:, :, None, :, None, :]
    if k > 1:
        earlier_row = _exclusive_any(jnp.any(hits, axis=4, keepdims=True), axis=2)
        earlier_in_row = _exclusive_any(hits, axis=4)
        hits = hits & ~earlier_row & ~earlier_in_row
    grad = jnp.where(hits, g[:, :, None, :, None, :], 0)
    return (grad.reshape(x.shape),)


_block_max.defvjp(_block_max_fwd, _block_max_bwd)


def _exclusive_any(mask: jax.Array, axis: int) -> jax.Array:
    """``out[i] = any(mask[:i])`` along a short axis (window positions), by shifted ORs."""
    size = mask.shape[axis]
    running = jnp.zeros_like(lax.index_in_dim(mask, 0, axis))
    parts = [running]
    for i in range(size - 1):
        running = running | lax.index_in_dim(mask, i, axis)
        parts.append(running)
    return jnp.concatenate(parts, axis=axis)


def avg_pool(
    x: jax.Array,
    window: int,
    stride: int,
    padding: int = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> jax.Array:
    """``nn.AvgPool2d`` on NHWC, including PyTorch's divisor at padded and ceil-mode edges."""
    _, h, w, _ = x.shape
    if window == stride and padding == 0 and not ceil_mode:
        return _blocks(_fit_to_blocks(x, window, False, 0.0), window).mean(axis=(2, 4))
    pads = _window_pads((h, w), window, stride, padding, ceil_mode)
    summed = lax.reduce_window(
        x, 0.0, lax.add, (1, window, window, 1), (1, stride, stride, 1), [(0, 0), *pads, (0, 0)]
    )
    rows = _avg_divisors(h, window, stride, padding, ceil_mode, count_include_pad)
    cols = _avg_divisors(w, window, stride, padding, ceil_mode, count_include_pad)
    divisor = np.outer(rows, cols).astype(np.float32)[None, :, :, None]
    return summed / divisor


def _avg_divisors(size, window, stride, padding, ceil_mode, count_include_pad) -> np.ndarray:
    """Per-output-position element counts, exactly as ``avg_pool2d``'s CPU kernel computes them."""
    out = pooled_size(size, window, stride, padding, ceil_mode)
    start = np.arange(out) * stride - padding
    end = np.minimum(start + window, size + padding)
    if count_include_pad:
        return end - start
    return np.minimum(end, size) - np.maximum(start, 0)


def adaptive_avg_pool(x: jax.Array, output_size: tuple[int, int]) -> jax.Array:
    """``nn.AdaptiveAvgPool2d`` on NHWC at any input size.

    Bin i spans ``[floor(i·H/out), ceil((i+1)·H/out))``, so bins may overlap or repeat pixels when
    the input is smaller than the output. Uniform bins use a reshape-mean, others a small matrix.
    """
    _, h, w, _ = x.shape
    out_h, out_w = output_size
    if (h, w) == (out_h, out_w):
        return x
    if h % out_h == 0 and w % out_w == 0:
        return x.reshape(x.shape[0], out_h, h // out_h, out_w, w // out_w, x.shape[3]).mean((2, 4))
    rows = jnp.asarray(adaptive_bins(h, out_h), dtype=x.dtype)
    cols = jnp.asarray(adaptive_bins(w, out_w), dtype=x.dtype)
    return jnp.einsum("ih,jw,nhwc->nijc", rows, cols, x)


def adaptive_bins(size: int, out: int) -> np.ndarray:
    """(out, size) averaging matrix with PyTorch's adaptive pooling bin edges."""
    matrix = np.zeros((out, size), dtype=np.float64)
    for i in range(out):
        start = (i * size) // out
        end = -(-((i + 1) * size) // out)
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix


# ------------------------------------------------------------------------------ batch norm


def channel_sums(x: jax.Array) -> jax.Array:
    """``x.sum(axis=(0, 1, 2))`` of NHWC ``x`` as ``ones @ x.reshape(-1, C)``: XLA:CPU runs the
    product on every core, and its reduction over the leading axes several times slower."""
    channels = x.shape[-1]
    return jnp.ones((x.size // channels,), x.dtype) @ x.reshape(-1, channels)


def batch_norm(
    x: jax.Array,
    scale: jax.Array,
    bias: jax.Array,
    mean: jax.Array,
    var: jax.Array,
    epsilon: float,
) -> jax.Array:
    """Eval-mode ``BatchNorm2d``: ``(x - mean) / sqrt(var + eps) * scale + bias`` over the last
    axis, as one multiply-add per value."""
    multiplier = scale * lax.rsqrt(var + epsilon)
    return _channel_affine(x, multiplier, bias - mean * multiplier)


@jax.custom_vjp
def _channel_affine(x, multiplier, offset):
    return x * multiplier + offset


def _channel_affine_fwd(x, multiplier, offset):
    return _channel_affine(x, multiplier, offset), (x, multiplier)


def _channel_affine_bwd(residuals, g):
    """The per-channel gradients are :func:`channel_sums` (they train batch norms)."""
    x, multiplier = residuals
    return g * multiplier, _to_channels(g * x), _to_channels(g)


def _to_channels(x: jax.Array) -> jax.Array:
    return channel_sums(x) if x.ndim > 1 else x


_channel_affine.defvjp(_channel_affine_fwd, _channel_affine_bwd)


# ------------------------------------------------------------------------------------ reshaping


def reflect_pad(x: jax.Array, padding: int) -> jax.Array:
    """``nn.ReflectionPad2d(padding)`` on NHWC (edge pixel not repeated)."""
    return jnp.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)), mode="reflect")


def flatten_chw(x: jax.Array) -> jax.Array:
    """``torch.flatten(x, 1)`` of the NCHW tensor that the NHWC ``x`` stands for.

    Flattening in C, H, W order keeps PyTorch's first linear layer usable with a plain transpose.
    """
    if x.ndim == 2:
        return x
    return jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], -1)
