"""Safe loading of PyTorch checkpoints and unwrapping of their formats (tiny tensors)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from paramviz.errors import UserError
from paramviz.weights.checkpoint import read_checkpoint

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class PickledObject:
    """Any non-tensor object: torch.load(weights_only=True) must refuse to rebuild it."""

    def __init__(self):
        self.note = "arbitrary code could run here"


def plain_state_dict() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {
        "conv1.weight": torch.randn(4, 3, 3, 3, generator=gen),
        "bn1.weight": torch.rand(4, generator=gen),
        "bn1.running_mean": torch.randn(4, generator=gen),
        "bn1.num_batches_tracked": torch.tensor(7),
        "fc.weight": torch.randn(2, 4, generator=gen),
        "fc.bias": torch.randn(2, generator=gen),
    }


def expected_arrays() -> dict[str, np.ndarray]:
    sd = plain_state_dict()
    del sd["bn1.num_batches_tracked"]
    return {k: v.numpy() for k, v in sd.items()}


def robustness_model(model_prefix: str = "model.") -> dict[str, torch.Tensor]:
    """DataParallel(AttackerModel).state_dict() as the robustness library saves it."""
    sd = plain_state_dict()
    return {
        "module.normalizer.new_mean": torch.tensor(MEAN).reshape(3, 1, 1),
        "module.normalizer.new_std": torch.tensor(STD).reshape(3, 1, 1),
        **{f"module.model.{model_prefix}{k}": v for k, v in sd.items()},
        "module.attacker.normalize.new_mean": torch.tensor(MEAN).reshape(3, 1, 1),
        "module.attacker.normalize.new_std": torch.tensor(STD).reshape(3, 1, 1),
        **{f"module.attacker.model.{model_prefix}{k}": v + 1 for k, v in sd.items()},
    }


def save(tmp_path, obj, name="ckpt.pth"):
    path = tmp_path / name
    torch.save(obj, path)
    return path


def assert_same_arrays(actual: dict, expected: dict):
    assert set(actual) == set(expected)
    for key, value in expected.items():
        assert actual[key].dtype == np.float32
        np.testing.assert_array_equal(actual[key], value, err_msg=key)


def test_plain_torchvision_state_dict(tmp_path):
    ckpt = read_checkpoint(save(tmp_path, plain_state_dict()))
    assert ckpt.source_format == "torchvision"
    assert ckpt.input_convention is None
    assert_same_arrays(ckpt.state_dict, expected_arrays())
    assert len(ckpt.sha256) == 64


def test_dataparallel_prefix_is_stripped(tmp_path):
    wrapped = {f"module.{k}": v for k, v in plain_state_dict().items()}
    ckpt = read_checkpoint(save(tmp_path, wrapped))
    assert ckpt.source_format == "torchvision"
    assert_same_arrays(ckpt.state_dict, expected_arrays())


def test_half_precision_becomes_float32(tmp_path):
    half = {k: v.half() if v.is_floating_point() else v for k, v in plain_state_dict().items()}
    ckpt = read_checkpoint(save(tmp_path, half))
    assert all(v.dtype == np.float32 for v in ckpt.state_dict.values())
    np.testing.assert_allclose(ckpt.state_dict["fc.weight"], expected_arrays()["fc.weight"], 1e-3)


@pytest.mark.parametrize("entry", ["model", "state_dict"])
@pytest.mark.parametrize("model_prefix", ["", "model."], ids=["robustness", "dummy-model"])
def test_robustness_format_unwraps_model_and_normaliser(tmp_path, entry, model_prefix):
    saved = {entry: robustness_model(model_prefix), "epoch": 90, "optimizer": {"state": {}}}
    ckpt = read_checkpoint(save(tmp_path, saved))
    assert ckpt.source_format == "robustness"
    assert_same_arrays(ckpt.state_dict, expected_arrays())  # not the (+1) attacker copy
    convention = ckpt.input_convention
    assert convention.clamp is True
    np.testing.assert_allclose(convention.mean, MEAN, rtol=1e-6)
    np.testing.assert_allclose(convention.std, STD, rtol=1e-6)


def test_robustness_alexnet_last_layer_becomes_classifier_6(tmp_path):
    sd = {
        "module.normalizer.new_mean": torch.zeros(3, 1, 1),
        "module.normalizer.new_std": torch.ones(3, 1, 1),
        "module.model.features.0.weight": torch.ones(2, 3, 1, 1),
        "module.model.last_layer.weight": torch.full((5, 2), 2.0),
        "module.model.last_layer.bias": torch.zeros(5),
    }
    ckpt = read_checkpoint(save(tmp_path, {"model": sd}), fmt="robustness")
    assert set(ckpt.state_dict) == {"features.0.weight", "classifier.6.weight", "classifier.6.bias"}


def test_explicit_format_that_does_not_fit_is_refused(tmp_path):
    with pytest.raises(UserError, match="not a robustness-library checkpoint"):
        read_checkpoint(save(tmp_path, plain_state_dict()), fmt="robustness")
    with pytest.raises(UserError, match="unknown checkpoint format"):
        read_checkpoint(save(tmp_path, plain_state_dict()), fmt="keras")


def test_real_sequential_and_vgg_normalised_files_are_detected(shared_weights):
    cifar = read_checkpoint(shared_weights / "cifar_small_8px.stage0.fp16.pth")
    assert cifar.source_format == "sequential"
    assert cifar.state_dict["5.weight"].shape == (100, 2048)
    vgg = read_checkpoint(shared_weights / "vgg_normalised_conv3_1.fp16.pth")
    assert vgg.source_format == "vgg-normalised"
    assert vgg.state_dict["0.weight"].shape == (3, 3, 1, 1)
    assert "1x1 conv" in vgg.input_convention.note


def test_pickled_object_is_refused_without_trust(tmp_path):
    path = save(tmp_path, {"model": plain_state_dict(), "args": PickledObject()})
    with pytest.raises(UserError, match="--trust-pickle") as err:
        read_checkpoint(path)
    assert "PickledObject" in str(err.value) and "execute code" in str(err.value)
    ckpt = read_checkpoint(path, trust_pickle=True)
    assert_same_arrays(ckpt.state_dict, expected_arrays())


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="checkpoint not found"):
        read_checkpoint(tmp_path / "nope.pth")


def test_truncated_zip_file(tmp_path):
    path = save(tmp_path, plain_state_dict())
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(UserError, match="truncated"):
        read_checkpoint(path)


def test_truncated_legacy_file(tmp_path):
    path = tmp_path / "legacy.pth"
    torch.save(plain_state_dict(), path, _use_new_zipfile_serialization=False)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(UserError, match="truncated or corrupt"):
        read_checkpoint(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"\x00" + np.random.default_rng(0).bytes(4000), "not a PyTorch checkpoint"),
        (b"<!DOCTYPE html><html>Dropbox</html>", "HTML"),
        (b"version https://git-lfs.github.com/spec/v1\noid sha256:00\n", "Git LFS pointer"),
    ],
    ids=["empty", "random", "html", "lfs"],
)
def test_files_that_are_not_checkpoints(tmp_path, content, message):
    path = tmp_path / "bad.pth"
    path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        read_checkpoint(path)


def test_non_finite_weights_are_named(tmp_path):
    sd = plain_state_dict()
    sd["fc.weight"][0, 0] = float("nan")
    sd["bn1.weight"][1] = float("inf")
    with pytest.raises(UserError, match="NaN or Inf") as err:
        read_checkpoint(save(tmp_path, sd))
    assert "fc.weight" in str(err.value) and "bn1.weight" in str(err.value)
    assert "conv1.weight" not in str(err.value)


def test_checkpoint_without_tensors_is_refused(tmp_path):
    with pytest.raises(UserError, match="no state_dict of tensors"):
        read_checkpoint(save(tmp_path, {"epoch": 3, "notes": "nothing here"}))


def test_importing_the_weights_package_imports_neither_torch_nor_jax():
    code = (
        "import sys, weights.checkpoint, weights.convert, weights.download, paramviz.cli.weights; "
        "heavy = {'torch', 'jax'} & set(sys.modules); assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
