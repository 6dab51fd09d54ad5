"""A robust twin by adversarial distillation, on tiny stand-ins: it becomes harder to move within
the ball while staying close to the original on clean pictures, it resumes exactly where an
interruption left it, a finished one is reused, and the command refuses what it cannot do."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.cli import one_line, run_cli
from skimage import data

from paramviz import backbones, rng
from paramviz.backbones import flatten
from paramviz.cli import main
from paramviz.experiments.train import twin as twins

CLASSIFIER = "conv8k3s2p1,relu,conv16k3s2p1,relu,flatten,linear10"
TRUNK = "conv8k3s1p1,relu,maxpool2,conv8k3s1p1,relu"
SIZE = 16


def photos() -> list[np.ndarray]:
    return [
        data.astronaut(),
        data.coffee(),
        data.chelsea(),
        data.rocket(),
        data.immunohistochemistry(),
    ]


def network(spec: str) -> backbones.Backbone:
    return backbones.init(
        "sequential", rng.key(0), (SIZE, SIZE), spec=spec, input_size=(SIZE, SIZE)
    )


def config(**changes) -> twins.TwinConfig:
    settings = {
        "teacher": "stand-in",
        "target": "logits",
        "eps": 0.5,
        "image_size": SIZE,
        "steps": 6,
        "batch_size": 8,
        "attack_steps": 3,
        "learning_rate": 3e-3,
        "eps_warmup": 0.0,
    }
    return twins.TwinConfig(**{**settings, **changes})


def attacked_distance(original, student, settings, images) -> float:
    """Mean D(S(x'), T(x)) with x' a PGD-20 attack on the student (the training objective)."""
    target, layers = twins.resolved_target(original, settings)
    reference = original(images, layers)

    def distance(x):
        return twins.output_distance(target, student(x, layers), reference)

    threat = twins.Threat("l2", settings.eps, 20)
    adversarial = threat.attack(distance, images, rng.key(5))
    return float(np.mean(np.asarray(distance(adversarial))))


@pytest.mark.parametrize(
    ("spec", "target", "learning_rate", "factor"),
    # A stand-in trunk's features are one or two convolutions of the pixels: a twin that keeps
    # them on clean pictures has little freedom left (measured: 1.25x after 150 steps at 1e-2,
    # and no more with 3x the learning rate or 4x the attacked term's weight)
    [(CLASSIFIER, "logits", 3e-3, 3.0), (TRUNK, "features", 1e-2, 1.2)],
)
def test_the_twin_resists_the_ball_and_stays_close_on_clean_pictures(
    spec, target, learning_rate, factor, tmp_path
):
    original = network(spec)
    settings = config(steps=150, learning_rate=learning_rate, target=target)
    report = twins.train_twin(original, settings, tmp_path / "twin.safetensors", photos=photos())
    assert report.complete and not twins.state_path(report.path).exists()
    twin = backbones.load(report.path)
    held = twins.held_out_crops(settings, photos(), 64)
    before = attacked_distance(original, original, settings, held)
    after = attacked_distance(original, twin, settings, held)
    print(f"\n{target}: attacked distance {before:.4f} -> {after:.4f}")
    assert after < before / factor
    evaluation = twins.evaluate_twin(
        original,
        twin,
        settings,
        robustness_pictures=held[:8],
        robustness_eps=settings.eps,
        robustness_layers=["relu1"] if target == "features" else ["relu2"],
        photos=photos(),
        crops=64,
        robustness_steps=5,
    )
    ((original_r, twin_r),) = evaluation.robustness.values()
    print(evaluation)
    assert twin_r < original_r
    clean, attacked, original_attacked = evaluation.agreement or evaluation.feature_error
    if target == "logits":
        assert evaluation.feature_error is None
        assert clean >= 0.7 and attacked > original_attacked
    else:
        assert evaluation.agreement is None  # the stand-in trunk has no logits
        assert clean < 0.01 and attacked < original_attacked


def test_an_interrupted_twin_resumes_exactly_and_a_finished_one_is_reused(tmp_path):
    original = network(CLASSIFIER)
    settings = config()
    straight = twins.train_twin(original, settings, tmp_path / "a.safetensors", photos=photos())
    path = tmp_path / "b.safetensors"
    first = twins.train_twin(original, settings, path, photos=photos(), stop_after=2)
    assert not first.complete and twins.state_path(path).is_file()
    assert backbones.read_metadata(path)["training_steps"] == "2/6"
    resumed = twins.train_twin(original, settings, path, photos=photos())
    assert resumed.complete and not twins.state_path(path).exists()
    ours, theirs = (flatten(backbones.load(p).variables) for p in (path, straight.path))
    for key, value in theirs.items():
        np.testing.assert_array_equal(ours[key], value, err_msg=key)
    stamp = path.stat().st_mtime_ns
    again = twins.train_twin(original, settings, path, photos=photos())
    assert again.complete and path.stat().st_mtime_ns == stamp  # reused, not retrained
    other = twins.train_twin(original, config(seed=1), path, photos=photos(), stop_after=1)
    assert not other.complete  # other settings never reuse a twin


def test_a_trunk_has_no_logits_to_distil_and_features_default_to_the_style_layers():
    with pytest.raises(twins.UserError, match="has no logits .* use --target features"):
        twins.resolved_target(network(TRUNK), config(target="logits"))
    assert twins.resolved_target(network(TRUNK), config(target="features")) == (
        "features",
        ("relu1", "relu2"),
    )


def test_the_command_makes_a_named_twin_and_says_how_it_compares(tmp_path, capsys, monkeypatch):
    pool = twins.photo_pool
    monkeypatch.setattr(twins, "photo_pool", lambda side, given=None: pool(side, photos()))
    net = backbones.save(tmp_path / "net.safetensors", network(CLASSIFIER))
    argv = ["train-twin", "--weights", str(net), "-o", "mine", "--target", "logits", "--eps"]
    argv += ["0.5", "--image-size"]
    argv += [str(SIZE), "--size", str(SIZE), "--steps", "4", "--batch-size", "8", "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "on 192 held-out crops, attacked by PGD (L2 eps=0.5, 20 steps of 0.0625):" in printed
    assert "top-1 agreement" in printed and "feature error" not in printed
    assert f"R(f), L2 eps=0.5, 20 steps of 0.0625 at {SIZE} px:" in printed
    assert [line.split()[0] for line in printed.splitlines() if line.startswith("relu")] == [
        "relu1",
        "relu2",
    ]
    assert printed.rstrip().endswith("use it with --weights mine")
    twin = backbones.load(twins.twin_path("mine"))
    assert twin.metadata["source_format"] == "paramviz-twin"
    assert main(argv) == 0  # the same command again: reused, its evaluation read back
    assert capsys.readouterr().out == printed


def test_the_command_refuses_random_weights_and_its_own_input(tmp_path, capsys):
    code, err = run_cli(capsys, "train-twin", "--weights", "random", "-o", "x")
    assert code == 2
    assert (
        one_line(err) == "paramviz: error: a robust twin needs real weights, not --weights random"
    )
    net = backbones.save(tmp_path / "net.safetensors", network(CLASSIFIER))
    code, err = run_cli(capsys, "train-twin", "--weights", net, "-o", net)
    assert code == 2 and f"is the input {net}" in one_line(err)
