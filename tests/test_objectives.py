"""Objectives against plain NumPy / PyTorch computations, and the objective algebra."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from paramviz import backbones
from paramviz import objectives as obj
from paramviz.errors import UserError

RNG = np.random.default_rng(0)
ACTS = RNG.normal(size=(3, 5, 7, 4)).astype(np.float32)  # N, H, W, C
EVEN = RNG.normal(size=(2, 4, 6, 3)).astype(np.float32)
LOGITS = RNG.normal(size=(2, 10)).astype(np.float32)
IMAGES = RNG.uniform(size=(2, 6, 5, 3)).astype(np.float32)


def features(**layers) -> dict:
    main = {"input": IMAGES, "image": IMAGES, "acts": ACTS, "even": EVEN, "logits": LOGITS}
    return {"main": {k: jnp.asarray(v) for k, v in {**main, **layers}.items()}}


def of(objective: obj.Objective, feats: dict | None = None) -> float:
    return float(objective(feats or features()))


# --------------------------------------------------------------------------------------------
# activation objectives


def test_channel_is_mean_of_one_channel_over_batch_and_space():
    assert of(obj.channel("acts", 2)) == pytest.approx(ACTS[..., 2].mean(), rel=1e-6)
    assert of(obj.channel("acts", 2, batch=1)) == pytest.approx(ACTS[1, ..., 2].mean(), rel=1e-6)
    assert of(obj.channel("acts", -1, batch=-1)) == pytest.approx(ACTS[2, ..., 3].mean(), rel=1e-6)
    assert obj.channel("acts", 2).layers == {("main", "acts")}


def test_neuron_defaults_to_lucid_centre_for_odd_and_even_sizes():
    # 5 x 7: the true centre (2, 3); 4 x 6: bottom-right of the central 2x2, i.e. (2, 3).
    assert of(obj.neuron("acts", 1)) == pytest.approx(ACTS[:, 2, 3, 1].mean(), rel=1e-6)
    assert of(obj.neuron("even", 0)) == pytest.approx(EVEN[:, 2, 3, 0].mean(), rel=1e-6)
    assert of(obj.neuron("even", 0, x=1, y=4, batch=1)) == pytest.approx(EVEN[1, 1, 4, 0])


def test_logit_reads_dense_outputs():
    assert of(obj.logit(7)) == pytest.approx(LOGITS[:, 7].mean(), rel=1e-6)
    assert of(obj.logit(7, batch=0)) == pytest.approx(LOGITS[0, 7], rel=1e-6)
    assert of(obj.channel("logits", 3)) == pytest.approx(LOGITS[:, 3].mean(), rel=1e-6)
    assert of(obj.neuron("logits", 3)) == pytest.approx(LOGITS[:, 3].mean(), rel=1e-6)


def test_out_of_range_indices_fail_loudly_instead_of_clamping():
    with pytest.raises(UserError, match="channel 4 is out of range"):
        of(obj.channel("acts", 4))
    with pytest.raises(UserError, match="batch index 3"):
        of(obj.channel("acts", 0, batch=3))
    with pytest.raises(UserError, match="x \\(row\\) 5"):
        of(obj.neuron("acts", 0, x=5))
    with pytest.raises(UserError, match="not computed"):
        of(obj.channel("missing", 0))


@pytest.mark.parametrize("cossim_pow", [0, 1, 2.5])
def test_direction_matches_lucid_formula(cossim_pow):
    vec = np.array([1.0, -2.0, 0.5, 3.0], np.float32)
    dot = (ACTS * vec).sum(-1)
    expected = dot.mean()
    if cossim_pow:
        cossim = dot / (1e-4 + np.linalg.norm(ACTS, axis=-1)) / (1e-4 + np.linalg.norm(vec))
        expected = (dot * np.maximum(0.1, cossim) ** cossim_pow).mean()
    assert of(obj.direction("acts", vec, cossim_pow)) == pytest.approx(expected, rel=1e-5)
    single = (ACTS[1] * vec).sum(-1).mean()
    assert of(obj.direction("acts", vec, batch=1)) == pytest.approx(single, rel=1e-5)
    with pytest.raises(UserError, match="4 channels"):
        of(obj.direction("acts", vec[:3]))


def test_diversity_is_lucids_positive_gram_similarity():
    flat = ACTS.reshape(3, -1, 4)
    grams = [f.T @ f for f in flat]
    grams = [g / np.linalg.norm(g) for g in grams]
    expected = sum(np.sum(grams[i] * grams[j]) for i in range(3) for j in range(3) if i != j) / 3
    assert of(obj.diversity("acts")) == pytest.approx(expected, rel=1e-5)
    assert expected > 0  # so users subtract it, as in Lucid
    one = features(acts=ACTS[:1])
    assert of(obj.diversity("acts"), one) == pytest.approx(0.0, abs=1e-6)


def test_deepdream_is_mean_square():
    assert of(obj.deepdream("acts")) == pytest.approx((ACTS**2).mean(), rel=1e-6)


# --------------------------------------------------------------------------------------------
# regularisers


def test_total_variation_l1_l2_match_numpy():
    tv = np.abs(np.diff(IMAGES, axis=1)).sum() + np.abs(np.diff(IMAGES, axis=2)).sum()
    assert of(obj.total_variation()) == pytest.approx(tv, rel=1e-5)
    assert of(obj.L1(constant=0.5)) == pytest.approx(np.abs(IMAGES - 0.5).sum(), rel=1e-5)
    assert of(obj.L1(batch=1)) == pytest.approx(np.abs(IMAGES[1]).sum(), rel=1e-5)
    l2 = np.sqrt(1e-6 + ((IMAGES - 0.25) ** 2).sum())
    assert of(obj.L2(constant=0.25)) == pytest.approx(l2, rel=1e-5)
    assert obj.total_variation("image").layers == {("main", "image")}


def numpy_lucid_blur(x: np.ndarray) -> np.ndarray:
    kernel = np.array([[0.5, 0.5, 0.5], [0.5, 1.0, 0.5], [0.5, 0.5, 0.5]])
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    ones = np.pad(np.ones_like(x), ((0, 0), (1, 1), (1, 1), (0, 0)))
    h, w = x.shape[1:3]
    total = sum(kernel[i, j] * padded[:, i : i + h, j : j + w] for i in range(3) for j in range(3))
    weight = sum(kernel[i, j] * ones[:, i : i + h, j : j + w] for i in range(3) for j in range(3))
    return total / weight


def test_blur_penalty_value_and_gradient_pull_towards_blurred_image():
    blurred = numpy_lucid_blur(IMAGES)
    np.testing.assert_allclose(obj.lucid_blur(jnp.asarray(IMAGES)), blurred, rtol=1e-5)
    penalty = obj.blur()
    assert of(penalty) == pytest.approx(0.5 * ((IMAGES - blurred) ** 2).sum(), rel=1e-5)
    grad = jax.grad(lambda x: penalty({"main": {"input": x}}))(jnp.asarray(IMAGES))
    np.testing.assert_allclose(grad, IMAGES - blurred, rtol=1e-4, atol=1e-6)


# --------------------------------------------------------------------------------------------
# style and content against a PyTorch reference


def torch_gram(acts_nhwc: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(acts_nhwc).permute(0, 3, 1, 2)  # NCHW, as in the PyTorch tutorials
    n, c, h, w = x.shape
    f = x.reshape(n, c, h * w)
    return f @ f.transpose(1, 2) / (h * w)


def test_gram_matches_torch_and_treats_dense_as_one_by_one():
    np.testing.assert_allclose(obj.gram(jnp.asarray(ACTS)), torch_gram(ACTS).numpy(), rtol=1e-5)
    dense = obj.gram(jnp.asarray(LOGITS))
    np.testing.assert_allclose(dense, LOGITS[:, :, None] * LOGITS[:, None, :], rtol=1e-5)


@pytest.mark.parametrize("loss", ["l1", "mse"])
def test_style_is_negative_gram_loss_like_torch(loss):
    other = RNG.normal(size=(1, 4, 4, 3)).astype(np.float32)
    target_acts = RNG.normal(size=(1, 9, 9, 4)).astype(np.float32)
    targets = {"acts": torch_gram(target_acts)[0].numpy(), "other": obj.gram(other)[0]}
    weights = {"acts": 2.0}
    distance = F.l1_loss if loss == "l1" else F.mse_loss
    gram_acts = torch_gram(ACTS)
    expected = 2.0 * distance(gram_acts, torch.from_numpy(targets["acts"]).expand_as(gram_acts))
    expected += distance(torch_gram(other), torch.from_numpy(np.array(targets["other"]))[None])
    style = obj.style(targets, weights, loss=loss)
    assert of(style, features(other=other)) == pytest.approx(-expected.item(), rel=1e-5)
    assert style.layers == {("main", "acts"), ("main", "other")}


@pytest.mark.parametrize("loss", ["l1", "mse"])
def test_content_is_negative_activation_loss_like_torch(loss):
    target = RNG.normal(size=(1, 5, 7, 4)).astype(np.float32)
    distance = F.l1_loss if loss == "l1" else F.mse_loss
    expected = distance(torch.from_numpy(ACTS), torch.from_numpy(target).expand(3, -1, -1, -1))
    content = obj.content({"acts": target}, loss=loss, network="content")
    feats = {"content": features()["main"]}
    assert of(content, feats) == pytest.approx(-expected.item(), rel=1e-5)
    assert content.layers == {("content", "acts")}
    with pytest.raises(UserError, match="shape"):
        of(content, {"content": features(acts=EVEN)["main"]})


def test_bad_loss_or_weights_are_user_errors():
    with pytest.raises(UserError, match="unknown loss"):
        obj.style({"acts": np.eye(4)}, loss="huber")
    with pytest.raises(UserError, match="without a target"):
        obj.content({"acts": ACTS}, layer_weights={"nope": 1.0})


def test_targets_are_pytree_leaves_not_closure_constants():
    target = np.full((4, 4), 3.0, np.float32)
    leaves = jax.tree.leaves(obj.style({"acts": target}).fn)
    assert any(np.array_equal(leaf, target) for leaf in leaves)  # render passes these into jit


def test_presets_and_style_transfer_objective():
    assert obj.GATYS_VGG19.style_layers == ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    assert obj.GATYS_VGG19.content_layers == ("relu4_2",)
    assert obj.GATYS_VGG19.pooling == "avg"
    assert obj.NAKANO_RESNET50.style_layers == ("layer1", "layer2", "layer3", "layer4")
    assert obj.NAKANO_RESNET50.content_layers == ("layer3",)

    style_t, content_t = {"acts": np.eye(4, dtype=np.float32)}, {"even": EVEN}
    combined = obj.style_transfer_objective(content_t, style_t, 2.0, 5.0, 0.1)
    assert [t.name for t in combined.summands()] == ["style", "content", "tv"]
    assert combined.layers == {("main", "acts"), ("main", "even"), ("main", "image")}
    parts = 5.0 * of(obj.style(style_t)) + 2.0 * of(obj.content(content_t))
    parts -= 0.1 * of(obj.total_variation("image"))
    assert of(combined) == pytest.approx(parts, rel=1e-5)
    texture = obj.style_transfer_objective({}, style_t)
    assert [t.name for t in texture.summands()] == ["style"]


@pytest.mark.parametrize(
    "architecture",
    [arch for arch in backbones.architectures() if arch.style is not None],
    ids=lambda arch: arch.name,
)
def test_presets_name_layers_of_their_own_architecture(architecture):
    preset = architecture.style
    options = {"pooling": preset.pooling} if preset.pooling else {}
    names = architecture.layer_names(**options)
    assert set(preset.style_layers + preset.content_layers) <= set(names)
    assert architecture.pooling or preset.pooling is None


# --------------------------------------------------------------------------------------------
# algebra


def test_algebra_values_and_layer_union():
    a, b = obj.channel("acts", 0), obj.deepdream("even")
    va, vb = of(a), of(b)
    cases = {
        "a + b": (a + b, va + vb),
        "a - b": (a - b, va - vb),
        "-a": (-a, -va),
        "2 * a": (2 * a, 2 * va),
        "a * 3": (a * 3, 3 * va),
        "a * b": (a * b, va * vb),
        "a / 4": (a / 4, va / 4),
        "a / b": (a / b, va / vb),
        "1 / b": (1 / b, 1 / vb),
        "1 - a": (1 - a, 1 - va),
        "a + 1": (a + 1, va + 1),
        "0.5 * a - 2 * b + 1": (0.5 * a - 2 * b + 1, 0.5 * va - 2 * vb + 1),
    }
    for label, (objective, expected) in cases.items():
        assert of(objective) == pytest.approx(expected, rel=1e-5), label
    assert (
        (a + b).layers == (a * b).layers == (a / b).layers == {("main", "acts"), ("main", "even")}
    )
    assert (2 * a).layers == a.layers


def test_sum_flattens_terms_and_supports_batched_units():
    channels = [3, 0, 2]
    total = obj.Objective.sum(obj.channel("acts", c, batch=i) for i, c in enumerate(channels))
    expected = sum(ACTS[i, ..., c].mean() for i, c in enumerate(channels))
    assert of(total) == pytest.approx(expected, rel=1e-5)
    assert len(total.summands()) == 3
    assert of(sum(total.summands())) == pytest.approx(expected, rel=1e-5)  # builtin sum works
    nested = (total - obj.diversity("acts")) + total
    assert len(nested.summands()) == 7
    assert "- diversity(acts)" in nested.name
    assert of(obj.Objective.sum([])) == 0.0
    with pytest.raises(TypeError):
        obj.Objective.sum([obj.channel("acts", 0), "acts:1"])


def test_as_objective_parses_layer_channel_strings():
    parsed = obj.as_objective("acts:2")
    assert of(parsed) == pytest.approx(of(obj.channel("acts", 2)))
    assert parsed.layers == {("main", "acts")}
    assert obj.as_objective(" block/conv:1 ").layers == {("main", "block/conv")}
    same = obj.channel("acts", 1)
    assert obj.as_objective(same) is same
    for bad in ["acts", "acts:", ":3", "acts:x", "acts:1.5", 3]:
        with pytest.raises(UserError, match="expected 'layer:channel'"):
            obj.as_objective(bad)
