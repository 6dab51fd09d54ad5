"""Registry integrity: names, URLs, checksums, input conventions."""

from __future__ import annotations

import re
from urllib.parse import urlparse

import pytest

from paramviz.errors import UserError
from paramviz.weights import registry

ENTRIES = registry.entries()
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def test_names_and_file_names_are_unique_and_safe():
    names = [e.name for e in ENTRIES]
    files = [e.filename for e in ENTRIES]
    assert len(set(names)) == len(names)
    assert len(set(files)) == len(files), "two entries would share one downloads/ file"
    assert all(NAME.match(n) for n in names)
    assert all(re.match(r"^[\w.-]+\.(pth|pt|ckpt)$", f) for f in files)


def test_every_url_is_https_except_those_published_only_over_http():
    for entry in ENTRIES:
        scheme = urlparse(entry.url).scheme
        if entry.name in registry.PLAIN_HTTP_AS_PUBLISHED:
            assert scheme == "http" and entry.sha256 is None
        else:
            assert scheme == "https", entry.name


def test_hashes_are_lowercase_hex_full_or_prefix():
    for entry in ENTRIES:
        if entry.sha256 is not None:
            assert re.fullmatch(r"[0-9a-f]{8,64}", entry.sha256), entry.name


def test_torchvision_prefix_is_the_one_in_the_file_name():
    torchvision = [e for e in ENTRIES if e.source_format == "torchvision"]
    assert {e.name for e in torchvision} == {"vgg16", "vgg19", "alexnet", "resnet18", "resnet50"}
    for entry in torchvision:
        assert entry.url.startswith("https://download.pytorch.org/models/")
        assert re.search(r"-([0-9a-f]{8})\.pth$", entry.filename).group(1) == entry.sha256


def test_entries_without_a_published_hash_are_recorded_as_none():
    unverified = {e.name for e in ENTRIES if e.sha256 is None}
    assert {"vgg19-normalised", "resnet50-robust-l2-eps3", "rmt-resnet18-l2-eps3"} <= unverified


def test_formats_and_conventions_are_consistent():
    for entry in ENTRIES:
        assert entry.source_format in registry.SOURCE_FORMATS
        convention = entry.input_convention
        assert len(convention.mean) == 3 and len(convention.std) == 3
        assert all(s > 0 for s in convention.std)
        assert convention.clamp == (entry.source_format == "robustness"), entry.name
    restricted = registry.get("resnet50-restricted-imagenet-l2-eps3")
    assert restricted.num_classes == 9
    assert restricted.input_convention.mean == (0.4717, 0.4499, 0.3837)


def test_robust_models_transfer_set_is_complete():
    l2 = {"0", "0.01", "0.03", "0.05", "0.1", "0.25", "0.5", "1", "3", "5"}
    linf = {"0.5", "1", "2", "4", "8"}
    expected = {f"rmt-{a}-l2-eps{e}" for a in ("resnet18", "resnet50") for e in l2}
    expected |= {f"rmt-{a}-linf-eps{e}" for a in ("resnet18", "resnet50") for e in linf}
    expected.add("rmt-vgg16_bn-l2-eps3")
    rmt = {e.name for e in ENTRIES if e.name.startswith("rmt-")}
    assert rmt == expected
    mirror = "https://huggingface.co/madrylab/robust-imagenet-models/resolve/main/"
    assert registry.get("rmt-resnet50-linf-eps4").url == mirror + "resnet50_linf_eps4.0.ckpt"
    assert registry.get("rmt-resnet18-l2-eps0.01").url == mirror + "resnet18_l2_eps0.01.ckpt"


def test_prefix_and_full_hash_matching():
    entry = registry.get("vgg19")
    assert entry.matches_sha256("dcbb9e9d" + "0" * 56)
    assert not entry.matches_sha256("dcbb9e9e" + "0" * 56)
    assert not registry.get("vgg19-normalised").matches_sha256("0" * 64)


def test_input_convention_metadata_is_json_ready():
    convention = registry.get("vgg19-normalised").input_convention.to_metadata()
    assert convention["note"].startswith("RGB in [0, 1]") and convention["mean"] == [0.0] * 3
    robust = registry.ROBUST_IMAGENET.to_metadata()
    assert robust["mean"] == [0.485, 0.456, 0.406] and robust["clamp"] is True


def test_unknown_name_suggests_close_ones():
    with pytest.raises(UserError, match="resnet50-robust-l2-eps3"):
        registry.get("resnet50-robust-l2-eps30")


def test_every_architecture_is_a_backbone_and_conventions_match_the_converter():
    from paramviz.backbones import architectures
    from paramviz.weights.convert import DEFAULT_CONVENTIONS

    known = {architecture.name for architecture in architectures()}
    for entry in ENTRIES:
        assert entry.arch in known, entry.name
        if entry.source_format != "robustness":  # robustness files carry their own normaliser
            assert DEFAULT_CONVENTIONS[entry.source_format] == entry.input_convention, entry.name
