"""``paramviz weights ...`` end to end: conversion of every format, errors, list/info/fetch.

One small resnet18-shaped reference network (10 classes) serves every conversion test.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest
import torch
import torch_reference
from helpers.http_server import FileServer, serve
from safetensors.numpy import load_file

from paramviz import backbones, paths
from paramviz.cli import main
from paramviz.weights import registry

RESTRICTED_MEAN, RESTRICTED_STD = (0.4717, 0.4499, 0.3837), (0.2600, 0.2516, 0.2575)
CIFAR_SPEC = "conv16k4s2p1,relu,conv32k4s2p1,relu,flatten,linear100,relu,linear10"


class PickledObject:
    """A non-tensor object in a checkpoint (like robustness's pickled ``args``)."""


@pytest.fixture(scope="module")
def reference():
    return torch_reference.build("resnet18", num_classes=10)


@pytest.fixture(scope="module")
def plain(reference):
    return reference.state_dict()


@pytest.fixture(scope="module")
def plain_converted(plain, tmp_path_factory):
    """The plain torchvision conversion every other format is compared with."""
    folder = tmp_path_factory.mktemp("plain")
    torch.save(plain, folder / "resnet18.pth")
    assert convert_cli(folder / "resnet18.pth", folder / "resnet18.safetensors") == 0
    return folder / "resnet18.safetensors"


def convert_cli(src, out, *extra) -> int:
    return main(["weights", "convert", str(src), "-o", str(out), *extra])


def metadata(path) -> dict:
    from safetensors import safe_open

    with safe_open(path, framework="numpy") as f:
        return f.metadata()


def robustness_checkpoint(plain, entry="model", model_level="") -> dict:
    """What the robustness library saves: AttackerModel under DataParallel, plus training state."""
    mean = torch.tensor(RESTRICTED_MEAN).reshape(3, 1, 1)
    std = torch.tensor(RESTRICTED_STD).reshape(3, 1, 1)
    state = {"module.normalizer.new_mean": mean, "module.normalizer.new_std": std}
    state |= {"module.attacker.normalize.new_mean": mean, "module.attacker.normalize.new_std": std}
    state |= {f"module.model.{model_level}{k}": v for k, v in plain.items()}
    state |= {f"module.attacker.model.{model_level}{k}": v for k, v in plain.items()}
    return {entry: state, "epoch": 120, "schedule": None, "optimizer": {"state": {}}}


def assert_nothing_written(folder):
    assert list(folder.iterdir()) == [], "a failed conversion left files behind"


def test_plain_conversion_metadata(plain_converted):
    meta = metadata(plain_converted)
    assert meta["arch"] == "resnet18"
    assert meta["source_format"] == "torchvision"
    assert meta["source"] == "resnet18.pth"
    src = plain_converted.with_name("resnet18.pth").read_bytes()
    assert meta["source_sha256"] == hashlib.sha256(src).hexdigest()
    assert json.loads(meta["arch_options"])["num_classes"] == 10
    assert meta["last_layer"] == "logits"
    convention = json.loads(meta["input_convention"])
    assert convention == {
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
        "clamp": False,
    }


@pytest.mark.parametrize(
    ("entry", "model_level"),
    [("model", ""), ("state_dict", ""), ("model", "model.")],
    ids=["robustness", "legacy-state_dict", "robust-models-transfer-dummy-model"],
)
def test_robustness_formats_convert_to_the_plain_tensors(
    plain, plain_converted, tmp_path, entry, model_level
):
    src, out = tmp_path / "robust.ckpt", tmp_path / "robust.safetensors"
    torch.save(robustness_checkpoint(plain, entry, model_level), src)
    assert convert_cli(src, out) == 0
    meta = metadata(out)
    assert meta["arch"] == "resnet18" and meta["source_format"] == "robustness"
    convention = json.loads(meta["input_convention"])
    assert convention["clamp"] is True
    np.testing.assert_allclose(convention["mean"], RESTRICTED_MEAN, rtol=1e-6)
    np.testing.assert_allclose(convention["std"], RESTRICTED_STD, rtol=1e-6)
    expected, actual = load_file(plain_converted), load_file(out)
    assert set(actual) == set(expected)
    for key in expected:
        np.testing.assert_array_equal(actual[key], expected[key], err_msg=key)


def test_dataparallel_prefix_converts_to_the_plain_tensors(plain, plain_converted, tmp_path):
    src, out = tmp_path / "dp.pth", tmp_path / "dp.safetensors"
    torch.save({f"module.{k}": v for k, v in plain.items()}, src)
    assert convert_cli(src, out) == 0
    expected, actual = load_file(plain_converted), load_file(out)
    assert all(np.array_equal(actual[k], expected[k]) for k in expected)


def test_robustness_conversion_matches_torch_activations(plain, reference, tmp_path):
    src, out = tmp_path / "robust.pt", tmp_path / "robust.safetensors"
    torch.save(robustness_checkpoint(plain), src)
    assert convert_cli(src, out) == 0
    backbone = backbones.load(out)
    images = np.random.default_rng(0).uniform(0, 1, (2, 32, 32, 3)).astype(np.float32)
    ours = backbone(images, ("layer1",))
    normalised = (images - np.float32(RESTRICTED_MEAN)) / np.float32(RESTRICTED_STD)
    theirs = torch_reference.taps(reference, "resnet18", normalised)
    np.testing.assert_allclose(np.asarray(ours["layer1"]), theirs["layer1"], rtol=1e-4, atol=1e-4)


def test_wrong_architecture_names_missing_and_unexpected_keys(plain, tmp_path, capsys):
    src, out_dir = tmp_path / "resnet18.pth", tmp_path / "out"
    torch.save(plain, src)
    out_dir.mkdir()
    assert convert_cli(src, out_dir / "x.safetensors", "--arch", "resnet50") == 2
    err = capsys.readouterr().err
    assert "does not fit resnet50" in err
    assert "missing" in err and "layer1.0.conv3.weight" in err
    assert "unexpected" in err or "mismatch" in err
    assert err.count("does not fit") == 1 and "pass --arch resnet18" in err
    assert_nothing_written(out_dir)


def test_pickled_object_needs_trust(plain, tmp_path, capsys):
    src, out_dir = tmp_path / "custom.pth", tmp_path / "out"
    torch.save({"model": plain, "args": PickledObject()}, src)
    out_dir.mkdir()
    assert convert_cli(src, out_dir / "x.safetensors") == 2
    err = capsys.readouterr().err
    assert "--trust-pickle" in err and "execute code" in err
    assert_nothing_written(out_dir)
    assert convert_cli(src, out_dir / "x.safetensors", "--trust-pickle") == 0
    assert metadata(out_dir / "x.safetensors")["arch"] == "resnet18"


def _missing(path, plain):
    pass


def _truncated(path, plain):
    torch.save(plain, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _random_bytes(path, plain):
    path.write_bytes(b"\x07" + np.random.default_rng(1).bytes(10_000))


def _nan_weights(path, plain):
    broken = dict(plain)
    broken["layer3.1.conv2.weight"] = torch.full_like(plain["layer3.1.conv2.weight"], np.nan)
    torch.save(broken, path)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_missing, "checkpoint not found"),
        (_truncated, "truncated"),
        (_random_bytes, "not a PyTorch checkpoint"),
        (_nan_weights, "NaN or Inf values in layer3.1.conv2.weight"),
    ],
    ids=["missing", "truncated", "random-bytes", "nan"],
)
def test_bad_checkpoints_fail_cleanly(plain, tmp_path, capsys, make, message):
    src, out_dir = tmp_path / "bad.pth", tmp_path / "out"
    make(src, plain)
    out_dir.mkdir()
    assert convert_cli(src, out_dir / "x.safetensors") == 2
    assert message in capsys.readouterr().err
    assert_nothing_written(out_dir)


