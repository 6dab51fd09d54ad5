"""Training matched pairs (experiments.train): adversarial training works, resume is exact,
checkpoints are converted weights that load with the same logits."""

from __future__ import annotations

import dataclasses
import json

import flax
import jax
import numpy as np
import pytest
from flax import serialization

from paramviz.backbones import init, load
from paramviz.cli import build_parser
from paramviz.errors import UserError
from paramviz.experiments import train as training
from paramviz.experiments.datasets import Dataset
from paramviz.experiments.train import TrainConfig, fit, state_path

SHAPE = (8, 8, 3)


def robust_and_fragile_features(n: int, seed: int) -> Dataset:
    """Two classes told apart by (Tsipras et al. 2019, in pixels):

    * a *robust* feature: channel 0 is 0.5 ± 0.3, on the label's side for 90 % of the images;
    * *fragile* features: channels 1–2 are 0.5 ± 0.05 on the label's side plus noise (σ 0.1);
      together they give ~100 % clean accuracy, but an L∞ shift of 0.1 reverses every one.

    Standard training leans on the fragile features (more accurate); adversarial training at
    L∞ ε = 0.1 must use the robust one, which keeps ~90 % accuracy under attack.
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n).astype(np.int32)
    sign = (2 * labels - 1)[:, None, None]
    robust_sign = np.where(rng.random(n) < 0.9, 1, -1)[:, None, None] * sign
    images = np.empty((n, *SHAPE), np.float32)
    images[..., 0] = 0.5 + 0.3 * robust_sign + 0.05 * rng.standard_normal((n, *SHAPE[:2]))
    images[..., 1:] = 0.5 + 0.05 * sign[..., None] + 0.1 * rng.standard_normal((n, *SHAPE[:2], 2))
    return Dataset(np.clip(images, 0, 1), labels, ("minus", "plus"))


def small_backbone(spec: str = "flatten,linear16,relu,linear2", seed: int = 0):
    return init(
        "sequential",
        jax.random.PRNGKey(seed),
        image_size=SHAPE[:2],
        spec=spec,
        input_size=SHAPE[:2],
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
    )


SYNTHETIC = TrainConfig(
    epochs=6,
    batch_size=64,
    learning_rate=1e-2,
    weight_decay=0.0,
    norm="linf",
    eps=0.1,
    attack_steps=3,
    eval_steps=10,
    eval_robust_limit=None,
)


def test_adversarial_training_raises_robust_accuracy_by_30_points(tmp_path):
    """Same data, seed and steps: PGD training gains ≥ 30 points of PGD accuracy (L∞ 0.1,
    10 steps) over standard training, and both classify clean images well."""
    train_set, test_set = robust_and_fragile_features(1024, 0), robust_and_fragile_features(512, 1)
    results = {}
    for mode in ("none", "pgd"):
        config = dataclasses.replace(SYNTHETIC, adversarial=mode)
        path = tmp_path / f"{mode}.safetensors"
        report = fit(small_backbone(), train_set, test_set, config, path, progress=False)
        results[mode] = report.evaluation
    standard, robust = results["none"], results["pgd"]
    assert standard.clean_accuracy > 0.95 and robust.clean_accuracy > 0.8
    assert robust.robust_accuracy >= standard.robust_accuracy + 0.30, (standard, robust)


def saved_state(path):
    return serialization.msgpack_restore(state_path(path).read_bytes())["state"]


def weights(path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(path))


@pytest.mark.parametrize("mode", ["pgd", "free"])
def test_resuming_after_an_interruption_gives_identical_weights(tmp_path, mode):
    train_set = robust_and_fragile_features(512, 0)
    config = dataclasses.replace(SYNTHETIC, adversarial=mode, epochs=2, eval_steps=1)
    steps = 2 * (512 // 64)

    def run(path, **options):
        return fit(small_backbone(), train_set, train_set, config, path, progress=False, **options)

    straight = tmp_path / "straight.safetensors"
    reference_report = run(straight)
    assert reference_report.steps_done == steps
    interrupted = tmp_path / "interrupted.safetensors"
    first = run(interrupted, stop_after=steps // 2)
    assert not first.complete and int(saved_state(interrupted)["step"]) == steps // 2
    half = weights(interrupted)
    second = run(interrupted)  # picks the checkpoint up
    assert second.complete and second.evaluation == reference_report.evaluation
    final, reference = weights(interrupted), weights(straight)
    assert final.keys() == reference.keys()
    for key in reference:
        np.testing.assert_array_equal(final[key], reference[key])
    assert not np.array_equal(half["params/logits/kernel"], reference["params/logits/kernel"])


def test_resume_refuses_a_checkpoint_of_other_settings(tmp_path):
    train_set = robust_and_fragile_features(256, 0)
    path = tmp_path / "model.safetensors"
    fit(small_backbone(), train_set, train_set, SYNTHETIC, path, progress=False, stop_after=1)
    other = dataclasses.replace(SYNTHETIC, eps=0.2)
    with pytest.raises(UserError, match="other settings"):
        fit(small_backbone(), train_set, train_set, other, path, progress=False)


def test_checkpoint_weights_equal_the_training_state(tmp_path):
    """A mid-training checkpoint's weights file holds the parameters of its training state."""
    train_set = robust_and_fragile_features(256, 0)
    path = tmp_path / "model.safetensors"
    fit(small_backbone(), train_set, train_set, SYNTHETIC, path, progress=False, stop_after=3)
    state, saved = saved_state(path), weights(path)
    assert int(state["step"]) == 3
    for key, value in flax.traverse_util.flatten_dict(state["params"], sep="/").items():
        np.testing.assert_array_equal(saved[f"params/{key}"], value)


