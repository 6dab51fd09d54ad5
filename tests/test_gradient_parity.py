"""The gradient a render follows is PyTorch's: input gradients of converted networks match autograd.

Render differentiates with respect to the image only, through the fast paths that replace XLA's
defaults (1×1 convolutions as matrix products, max pools with a mask backward that routes each
window's gradient to its first maximum, as PyTorch does). A weighted sum of one layer's
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

from weights import mapping

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


@pytest.mark.parametrize("case", list(CASES))
def test_input_gradient_matches_pytorch_autograd(case):
    arch, layer, size = CASES[case]
    model, backbone = converted(arch, size)
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(2, *size, 3)).astype(np.float32)
    normalised = (images - np.float32(backbone.module.mean)) / np.float32(backbone.module.std)
    shape = backbone.features(images, [layer])[layer].shape
    weights = rng.normal(size=shape).astype(np.float32)

    ours = jax.grad(lambda x: jnp.sum(backbone(x, [layer])[layer] * weights))(images)
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
