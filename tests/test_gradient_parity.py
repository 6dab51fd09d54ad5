"""The gradient a render follows is PyTorch's: input gradients of converted networks match autograd.

Render differentiates with respect to the image only, through the fast paths that replace XLA's
defaults (1×1 convolutions as matrix products, max pools with a mask backward that routes each
window's gradient to its first maximum, as PyTorch does, and spatial convolutions whose input
gradient uses a flipped kernel made once per render). A weighted sum of one layer's
activations is differentiated on both sides; tolerance: max |Δ| ≤ 1e-4 × max |torch gradient|.
Past ResNet-50's ``layer2`` a few pre-activations sit within float rounding of zero and their ReLU
passes the gradient on one side and not the other (also before these fast paths: 7.6e-3 at
``layer3``); there the two gradients must still point the same way (cosine ≥ 0.9999; measured
0.999988).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch_reference as reference

from paramviz import objectives
from paramviz.backbones import ops
from paramviz.backbones.base import INPUT_GRAD
from paramviz.weights import mapping

TOLERANCE = 1e-4
CASES = {
    "resnet50": ("resnet50", "layer2", (64, 72)),
    "resnet50-deep": ("resnet50", "layer3", (64, 72)),
    "resnet18": ("resnet18", "layer4", (80, 64)),
    "sequential": ("sequential", "relu3", (41, 44)),
}
# VGG's 2×2 and AlexNet's unpadded 3×3/2 pools, a padded 3×3/2 pool, strided 1×1 convolutions
SPEC = "conv8k3p1,relu,maxpool2,conv12k1,relu,maxpool3s2,conv16k1s2,relu,maxpool3s2p1"


@functools.cache
def converted(arch: str, size: tuple[int, int]):
    """The reference model and its conversion (built once for the cases that share them)."""
    options = {"spec": SPEC} if arch == "sequential" else {}
    model = reference.build(arch, seed=1, input_size=size, **options)
    return model, mapping.convert(arch, reference.state_dict_numpy(model), **options)


@pytest.mark.parametrize("prepared", [False, True], ids=["plain", "render-kernels"])
@pytest.mark.parametrize("case", list(CASES))
def test_input_gradient_matches_pytorch_autograd(case, prepared):
    arch, layer, size = CASES[case]
    model, backbone = converted(arch, size)
    if prepared:  # as render runs it: the flipped kernels made once, all weights arguments
        backbone = backbone.for_image_gradients()
        assert INPUT_GRAD in backbone.variables
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(2, *size, 3)).astype(np.float32)
    normalised = (images - np.float32(backbone.module.mean)) / np.float32(backbone.module.std)
    shape = backbone.features(images, [layer])[layer].shape
    weights = rng.normal(size=shape).astype(np.float32)

    def weighted(x, net):
        return jnp.sum(net(x, [layer])[layer] * weights)

    ours = jax.jit(jax.grad(weighted))(images, backbone)
    module = reference.tap_modules(model, arch)[layer]
    captured = {}
    handle = module.register_forward_hook(lambda _m, _i, out: captured.__setitem__("out", out))
    x = torch.from_numpy(normalised.transpose(0, 3, 1, 2).copy()).requires_grad_(True)
    model(x)
    handle.remove()
    out = captured["out"]
    target = torch.from_numpy(weights.transpose(0, 3, 1, 2) if weights.ndim == 4 else weights)
    (out * target).sum().backward()
    std = np.float32(backbone.module.std)
    theirs = x.grad.numpy().transpose(0, 2, 3, 1) / std  # d/d(images) = d/d(normalised) / std
    ours = np.asarray(ours)
    if case.endswith("-deep"):
        cosine = np.sum(ours * theirs) / np.linalg.norm(ours) / np.linalg.norm(theirs)
        assert cosine > 1 - 1e-4, f"{case}: cosine {cosine}"
    else:
        error = np.abs(ours - theirs).max() / np.abs(theirs).max()
        assert error < TOLERANCE, f"{case}: {error:.2e}"


@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "size"),
    [(3, 1, 1, 9), (3, 2, 1, 10), (3, 2, 0, 13), (7, 2, 3, 11), (11, 4, 2, 31), (5, 1, 2, 8)],
)
def test_flipped_kernel_gives_the_gradients_of_xla_s_own_transpose(kernel, stride, padding, size):
    """Both gradients, to the input and to the kernel, at odd and even sizes where a stride
    leaves the last rows out of every window."""
    rng = np.random.default_rng(kernel * stride + size)
    x = jnp.asarray(rng.normal(size=(2, size, size + 1, 3)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(kernel, kernel, 3, 4)), jnp.float32)

    def energy(x, w, flipped):
        return jnp.sum(ops.conv2d(x, w, stride, padding, flipped) ** 2)

    plain = jax.grad(energy, (0, 1))(x, w, None)
    prepared = jax.grad(energy, (0, 1))(x, w, ops.input_grad_kernel(w))
    for ours, xla in zip(prepared, plain, strict=True):
        np.testing.assert_allclose(ours, xla, rtol=1e-5, atol=1e-5 * float(jnp.abs(xla).max()))


@pytest.mark.parametrize("shape", [(2, 9, 7, 5), (1, 16, 16, 64), (3, 6)], ids=str)
def test_the_gram_s_one_product_backward_is_autodiff_s(shape):
    """The style loss's Gram has its own backward; a dense ``(N, C)`` input counts as 1×1."""
    rng = np.random.default_rng(len(shape))
    x = jnp.asarray(rng.normal(size=shape), jnp.float32)
    target = jnp.asarray(rng.normal(size=(shape[-1], shape[-1])), jnp.float32)

    def autodiff_gram(t):
        t = t.reshape(t.shape[0], -1, t.shape[-1])
        return jnp.swapaxes(t, 1, 2) @ t / t.shape[1]

    def loss(gram_fn, t):
        return jnp.mean(jnp.abs(gram_fn(t) - target) ** 1.5)

    np.testing.assert_allclose(objectives.gram(x), autodiff_gram(x), rtol=1e-6, atol=1e-6)
    ours = jax.grad(functools.partial(loss, objectives.gram))(x)
    theirs = jax.grad(functools.partial(loss, autodiff_gram))(x)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6 * float(jnp.abs(theirs).max()))
