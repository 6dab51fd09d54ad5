"""The two real pretrained checkpoints convert and match PyTorch on real photographs.

Both files are float16; both sides compute in float32 from the same fp16-rounded weights.
"""

from __future__ import annotations

import jax
import numpy as np
import torch
import torch_reference as reference
from PIL import Image
from skimage import data
from torch import nn

from paramviz import backbones
from paramviz.weights import mapping

TOLERANCE = 1e-4
CIFAR_SPEC = "conv16k4s2p1,relu,conv32k4s2p1,relu,flatten,linear100,relu,linear10"
CIFAR_CONVENTION = {"mean": (0.485, 0.456, 0.406), "std": (0.225, 0.225, 0.225)}


def load_float32(path) -> dict[str, torch.Tensor]:
    state_dict = torch.load(path, weights_only=True)
    return {key: value.float() for key, value in state_dict.items()}


def test_normalised_vgg_trunk_matches_pytorch_on_astronaut(shared_weights, tmp_path):
    state_dict = load_float32(shared_weights / "vgg_normalised_conv3_1.fp16.pth")
    assert mapping.detect_arch(state_dict) == "vgg19_normalised"
    backbone = mapping.convert("vgg19_normalised", {k: v.numpy() for k, v in state_dict.items()})
    backbones.save(tmp_path / "vgg.safetensors", backbone, source="vgg_normalised_conv3_1.pth")
    backbone = backbones.load(tmp_path / "vgg.safetensors")
    assert backbone.layer_names[-1] == "relu3_1"

    model = reference.normalised_vgg19()[:18].eval()  # up to relu3_1 (index 17)
    model.load_state_dict(state_dict)
    image = (data.astronaut()[:256, 128:384] / 255.0).astype(np.float32)[None]
    theirs = reference.taps(model, "vgg19_normalised", image)
    assert tuple(theirs) == backbone.layer_names
    ours = jax.jit(lambda b, x: b(x, backbone.layer_names))(backbone, image)
    errors = reference.relative_errors(ours, theirs)
    print(f"\nreal vgg_normalised_conv3_1 256x256: worst relative error {max(errors.values()):.2e}")
    assert max(errors.values()) <= TOLERANCE, errors
    # The "normalised" VGG rescales filters so that mean activations are about 1 on photos:
    # a wrong channel order or input scale in the preprocess layer would break this.
    for layer in ("relu1_1", "relu2_1", "relu3_1"):
        channel_means = np.asarray(ours[layer]).mean(axis=(0, 1, 2))
        assert 0.2 < np.median(channel_means) < 5.0, (layer, np.median(channel_means))


def cifar_model() -> nn.Sequential:
    """The network of Wong et al. 2018 (cifar_small_8px), written out as in its source."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 4, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 4, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(32 * 8 * 8, 100), nn.ReLU(), nn.Linear(100, 10),
    ).eval()  # fmt: skip


def test_cifar_robust_model_matches_pytorch_on_chelsea(shared_weights, tmp_path):
    state_dict = load_float32(shared_weights / "cifar_small_8px.stage0.fp16.pth")
    options = {"spec": CIFAR_SPEC, "input_size": (32, 32), **CIFAR_CONVENTION}
    backbone = mapping.convert(
        "sequential", {k: v.numpy() for k, v in state_dict.items()}, **options
    )
    backbones.save(tmp_path / "cifar.safetensors", backbone)
    backbone = backbones.load(tmp_path / "cifar.safetensors")

    model = cifar_model()
    model.load_state_dict(state_dict)
    chelsea = Image.fromarray(data.chelsea()).resize((32, 32), Image.Resampling.BILINEAR)
    image = (np.asarray(chelsea, np.float32) / 255.0)[None]
    normalised = (image - np.float32(CIFAR_CONVENTION["mean"])) / np.float32(
        CIFAR_CONVENTION["std"]
    )
    theirs = reference.taps(model, "sequential", normalised.astype(np.float32))
    assert tuple(theirs) == backbone.layer_names
    ours = jax.jit(lambda b, x: b(x, backbone.layer_names))(backbone, image)
    errors = reference.relative_errors(ours, theirs)
    top = np.argsort(-np.asarray(ours["logits"][0]))[:3]
    print(f"\nreal cifar_small_8px 32x32: worst relative error {max(errors.values()):.2e}, "
          f"top-3 classes {top.tolist()} (3 = cat)")  # fmt: skip
    assert max(errors.values()) <= TOLERANCE, errors
