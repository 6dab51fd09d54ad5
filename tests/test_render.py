"""render on a tiny Flax net: it optimises, is deterministic, guards NaNs, taps few layers."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from paramviz import objectives as obj
from paramviz import transforms
from paramviz.backbones import ops
from paramviz.backbones.base import Backbone
from paramviz.errors import UserError
from paramviz.param import ImageParam
from paramviz.render import render

SIZE = 32

# --------------------------------------------------------------------------------------------
# a tiny backbone that honours the contract: taps named after submodules, only requested layers

SPEC = (
    ("conv1", "conv", 8),
    ("relu1", "relu", None),
    ("conv2", "conv", 16),
    ("relu2", "relu", None),
    ("pool1", "pool", None),
    ("conv3", "conv", 16),
    ("relu3", "relu", None),
    ("logits", "dense", 10),
)
LAYER_NAMES = tuple(name for name, _, _ in SPEC)
SEEN_LAYERS: list[tuple[str, ...]] = []  # every `layers` argument the net was traced with


class TinyNet(nn.Module):
    @nn.compact
    def __call__(self, images, layers, relu_redirect=None):
        SEEN_LAYERS.append(tuple(layers))
        deepest = max(LAYER_NAMES.index(name) for name in layers)
        x, out = images - 0.5, {}
        for name, kind, width in SPEC[: deepest + 1]:
            if kind == "conv":
                x = nn.Conv(width, (3, 3), name=name)(x)
            elif kind == "relu":
                x = ops.relu(x, relu_redirect)  # Lucid's redirected gradient when asked
            elif kind == "pool":
                x = nn.avg_pool(x, (2, 2), (2, 2))
            else:
                x = nn.Dense(width, name=name)(x.mean(axis=(1, 2)))
            if name in layers:
                out[name] = x
        return out


def numpy_init(module: nn.Module, last_layer: str, seed: int = 0) -> dict:
    """Random variables from NumPy (fan-in scaled normal kernels, zero biases): compiling
    jax.random's samplers for ``module.init`` costs seconds per shape on a small CPU."""
    shapes = jax.eval_shape(
        lambda: module.init(jax.random.PRNGKey(0), jnp.zeros((1, SIZE, SIZE, 3)), (last_layer,))
    )
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        if path[-1].key != "kernel":
            return jnp.zeros(leaf.shape)
        fan_in = np.prod(leaf.shape[:-1])
        return jnp.asarray(rng.normal(0, 1 / np.sqrt(fan_in), leaf.shape), jnp.float32)

    return jax.tree_util.tree_map_with_path(fill, shapes)


def tiny_backbone(seed: int = 0) -> Backbone:
    module = TinyNet()
    return Backbone(
        variables=numpy_init(module, "logits", seed),
        module=module,
        arch="tiny",
        layer_names=LAYER_NAMES,
        metadata={"source_sha256": "0" * 64},
    )


def pixel_param(init: np.ndarray) -> ImageParam:
    """Sigmoid of a free array, started exactly at ``init`` (values in (0, 1))."""
    init = np.clip(np.asarray(init, np.float32), 1e-3, 1 - 1e-3)
    return ImageParam(params=jnp.log(init / (1 - init)), to_image=jax.nn.sigmoid)


def shapes() -> np.ndarray:
    """A flat-coloured picture (two half-planes and a disc): something for content to keep."""
    yy, xx = np.mgrid[:SIZE, :SIZE]
    disc = (xx - SIZE / 2) ** 2 + (yy - SIZE / 2) ** 2 < SIZE**2 / 12
    planes = [xx < SIZE / 2, yy < SIZE / 2, disc]
    return (0.1 + 0.8 * np.stack(planes, -1)[None]).astype(np.float32)


def noise(seed: int, batch: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.3, 0.7, (batch, SIZE, SIZE, 3)).astype(np.float32)


