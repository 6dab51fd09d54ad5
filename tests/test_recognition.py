"""The judges' adversarial baseline (experiments.recognition) on seeded random ResNet-18 stand-ins:
the attack reaches its target on the attacked network and does nothing at eps 0, it transfers to
a sibling of the attacked network but not to a stranger, it stays in its ball and its order, and
the inputs it cannot judge are refused with messages that say why."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from paramviz import backbones, rng
from paramviz.errors import UserError
from paramviz.experiments import metrics
from paramviz.experiments.attacks import Threat
from paramviz.experiments.pictures import load_picture
from paramviz.experiments.recognition import adversarial_baseline, targeted_examples

SIZE = 32
CLASSES = (9, 4, 0, 7, 2, 5, 8, 1, 6, 3)  # all ten, shuffled: the order must be kept
EPS = 2.0
STEPS = 40  # above attacks.MAX_UNROLLED_STEPS: a loop, which compiles in half the time here


def network(seed: int, num_classes: int = 10) -> backbones.Backbone:
    return backbones.init(
        "resnet18", rng.key(seed), image_size=(SIZE, SIZE), num_classes=num_classes, width=0.25
    )


def sibling(backbone: backbones.Backbone, noise: float) -> backbones.Backbone:
    """``backbone`` with every kernel moved by ``noise`` times its own spread (seeded)."""
    draws = np.random.default_rng(100)

    def perturbed(leaf):
        leaf = np.asarray(leaf)
        if leaf.ndim < 2:
            return leaf
        return leaf + noise * leaf.std() * draws.standard_normal(leaf.shape, np.float32)

    return backbone.replace(variables=jax.device_put(jax.tree.map(perturbed, backbone.variables)))


@pytest.fixture(scope="module")
def pictures() -> np.ndarray:
    return np.stack([load_picture(name, SIZE) for name in ("astronaut", "chelsea", "coffee")])


@pytest.fixture(scope="module")
def attacked() -> backbones.Backbone:
    return network(0)


@pytest.fixture(scope="module")
def baseline(attacked, pictures):
    # measured: own 1.0, self 1.0, sibling 0.87, stranger 0.13; every clean rate 0.10
    judges = {"self": attacked, "sibling": sibling(attacked, 0.1), "stranger": network(1)}
    threat = Threat("l2", EPS, STEPS)
    return adversarial_baseline(attacked, judges, pictures, CLASSES, threat, rng.key(3), k=1)


def test_the_attack_reaches_its_target_on_the_attacked_network(baseline):
    # ten classes, each picture once towards each: top-1 chance is exactly 1/10
    assert baseline.clean_rates["self"] == pytest.approx(0.1)
    assert baseline.own_rate >= 0.9
    assert baseline.rates["self"] == baseline.own_rate
    assert baseline.threat == "L2 eps=2, 40 steps of 0.125"


def test_at_eps_zero_the_examples_are_the_pictures_and_nothing_changes(attacked, pictures):
    judges = {"self": attacked, "stranger": network(1)}
    threat = Threat("l2", 0.0, STEPS)
    zero = adversarial_baseline(attacked, judges, pictures, CLASSES, threat, rng.key(3), k=1)
    np.testing.assert_array_equal(zero.examples, np.repeat(pictures, len(CLASSES), axis=0))
    assert zero.rates == zero.clean_rates
    assert zero.own_rate == zero.clean_rates["self"]


def test_the_attack_transfers_to_a_sibling_but_not_to_a_stranger(baseline):
    """Why the baseline exists: a judge that shares the attacked network's features names the
    target from a perturbation; an unrelated network of the same architecture does not."""
    assert baseline.rates["stranger"] <= baseline.clean_rates["stranger"] + 0.15
    assert baseline.rates["sibling"] >= baseline.rates["stranger"] + 0.4


def test_examples_stay_in_the_ball_and_in_pictures_outer_classes_inner_order(
    baseline, attacked, pictures
):
    clean = np.repeat(pictures, len(CLASSES), axis=0)
    distances = np.linalg.norm((baseline.examples - clean).reshape(len(clean), -1), axis=1)
    assert np.all(distances <= EPS + 1e-5)
    assert baseline.examples.min() >= 0.0 and baseline.examples.max() <= 1.0
    np.testing.assert_array_equal(baseline.classes, np.tile(CLASSES, len(pictures)))
    named = np.argmax(metrics.judge_logits(attacked, baseline.examples), axis=1)
    assert np.mean(named == baseline.classes) >= 0.9


def test_examples_alone_are_the_baselines_examples(baseline, attacked, pictures):
    examples = targeted_examples(attacked, pictures, CLASSES, Threat("l2", EPS, STEPS), rng.key(3))
    np.testing.assert_array_equal(examples, baseline.examples)


def test_a_judge_of_other_classes_is_refused(attacked, pictures):
    judges = {"lite1": network(1, num_classes=5)}
    threat = Threat("l2", EPS, STEPS)
    with pytest.raises(UserError) as refused:
        adversarial_baseline(attacked, judges, pictures, CLASSES, threat, rng.key(0))
    assert str(refused.value) == (
        "judge 'lite1' (resnet18) has 5 classes, the attacked network (resnet18) 10: "
        "their class indices do not name the same classes"
    )


def test_a_judge_without_logits_is_refused(attacked, pictures):
    trunk = backbones.init("vgg19", rng.key(0), image_size=(SIZE, SIZE), last_layer="relu3_1")
    threat = Threat("l2", EPS, STEPS)
    with pytest.raises(UserError) as refused:
        adversarial_baseline(attacked, {"vgg": trunk}, pictures, CLASSES, threat, rng.key(0))
    assert str(refused.value) == (
        "judge 'vgg' (vgg19) has no 'logits' layer (its last layer is 'relu3_1'): "
        "only a classifier can name a class"
    )


def test_classes_out_of_range_are_refused(attacked, pictures):
    with pytest.raises(UserError) as refused:
        targeted_examples(attacked, pictures, [3, 10, -1], Threat("l2", EPS, 1), rng.key(0))
    assert str(refused.value) == (
        "classes [10, -1] out of range: the attacked network (resnet18) has 10 classes (0 to 9)"
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p[0], "pictures must be a batch (N, H, W, 3) of RGB images, got (32, 32, 3)"),
        (lambda p: p * 255, "pictures must hold RGB values in [0, 1], got values from 0 to 255"),
    ],
)
def test_pictures_that_are_not_a_batch_in_the_unit_range_are_refused(
    attacked, pictures, change, message
):
    with pytest.raises(UserError) as refused:
        targeted_examples(attacked, change(pictures), CLASSES, Threat("l2", EPS, 1), rng.key(0))
    assert str(refused.value) == message
