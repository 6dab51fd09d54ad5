"""Converted backbones reproduce the PyTorch reference layer by layer.

Path under test: torch state_dict → ``torch.save`` → ``torch.load(weights_only=True)`` →
``paramviz.weights.mapping`` → ``.safetensors`` (store.save/load) → Flax forward, compared on every
tap at 224×224 and at a non-square, non-224 size. Tolerance: max |Δ| ≤ 1e-4 × the layer's max
|value|.
"""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
import torch
import torch_reference as reference

from paramviz import backbones
from paramviz.errors import UserError
from paramviz.weights import mapping

TOLERANCE = 1e-4
CONV_SPEC = "conv8k3s1p1,relu,maxpool2,conv16k3s2p1,bn,relu,avgpool3s2p1,conv10k1,maxpool3s2p1"
CIFAR_SPEC = "conv16k4s2p1,relu,conv32k4s2p1,relu,flatten,linear100,relu,linear10"

# case id: (arch, options, sizes); each case is built and converted once.
CASES = {
    "vgg16": ("vgg16", {}, [(224, 224), (97, 131)]),
    "vgg19": ("vgg19", {}, [(224, 224), (97, 131)]),
    "vgg16_bn": ("vgg16_bn", {}, [(224, 224), (97, 131)]),
    "vgg19_avgpool": ("vgg19", {"pooling": "avg"}, [(97, 131)]),
    "alexnet": ("alexnet", {}, [(224, 224), (97, 131), (63, 70)]),
    "resnet18": ("resnet18", {}, [(224, 224), (97, 131)]),
    "resnet50": ("resnet50", {}, [(224, 224), (97, 131)]),
    "vgg19_normalised": ("vgg19_normalised", {}, [(224, 224), (97, 131)]),
    "sequential_conv": ("sequential", {"spec": CONV_SPEC}, [(224, 224), (97, 131)]),
    "sequential_cifar": ("sequential", {"spec": CIFAR_SPEC, "input_size": [32, 32]}, [(32, 32)]),
}
WORST: dict[str, dict[str, float]] = {}


def convert_through_files(model, arch: str, options: dict, folder) -> tuple[dict, object]:
    """The user's path: torch.save → torch.load(weights_only) → mapping → .safetensors → load."""
    torch.save(model.state_dict(), folder / "model.pth")
    loaded = torch.load(folder / "model.pth", weights_only=True)
    state_dict = {key: value.numpy() for key, value in loaded.items()}
    backbone = mapping.convert(arch, state_dict, metadata={"source": "model.pth"}, **options)
    backbones.save(folder / "model.safetensors", backbone, source_sha256="0" * 64)
    return state_dict, backbones.load(folder / "model.safetensors")


def torch_input(images: np.ndarray, backbone) -> np.ndarray:
    """What the PyTorch model sees: the backbone's own input convention applied outside."""
    module = backbone.module
    return ((images - np.float32(module.mean)) / np.float32(module.std)).astype(np.float32)


@pytest.mark.parametrize("case", list(CASES))
def test_every_layer_matches_pytorch(case, tmp_path, artifacts):
    arch, options, sizes = CASES[case]
    model = reference.build(arch, **options)
    state_dict, backbone = convert_through_files(model, arch, options, tmp_path)
    assert mapping.detect_arch(state_dict) == (None if arch == "sequential" else arch)
    for size in sizes:
        images = np.random.default_rng(1).uniform(0, 1, (1, *size, 3)).astype(np.float32)
        theirs = reference.taps(model, arch, torch_input(images, backbone))
        assert tuple(theirs) == backbone.layer_names  # same names, same forward order
        ours = jax.jit(lambda b, x, names=tuple(theirs): b(x, names))(backbone, images)
        assert {name: ours[name].shape for name in theirs} == {
            name: value.shape for name, value in theirs.items()
        }
        errors = reference.relative_errors(ours, theirs)
        worst = max(errors, key=errors.get)
        label = f"{size[0]}x{size[1]}"
        WORST.setdefault(case, {})[label] = errors[worst]
        print(f"\nparity {case} {label}: worst relative error {errors[worst]:.2e} ({worst})")
        (artifacts / "parity.json").write_text(json.dumps(WORST, indent=1, sort_keys=True))
        bad = {name: err for name, err in errors.items() if err > TOLERANCE}
        assert not bad, f"{case} at {label}: layers off by more than {TOLERANCE}: {bad}"


def test_partial_vgg19_stops_at_relu3_1(tmp_path):
    model = reference.build("vgg19")
    full = reference.state_dict_numpy(model)
    conv3_1 = 10  # features.10 in torchvision's vgg19
    partial = {k: v for k, v in full.items() if int(k.split(".")[1]) <= conv3_1 and "features" in k}
    assert mapping.infer_last_layer("vgg19", partial) == "relu3_1"
    backbone = mapping.convert("vgg19", partial)
    backbones.save(tmp_path / "trunk.safetensors", backbone)
    backbone = backbones.load(tmp_path / "trunk.safetensors")
    assert backbone.layer_names[-1] == "relu3_1"
    assert backbone.metadata["last_layer"] == "relu3_1"
    images = np.random.default_rng(2).uniform(0, 1, (1, 64, 80, 3)).astype(np.float32)
    theirs = reference.taps(model, "vgg19", torch_input(images, backbone))
    errors = reference.relative_errors(
        backbone(images, ["relu3_1"]), {"relu3_1": theirs["relu3_1"]}
    )
    assert errors["relu3_1"] < TOLERANCE
    with pytest.raises(UserError, match=r"relu4_1.*past the last available layer 'relu3_1'"):
        backbone(images, ["relu4_1"])
    with_gap = {k: v for k, v in partial.items() if not k.startswith("features.5.")}
    with pytest.raises(UserError, match=r"missing keys \(30\): features.5.weight, features.5.bias"):
        mapping.convert("vgg19", with_gap)  # conv1_2 missing: not a partial VGG-19, a broken one


def test_checkpoint_of_another_architecture_is_refused_with_the_keys(converted_resnet18_keys):
    with pytest.raises(UserError) as caught:
        mapping.convert("vgg19", converted_resnet18_keys)
    message = str(caught.value)
    assert "missing keys (38): features.0.weight, features.0.bias" in message
    assert "unexpected keys (102): bn1.bias" in message and "conv1.weight" in message


def test_shape_mismatch_is_listed():
    state_dict = reference.state_dict_numpy(reference.build("sequential", spec=CONV_SPEC))
    state_dict["3.weight"] = np.zeros((16, 9, 3, 3), np.float32)
    with pytest.raises(UserError, match=r"shape mismatches \(1\): 3.weight 16x9x3x3 \(expected"):
        mapping.convert("sequential", state_dict, spec=CONV_SPEC)


@pytest.fixture
def converted_resnet18_keys() -> dict[str, np.ndarray]:
    return reference.state_dict_numpy(reference.build("resnet18"))