def stripes() -> np.ndarray:
    yy, xx = np.mgrid[:SIZE, :SIZE]
    red = 0.5 + 0.4 * np.sin(xx / 1.5)
    green = 0.5 + 0.4 * np.cos((xx + yy) / 2.0)
    return np.stack([red, green, 1 - red], -1)[None].astype(np.float32)


@pytest.fixture(scope="module")
def net() -> Backbone:
    return tiny_backbone()


def value(objective: obj.Objective, backbone: Backbone, images) -> float:
    images = jnp.asarray(images)
    layers = tuple(sorted({layer for _, layer in objective.layers} - obj.PSEUDO_LAYERS))
    acts = backbone(images, layers) if layers else {}
    return float(objective({"main": {"input": images, "image": images, **acts}}))


# --------------------------------------------------------------------------------------------


def test_texture_synthesis_cuts_style_loss_hundredfold(net):
    layers = ("relu1", "relu2", "relu3")
    style = obj.style(obj.style_targets(net, stripes()[0], layers), loss="mse")
    start = noise(1)
    result = render(
        style,
        pixel_param(start),
        net,
        steps=300,
        optimizer="adam",
        learning_rate=0.1,
        progress=False,
    )
    initial, final = -value(style, net, start), -value(style, net, result.image)
    assert result.stopped_reason == "completed" and result.steps_run == 300
    assert final < initial / 100, (initial, final)
    assert result.losses.shape == (300,) and result.losses[-1] < result.losses[0] / 50
    assert result.final_loss == pytest.approx(final, rel=1e-4)


def test_activation_maximisation_raises_channel_tenfold(net):
    start = 0.5 + 0.02 * np.random.default_rng(2).normal(size=(1, SIZE, SIZE, 3))  # as Lucid's
    acts = np.asarray(net(jnp.asarray(start, jnp.float32), ("relu2",))["relu2"])
    target = int(np.argmax(acts.mean(axis=(0, 1, 2))))  # the most active channel: hardest ratio
    objective = obj.channel("relu2", target)
    result = render(objective, pixel_param(start), net, steps=100, progress=False)
    before, after = value(objective, net, start), value(objective, net, result.image)
    assert before > 0 and after > 10 * before, (before, after)


def test_style_transfer_keeps_content_and_lowers_combined_loss(net):
    content_image, style_image = shapes(), stripes()
    content_t = obj.content_targets(net, content_image[0], ("relu2",))
    style_t = obj.style_targets(net, style_image[0], ("relu1", "relu2"))
    objective = obj.style_transfer_objective(
        content_t, style_t, content_weight=1.0, style_weight=10.0, style_loss="mse"
    )
    assert set(objective.layers) == {("main", "relu1"), ("main", "relu2")}
    result = render(objective, pixel_param(content_image), net, steps=60, progress=False)
    assert -value(objective, net, result.image) < -value(objective, net, content_image)
    content_loss = obj.content(content_t)
    from_noise = -value(content_loss, net, noise(4))
    assert -value(content_loss, net, result.image) < from_noise
    assert set(result.terms) == {"style", "content"}
    assert sum(result.terms.values()) == pytest.approx(-result.final_loss, rel=1e-5)


def test_same_seed_same_image_other_seed_other_image(net):
    objective = obj.channel("relu3", 1)
    kwargs = dict(transforms=transforms.jitter(4), steps=20, progress=False)
    first = render(objective, pixel_param(noise(5)), net, seed=7, **kwargs)
    again = render(objective, pixel_param(noise(5)), net, seed=7, **kwargs)
    other = render(objective, pixel_param(noise(5)), net, seed=8, **kwargs)
    np.testing.assert_array_equal(first.image, again.image)
    np.testing.assert_array_equal(first.losses, again.losses)
    assert np.abs(first.image - other.image).max() > 1e-4