def test_sequential_needs_spec_and_normalisation(shared_weights, tmp_path, capsys):
    src, out = shared_weights / "cifar_small_8px.stage0.fp16.pth", tmp_path / "cifar.safetensors"
    assert convert_cli(src, out) == 2
    assert "--arch" in capsys.readouterr().err
    assert convert_cli(src, out, "--arch", "sequential", "--spec", CIFAR_SPEC) == 2
    assert "--mean" in capsys.readouterr().err
    assert not out.exists()
    normalisation = ["--mean", "0.485,0.456,0.406", "--std", "0.225,0.225,0.225"]
    assert convert_cli(src, out, "--arch", "sequential", "--spec", CIFAR_SPEC, *normalisation) == 0
    meta = metadata(out)
    assert json.loads(meta["arch_options"])["spec"] == CIFAR_SPEC
    assert json.loads(meta["input_convention"])["std"] == [0.225, 0.225, 0.225]
    assert meta["source_format"] == "sequential" and meta["last_layer"] == "logits"


def test_partial_normalised_vgg_records_its_last_layer(shared_weights, tmp_path):
    out = tmp_path / "vgg.safetensors"
    assert convert_cli(shared_weights / "vgg_normalised_conv3_1.fp16.pth", out) == 0
    meta = metadata(out)
    assert meta["arch"] == "vgg19_normalised" and meta["source_format"] == "vgg-normalised"
    assert meta["last_layer"] == "relu3_1"
    assert json.loads(meta["arch_options"])["last_layer"] == "relu3_1"


