"""Absurd requests fail fast, before any array is built, with one line that says why: numeric
flags, channel ranges past the network, renders larger than the machine, architecture options,
and networks that run at one input size only."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers.cli import run_cli
from helpers.files import SPEC, random_picture, small_weights
from PIL import Image

from paramviz import backbones, budget, objectives, render, tasks, transforms
from paramviz.backbones.input_size import fixed_input_size, spatial_layers
from paramviz.errors import UserError

FLAT_SPEC = "conv8k4s2p1,relu,conv8k4s2p1,relu,flatten,linear16,relu,linear10"


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return small_weights(tmp_path_factory.mktemp("w") / "small.safetensors")


@pytest.fixture(scope="module")
def flat_weights(tmp_path_factory) -> Path:
    """A CIFAR-like net whose linear layer fixes its input at 16x16 (input_size not stored)."""
    net = backbones.init("sequential", jax.random.PRNGKey(0), (16, 16), spec=FLAT_SPEC)
    assert json_options(net)["input_size"] is None
    return backbones.save(tmp_path_factory.mktemp("w") / "flat.safetensors", net)


def json_options(net) -> dict:
    import json

    return json.loads(net.metadata["arch_options"])


@pytest.fixture(scope="module")
def picture(tmp_path_factory) -> Path:
    return random_picture(tmp_path_factory.mktemp("p") / "p.png")


# ------------------------------------------------------------------------------ numeric flags

RENDER = ["visualize", "--weights", "missing.safetensors", "--objective", "relu1:0"]
BAD_FLAGS = [
    (["--size", "0"], "--size: expected a whole number >= 1, got '0'"),
    (["--size", "-10"], "--size: expected a whole number >= 1"),
    (["--size", "1.5"], "--size: expected a whole number >= 1"),
    (["--lr", "nan"], "--lr: expected a finite number and > 0, got 'nan'"),
    (["--lr", "inf"], "--lr: expected a finite number and > 0, got 'inf'"),
    (["--lr", "0"], "--lr: expected a finite number and > 0"),
    (["--seed", str(2**64)], "--seed: expected a whole number >= 0 and <= 4294967295"),
    (["--seed", str(2**32)], "--seed: expected a whole number >= 0 and <= 4294967295"),
    (["--seed", "-1"], "--seed: expected a whole number >= 0"),
    (["--steps", "-5"], "--steps: expected a whole number >= 0"),
    (["--save-every", "-1"], "--save-every: expected a whole number >= 0"),
    (["--tv-weight=-1"], "--tv-weight: expected a finite number and >= 0"),
    (["--tv-weight", "nan"], "--tv-weight: expected a finite number"),
    (["--relu-redirect-steps", "-1"], "--relu-redirect-steps: expected a whole number >= 0"),
]


@pytest.mark.parametrize(("flags", "message"), BAD_FLAGS, ids=[" ".join(f) for f, _ in BAD_FLAGS])
def test_render_flags_are_checked_when_parsed(capsys, flags, message):
    code, err = run_cli(capsys, *RENDER, *flags)
    assert code == 2 and err.startswith(f"paramviz: error: visualize: argument {message}")


OTHER_FLAGS = [
    (["style", "--content", "a.png", "--style", "b.png", "--weights", "w", "--style-weight", "inf"],
     "--style-weight: expected a finite number and >= 0, got 'inf'"),
    (["texture", "--style", "b.png", "--weights", "w", "--content-weight", "nan"],
     "--content-weight: expected a finite number"),
    (["texture", "--style", "b.png", "--weights", "w", "--max-pixels", "0"], "--max-pixels"),
    (["probe", "--weights", "w", "--image", "a", "--layers", "x", "-o", "a.npz", "--size", "0"],
     "--size: expected a whole number >= 1"),
    (["layers", "vgg19", "--size", "0", "5"], "--size: expected a whole number >= 1"),
    (["demo", "--steps", "0"], "--steps: expected a whole number >= 1"),
    (["train", "--epochs", "0"], "--epochs: expected a whole number >= 1"),
    (["train", "--learning-rate", "nan"], "--learning-rate: expected a finite number"),
    (["train", "--seed", str(2**40)], "--seed: expected a whole number >= 0 and <= 4294967295"),
    (["train", "--eps-warmup", "2"], "--eps-warmup: expected a finite number and >= 0 and <= 1"),
    (["experiment", "run", "all", "-o", "r", "--rf-eps", "nan"], "--rf-eps: expected a finite"),
    (["experiment", "run", "all", "-o", "r", "--rf-steps", "0"], "--rf-steps: expected a whole"),
    (["experiment", "run", "all", "-o", "r", "--seed", "-3"], "--seed: expected a whole number"),
    (["weights", "convert", "a.pth", "-o", "b.safetensors", "--mean", "nan,0,0"],
     "--mean: expected three comma-separated finite numbers"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "message"), OTHER_FLAGS, ids=[a[0] + a[-2] for a, _ in OTHER_FLAGS]
)
def test_every_commands_numbers_are_checked_when_parsed(capsys, argv, message):
    code, err = run_cli(capsys, *argv)
    assert code == 2 and message in err and err.startswith("paramviz: error: ")


def test_argparse_errors_are_one_line(capsys):
    code, err = run_cli(capsys, "visualize", "--weights")
    assert (
        code == 2 and err == "paramviz: error: visualize: argument --weights: expected one argument"
    )
    code, err = run_cli(capsys, "styel")
    assert code == 2 and err.startswith(
        "paramviz: error: argument COMMAND: invalid choice: 'styel'"
    )


def test_the_largest_seed_is_accepted(capsys):
    code, err = run_cli(capsys, *RENDER, "--seed", str(2**32 - 1))
    assert code == 2 and "weights file not found: missing.safetensors" in err  # parsed fine


def test_settings_reject_absurd_values_from_python():
    for bad in ({"lr": float("nan")}, {"steps": -1}, {"seed": 2**32}, {"optimizer": "sgd"},
                {"tv_weight": float("inf")}, {"save_every": -2}):  # fmt: skip
        with pytest.raises(UserError, match=next(iter(bad))):
            tasks.RenderSettings(**bad)
    with pytest.raises(UserError, match="style_weight must be a finite number >= 0, got inf"):
        tasks.StyleSettings(style_weight=float("inf"))
    with pytest.raises(UserError, match="style_loss"):
        tasks.StyleSettings(style_loss="l3")


# ------------------------------------------------------------------------------ before any array


@pytest.fixture
def net():
    return backbones.init("sequential", jax.random.PRNGKey(0), (16, 16), spec=SPEC)


def test_a_channel_range_past_the_layer_fails_before_it_is_expanded(net, tmp_path, monkeypatch):
    def expanded(*args):
        raise AssertionError("the range was expanded into objectives before it was checked")

    monkeypatch.setattr(objectives, "batch_objective", expanded)
    with pytest.raises(
        UserError, match="'relu1:0-99999999' goes past the 4 channels of relu1 \\(0-3\\)"
    ):
        tasks.visualize(net, ["relu1:0-99999999"], 16)
    with pytest.raises(UserError, match="unknown layer 'relu9'"):
        tasks.visualize(net, ["relu9:0-3"], 16)
    assert list(tmp_path.iterdir()) == []


def test_a_unit_past_its_layer_fails_before_the_picture_is_built(net, tmp_path, monkeypatch):
    monkeypatch.setattr(tasks, "make_param", lambda *a, **k: pytest.fail("a picture was built"))
    with pytest.raises(UserError, match="channel 8 is out of range for layer 'relu2'"):
        tasks.visualize(net, ["relu2:1", "relu2:8"], 16)


def test_a_render_larger_than_the_machine_is_refused_unless_forced(
    net, tmp_path, monkeypatch, capsys, weights
):
    monkeypatch.setattr(budget, "available_bytes", lambda: 2**20)
    monkeypatch.setattr(tasks, "make_param", lambda *a, **k: pytest.fail("a picture was built"))
    settings = tasks.RenderSettings(steps=2, progress=False)
    with pytest.raises(
        UserError, match="needs about .* MiB of memory and this machine has 1.0 MiB"
    ):
        tasks.visualize(net, ["relu1:0-3"], 64, settings)
    out = tmp_path / "v.png"
    argv = ["visualize", "--weights", weights, "--objective", "relu1:0", "--size", "64", "-o", out]
    code, err = run_cli(capsys, *argv)
    assert code == 2 and "rendering 1 image(s) of 64x64 with sequential needs about" in err
    assert "pass --force to try anyway" in err and not out.exists()

    monkeypatch.setattr(
        tasks, "make_param", lambda *a, **k: (_ for _ in ()).throw(UserError("built"))
    )
    code, err = run_cli(capsys, *argv, "--force")
    assert code == 2 and err == "paramviz: error: built"  # past the check: the picture was built


def test_the_estimate_grows_with_size_batch_steps_and_snapshots(net):
    none = render.resolve_transforms(None)

    def needed(batch: int, size: int, **kwargs) -> int:
        return budget.render_needs(net, ["relu2"], batch, (size, size), none, **kwargs).bytes

    small = needed(1, 32)
    assert needed(1, 64) > 3.5 * small
    assert needed(4, 32) > 3.5 * small
    assert needed(1, 32, steps=10**6) >= small + 4e6
    snapshots = needed(1, 32, snapshots=100)
    assert snapshots >= small + 100 * 32 * 32 * 3 * 4


def test_the_estimate_reads_the_layer_shapes_of_the_transformed_batch(net):
    standard = transforms.preset("standard")
    needs = budget.render_needs(net, ["relu1", "relu2"], 2, (16, 16), standard)
    key = jax.random.PRNGKey(0)
    batch = jnp.zeros((2, 16, 16, 3))
    features = net(standard(key, batch), ["relu1", "relu2"])
    assert needs.shapes == {name: value.shape for name, value in features.items()}
    assert needs.shapes["relu1"][1:3] != (16, 16)  # the transforms' padding is counted


def stop_here(*args, **kwargs):
    raise UserError("checked")


def test_the_checks_before_a_visualize_trace_the_network_once_each(
    net, tmp_path, monkeypatch, network_passes
):
    """One layer check, for every layer the specs read (a channel range is checked against its
    shapes before it is expanded), then one pass for the memory estimate and the indices."""
    monkeypatch.setattr(tasks, "make_param", stop_here)
    with pytest.raises(UserError, match="checked"):
        tasks.visualize(net, ["relu1:0-1"], 16)
    assert len(network_passes) == 2  # the layer check, the estimate


def test_the_checks_before_a_style_transfer_trace_the_network_once_per_size(
    net, tmp_path, monkeypatch, network_passes
):
    monkeypatch.setattr(tasks, "style_objective", stop_here)
    style, content = np.random.default_rng(0).uniform(size=(2, 16, 16, 3)).astype(np.float32)
    settings = tasks.RenderSettings(steps=2, progress=False)
    with pytest.raises(UserError, match="checked"):
        tasks.style_transfer(net, style, content, settings)
    assert len(network_passes) == 2  # one layer check for the one size, the style's estimate


def test_a_size_jax_cannot_index_is_one_line(net):
    standard = transforms.preset("standard")
    with pytest.raises(UserError, match="cannot run sequential on 1 image\\(s\\) of 100000x100000"):
        budget.render_needs(net, ["relu2"], 1, (100000, 100000), standard)


def test_available_memory_is_known_here():
    assert budget.available_bytes() > 2**27


# ------------------------------------------------------------------------------ options


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("width=NaN", "width=nan of resnet18 should be finite and above 0"),
        ("width=-1", "width=-1 of resnet18 should be finite and above 0"),
        ("width=abc", "should be a number"),
        ("num_classes=0", "num_classes=0 of resnet18 should be finite and above 0"),
        ("mean=[1]", "the input mean of resnet18 should be three numbers"),
        ("std=[0,1,1]", "std=(0, 1, 1) of resnet18 should be finite and above 0"),
    ],
)
def test_option_values_of_the_wrong_kind_are_one_line(capsys, option, message):
    code, err = run_cli(capsys, "layers", "resnet18", "--option", option)
    assert code == 2 and message in err


@pytest.mark.parametrize(
    "item", ["conv0k3", "conv4k0", "conv4k3s0", "maxpool0", "avgpool2s0", "linear0"]
)
def test_sequential_specs_with_zero_sizes_are_refused(capsys, item):
    code, err = run_cli(capsys, "layers", "sequential", "--option", f"spec={item}")
    assert code == 2 and f"item '{item}' of sequential spec" in err and "size of 0" in err


@pytest.mark.parametrize("size", [[0, 0], "abc", [32], 5])
def test_sequential_input_sizes_are_two_positive_whole_numbers(size):
    module = backbones.create("sequential", spec="conv4k3,relu,flatten,linear3")
    with pytest.raises(UserError, match="(input_size should be two whole numbers|input_size=)"):
        backbones.create("sequential", spec=module.spec, input_size=size).probe_size()


# ------------------------------------------------------------------------------ one input size


def test_the_fixed_size_is_found_from_the_linear_layer(flat_weights):
    net = backbones.load(flat_weights)
    assert fixed_input_size(net, ["logits"]) == (16, 16)
    assert fixed_input_size(net, ["relu2"]) is None
    assert spatial_layers(net.module) == ("conv1", "relu1", "conv2", "relu2")
    assert fixed_input_size(backbones.init("resnet18", jax.random.PRNGKey(0)), ["logits"]) is None


def test_the_fixed_size_is_searched_once_per_network(flat_weights, monkeypatch):
    from paramviz.backbones import input_size

    probes, probe = [], input_size._flat_values
    monkeypatch.setattr(input_size, "_flat_values", lambda *a: probes.append(a[2]) or probe(*a))
    monkeypatch.setattr(input_size, "_FOUND_SIDES", {})
    net = backbones.load(flat_weights)
    assert fixed_input_size(net, ["logits"]) == (16, 16) and len(probes) > 5  # a binary search
    searched = len(probes)
    assert fixed_input_size(net, ["logits"]) == fixed_input_size(net, ["relu3"]) == (16, 16)
    assert len(probes) == searched  # the same linear layer: remembered


def test_visualize_resizes_each_batch_to_the_networks_size(flat_weights, tmp_path, capsys):
    out = tmp_path / "v.png"
    argv = ["visualize", "--weights", flat_weights, "--objective", "logit:3", "--steps", "3"]
    code, err = run_cli(capsys, *argv, "--size", "40", "--quiet", "-o", out)  # standard transforms
    assert code == 0, err
    assert Image.open(out).size == (40, 40)


def test_style_layers_of_a_fixed_size_network_default_to_its_feature_maps(flat_weights, tmp_path):
    net = backbones.load(flat_weights)
    style = np.random.default_rng(0).uniform(size=(20, 24, 3)).astype(np.float32)
    settings = tasks.RenderSettings(steps=2, progress=False)
    files = tasks.style_transfer(net, style, None, settings).save(tmp_path / "t.png")
    assert outputs_layers(files["json"]) == ["relu1", "relu2"]
    with pytest.raises(UserError, match="runs only on 16x16 images, not 20x24; use 16x16 pictures"):
        tasks.style_transfer(
            net,
            style,
            None,
            settings,
            tasks.StyleSettings(style_layers=("fc1",)),
        )


def outputs_layers(path: Path) -> list[str]:
    import json

    return json.loads(path.read_text())["settings"]["style_layers"]


def test_probe_says_which_size_a_fixed_size_network_needs(flat_weights, picture, tmp_path, capsys):
    argv = ["probe", "--weights", flat_weights, "--image", picture, "--layers", "fc1"]
    code, err = run_cli(capsys, *argv, "-o", tmp_path / "a.npz")
    assert code == 2 and "runs only on 16x16 images, not 20x24" in err
    code, err = run_cli(capsys, *argv[:-1], "relu2", "-o", tmp_path / "b.npz")
    assert code == 0 and (tmp_path / "b.npz").is_file()  # earlier layers run at any size


def test_resize_to_keeps_the_input_size_and_passes_gradients():
    resize = transforms.compose(transforms.preset("standard"), transforms.resize_to(16, 16))
    images = jnp.ones((2, 40, 40, 3)) * 0.5
    assert resize(jax.random.PRNGKey(0), images).shape == (2, 16, 16, 3)
    grad = jax.grad(lambda x: resize(jax.random.PRNGKey(0), x).sum())(images)
    assert grad.shape == images.shape and float(jnp.abs(grad).sum()) > 0
    with pytest.raises(ValueError, match="positive size"):
        transforms.resize_to(0, 16)