def test_steps_between_syncs_run_as_one_call_and_give_the_same_render(net, monkeypatch):
    import paramviz.render as render_module

    calls, run_class = [], render_module._Run

    class CountingRun(run_class):
        def __init__(self, program, inputs, state):
            def run_steps(state, inputs, count):
                calls.append(count)
                return program.run_steps(state, inputs, count)

            super().__init__(program._replace(run_steps=run_steps), inputs, state)

    monkeypatch.setattr(render_module, "_Run", CountingRun)
    objective = obj.channel("relu3", 1)
    kwargs = dict(transforms=transforms.jitter(4), steps=20, seed=3, progress=False)
    stepwise = render(objective, pixel_param(noise(5)), net, sync_every=1, **kwargs)
    assert calls == [1] * 21  # a call per step, and one whose report is the final image's
    calls.clear()
    chunked = render(objective, pixel_param(noise(5)), net, sync_every=8, thresholds=(5,), **kwargs)
    assert calls == [5, 1, 2, 8, 4, 1]  # to the threshold, the step that reports it, the chunks
    np.testing.assert_array_equal(stepwise.image, chunked.image)
    np.testing.assert_array_equal(stepwise.losses, chunked.losses)
    assert stepwise.final_loss == chunked.final_loss


def _explodes_above(level: float) -> obj.Objective:
    """Mean brightness, but NaN once the image's mean passes ``level``."""

    def fn(features):
        mean = jnp.mean(features["main"]["image"])
        return jnp.where(mean > level, jnp.nan, mean)

    return obj.Objective(fn, frozenset({("main", "image")}), "explodes")


def test_non_finite_loss_stops_with_last_finite_image(net):
    start = np.full((1, SIZE, SIZE, 3), 0.5, np.float32)
    with pytest.warns(RuntimeWarning, match="stopped at step"):
        result = render(
            _explodes_above(0.7),
            pixel_param(start),
            net,
            steps=200,
            learning_rate=0.05,
            sync_every=50,
            thresholds=(150,),
            progress=False,
        )
    assert result.stopped_reason.startswith("stopped at step")
    assert 0 < result.steps_run < 199
    assert np.isfinite(result.image).all() and 0.6 < result.image.mean() <= 0.7
    assert len(result.losses) == result.steps_run + 1 and np.isfinite(result.losses).all()
    assert np.isfinite(result.final_loss)
    assert 150 not in result.snapshots  # brightness passes 0.7 long before step 150


def test_thresholds_give_snapshots_and_callbacks(net):
    seen = []
    result = render(
        obj.channel("conv1", 0),
        pixel_param(noise(6)),
        net,
        steps=30,
        thresholds=(0, 10, 30),
        sync_every=7,
        progress=False,
        callback=lambda step, image, loss: seen.append((step, image.shape, loss)),
    )
    assert sorted(result.snapshots) == [0, 10, 30]
    np.testing.assert_allclose(result.snapshots[0], noise(6), atol=1e-3)
    np.testing.assert_array_equal(result.snapshots[30], result.image)
    assert [s for s, _, _ in seen] == [0, 10, 30]
    assert all(shape == (1, SIZE, SIZE, 3) for _, shape, _ in seen)
    assert seen[0][2] == pytest.approx(result.losses[0], rel=1e-5)
    assert seen[-1][2] == pytest.approx(result.final_loss, rel=1e-5)
    assert seen[-1][2] < seen[0][2]


def test_relu_redirect_moves_a_dead_channel(net):
    # Kill conv1 channel 3 with a huge negative bias: its ReLU passes no gradient at all.
    variables = jax.tree.map(lambda x: x, net.variables)
    variables["params"]["conv1"]["bias"] = variables["params"]["conv1"]["bias"].at[3].set(-50.0)
    dead = net.replace(variables=variables)
    objective = obj.channel("relu1", 3)
    start = noise(7)
    plain = render(objective, pixel_param(start), dead, steps=5, progress=False)
    redirected = render(
        objective, pixel_param(start), dead, steps=5, relu_redirect_steps=16, progress=False
    )
    np.testing.assert_allclose(plain.image, start, atol=1e-5)
    assert np.abs(redirected.image - start).max() > 1e-2