def test_mean_without_std_is_refused(plain, tmp_path, capsys):
    torch.save(plain, tmp_path / "r.pth")
    assert convert_cli(tmp_path / "r.pth", tmp_path / "o.safetensors", "--mean", "0,0,0") == 2
    assert "--mean and --std together" in capsys.readouterr().err


def test_list_shows_registry_and_cache_state(capsys):
    registry.converted_path("resnet50").parent.mkdir(parents=True)
    registry.converted_path("resnet50").write_bytes(b"")
    assert main(["weights", "list"]) == 0
    registry_table, cache_table = capsys.readouterr().out.split("Weights files in the cache")
    rows = {line.split()[0]: line.split() for line in registry_table.splitlines()[1:] if line}
    assert set(registry.REGISTRY) <= set(rows)
    assert rows["resnet50"][-2:] == ["-", "yes"]
    assert rows["vgg19"][-2:] == ["-", "-"]
    assert rows["resnet50-restricted-imagenet-l2-eps3"][3] == "9"
    cached = {line.split()[0]: line.split() for line in cache_table.splitlines()[2:]}
    assert cached["resnet50"][1:3] == ["?", "fetched"]  # an unreadable file is listed, not fatal


def test_info_describes_both_kinds_of_file_without_writing(plain, plain_converted, capsys):
    folder = plain_converted.parent
    before = sorted(folder.iterdir())
    assert main(["weights", "info", str(plain_converted)]) == 0
    out = capsys.readouterr().out
    assert "arch: resnet18" in out and "last_layer: logits" in out and "F32" in out
    assert main(["weights", "info", str(folder / "resnet18.pth")]) == 0
    out = capsys.readouterr().out
    assert "format: torchvision" in out and "architecture: resnet18" in out
    assert sorted(folder.iterdir()) == before


def test_fetch_downloads_and_converts(plain, tmp_path, monkeypatch, capsys):
    src = tmp_path / "tiny-resnet18.pth"
    torch.save(plain, src)
    payload = src.read_bytes()
    state = FileServer(payload=payload)
    with serve(state) as url:
        entry = dataclasses.replace(
            registry.get("resnet18"),
            name="tiny-resnet18",
            url=f"{url}/files/tiny.pth",
            sha256=hashlib.sha256(payload).hexdigest(),
        )
        monkeypatch.setitem(registry.REGISTRY, entry.name, entry)
        assert main(["weights", "fetch", entry.name, "--quiet"]) == 0
    assert (paths.downloads_dir() / "tiny.pth").read_bytes() == payload
    meta = metadata(registry.converted_path(entry.name))
    assert meta["arch"] == "resnet18" and meta["source_sha256"] == entry.sha256
    assert "--weights tiny-resnet18" in capsys.readouterr().out