def test_trained_resnet_loads_with_the_same_logits(tmp_path):
    """A real run (ResNet-18-style, texture crops): the file is converted weights
    whose logits equal the in-memory training model's (input convention and options survive);
    it records the evaluation, the settings and the class names; batch statistics stay 0 / 1."""
    config = TrainConfig(
        arch="resnet18", width=1 / 16, dataset="skimage-textures", train_per_class=16,
        test_per_class=4, epochs=1, batch_size=32, eval_steps=1,
    )  # fmt: skip
    train_set, test_set = training.load_data(config)
    backbone = training.build_backbone(config, 6, *training.channel_stats(train_set.images))
    assert np.all(np.asarray(backbone.variables["params"]["layer2"]["1"]["bn2"]["scale"]) == 0)
    path = tmp_path / "r18.safetensors"
    report = training.train(config, path, progress=False)
    assert report.complete and not state_path(path).exists()

    loaded = load(path)
    assert loaded.module == backbone.module  # architecture options and input convention
    logits = jax.jit(lambda net, x: net(x, ["logits"])["logits"])
    trained = training.with_params(backbone, loaded.variables["params"])
    images = test_set.images[:8]
    np.testing.assert_array_equal(logits(loaded, images), logits(trained, images))
    assert not np.all(np.asarray(loaded.variables["params"]["layer2"]["1"]["bn2"]["scale"]) == 0)
    stats = jax.tree.leaves(loaded.variables["batch_stats"]["layer1"]["0"]["bn1"])
    assert [float(np.abs(leaf).max()) for leaf in stats] == [0.0, 1.0]  # mean, var: untouched
    assert json.loads(loaded.metadata["class_names"]) == list(train_set.class_names)
    assert TrainConfig.from_json(loaded.metadata["training"]) == config
    assert training.finished_report(path, config).evaluation == report.evaluation


class Retrained(Exception):
    """Raised by a stand-in for the data loader: training started."""


def refuse_to_train(*args, **kwargs):
    raise Retrained


def test_train_returns_a_finished_run_without_training_again(tmp_path, monkeypatch):
    config = dataclasses.replace(SYNTHETIC, epochs=1, eval_steps=1)
    data = robust_and_fragile_features(128, 0)
    path = tmp_path / "done.safetensors"
    report = fit(small_backbone(), data, data, config, path, progress=False)
    monkeypatch.setattr(training.loop, "load_data", refuse_to_train)
    assert training.train(config, path, progress=False).evaluation == report.evaluation
    with pytest.raises(Retrained):
        training.train(config, path, progress=False, resume=False)
    with pytest.raises(Retrained):
        training.train(dataclasses.replace(config, seed=1), path, progress=False)


def test_cli_builds_the_config_from_a_preset_and_flags():
    from paramviz.cli.train import config_from_args

    args = build_parser().parse_args(
        ["train", "--preset", "textures-vgg16-robust", "--eps", "1", "--eval-robust-limit", "0"]
    )
    config = config_from_args(args)
    preset = training.DEFAULT_PAIRS["textures-vgg16-robust"]
    assert config == dataclasses.replace(preset, eps=1.0, eval_robust_limit=None)
    assert args.run.__name__ == "run_train"
    with pytest.raises(UserError, match="unknown preset"):
        config_from_args(build_parser().parse_args(["train", "--preset", "nope"]))
    with pytest.raises(UserError, match="adversarial"):
        TrainConfig(adversarial="trades")


def test_default_pairs_are_matched():
    """Each pair differs only in the adversarial training."""
    names = list(training.DEFAULT_PAIRS)
    for standard in (name for name in names if name.endswith("-standard")):
        robust = standard.removesuffix("-standard") + "-robust"
        a, b = training.DEFAULT_PAIRS[standard], training.DEFAULT_PAIRS[robust]
        assert a.adversarial == "none" and b.adversarial == "pgd"
        assert dataclasses.replace(b, adversarial="none") == a