def test_lbfgs_reduces_loss(net):
    style = obj.style(obj.style_targets(net, stripes()[0], ("relu1", "relu2")), loss="mse")
    result = render(style, pixel_param(noise(8)), net, steps=15, optimizer="lbfgs", progress=False)
    assert result.stopped_reason == "completed"
    assert result.final_loss < result.losses[0] / 10, (result.losses[0], result.final_loss)


def test_only_needed_layers_reach_each_network(net):
    other = tiny_backbone(seed=1)
    SEEN_LAYERS.clear()
    objective = (
        obj.channel("relu2", 0)
        + obj.neuron("conv1", 1)
        - 1e-3 * obj.total_variation()
        + obj.channel("relu1", 2, network="content")
    )
    result = render(
        objective,
        pixel_param(noise(9)),
        net,
        backbones={"content": other},
        steps=3,
        optimizer=optax.sgd(0.1),
        progress=False,
    )
    assert set(SEEN_LAYERS) == {("conv1", "relu2"), ("relu1",)}
    assert len(result.terms) == 4


def test_unknown_layer_or_network_is_a_user_error(net):
    param = pixel_param(noise(10))
    with pytest.raises(UserError, match="no layer 'relu9'"):
        render(obj.channel("relu9", 0), param, net, steps=1, progress=False)
    with pytest.raises(UserError, match="network 'content'"):
        render(obj.channel("relu1", 0, network="content"), param, net, steps=1, progress=False)
    with pytest.raises(UserError, match="thresholds"):
        render("relu1:0", param, net, steps=5, thresholds=(6,), progress=False)
    with pytest.raises(UserError, match="channel 99 is out of range"):
        render("relu1:99", param, net, steps=1, progress=False)
    with pytest.raises(UserError, match="unknown transform preset"):
        render("relu1:0", param, net, steps=1, transforms="wobbly", progress=False)
    with pytest.raises(UserError, match="unknown optimizer"):
        render("relu1:0", param, net, steps=1, optimizer="sgdx", progress=False)


def test_batched_units_each_raise_their_own_channel(net):
    start = noise(11, batch=2)
    acts = np.asarray(net(jnp.asarray(start), ("relu2",))["relu2"]).mean(axis=(1, 2))
    first, second = 0, 1
    units = [(0, first), (1, second)]
    objective = obj.Objective.sum(obj.channel("relu2", c, batch=i) for i, c in units)
    result = render(objective, pixel_param(start), net, steps=40, progress=False)
    after = np.asarray(net(jnp.asarray(result.image), ("relu2",))["relu2"]).mean(axis=(1, 2))
    assert after[0, first] - acts[0, first] > after[1, first] - acts[1, first]
    assert after[1, second] - acts[1, second] > after[0, second] - acts[0, second]
    assert list(result.terms) == ["channel(relu2:0, batch=0)", "channel(relu2:1, batch=1)"]


def test_real_vgg_fourier_and_transforms_run_together():
    from paramviz import param
    from paramviz.backbones import create
    from paramviz.backbones.base import make_backbone

    module = create("vgg19", width=1 / 16, last_layer="relu3_1", pooling="avg")
    vgg = make_backbone(module, numpy_init(module, "relu3_1"))
    layers = obj.GATYS_VGG19.style_layers[:3]
    style = obj.style(obj.style_targets(vgg, stripes()[0], layers), loss="mse")
    pad_and_jitter = transforms.compose(transforms.pad(4), transforms.jitter(4))
    result = render(
        style,
        param.fourier(SIZE, init=noise(12)),
        vgg,
        transforms=pad_and_jitter,
        steps=40,
        relu_redirect_steps=16,
        thresholds=(0, 40),
        progress=False,
    )
    assert result.stopped_reason == "completed"
    assert result.final_loss < result.losses[0] / 2, (result.losses[0], result.final_loss)
    assert result.image.shape == (1, SIZE, SIZE, 3)
    np.testing.assert_allclose(result.snapshots[0], noise(12), atol=2e-3)
