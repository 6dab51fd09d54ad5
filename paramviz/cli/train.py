"""``paramviz train``, ``train-pairs`` and ``train-twin``: matched standard / robust backbones,
and a robust twin of any network.

jax and the training code are imported inside the handlers, so ``paramviz --help`` stays instant.
"""

from __future__ import annotations

import argparse
import contextlib
import json

from paramviz.cli.checks import count, number, positive, rate, seed, weight, whole
from paramviz.cli.common import add_command, add_progress_flags, format_table, split_list
from paramviz.errors import UserError

# (flag, type, help) for every TrainConfig field the command line can set; the destination is
# the field's name. Unset flags keep the --preset's value (or TrainConfig's default).
CONFIG_FLAGS = (
    ("--arch", str, "architecture: resnet18 (default), vgg16, resnet50, vgg19, vgg16_bn, ..."),
    ("--width", rate, "channel multiplier of the real architecture (default 0.125)"),
    ("--dataset", str, "textures (default), skimage-textures or fashion-mnist"),
    (
        "--image-size",
        positive,
        "input size: texture crop side, or Fashion-MNIST padded (default 32)",
    ),
    ("--train-per-class", positive, "texture crops per class for training (default 64)"),
    ("--test-per-class", positive, "texture crops per class held out for evaluation (default 16)"),
    ("--epochs", positive, "passes over the training set (default 10)"),
    ("--batch-size", positive, "examples per step (default 128)"),
    ("--learning-rate", rate, "peak AdamW learning rate, warm-up then cosine (default 2e-3)"),
    ("--weight-decay", weight, "AdamW weight decay on kernels (default 5e-4)"),
    ("--adversarial", str, "none (default), pgd, fgsm (1 step, random start) or free"),
    ("--norm", str, "attack ball: l2 (default) or linf"),
    ("--eps", weight, "attack radius in [0, 1] pixel units (default 0.5)"),
    ("--attack-steps", positive, "PGD steps while training (default 3)"),
    ("--attack-step-size", rate, "PGD step size (default 2.5 * eps / steps)"),
    (
        "--eps-warmup",
        number(0.0, 1.0),
        "fraction of training over which eps grows from 0 (default 0.3)",
    ),
    ("--free-replays", positive, "replays of each batch for --adversarial free (default 4)"),
    ("--eval-steps", positive, "PGD steps for the robust accuracy (default 20)"),
    ("--eval-robust-limit", count, "test examples attacked for robust accuracy (0 = all; 1000)"),
    ("--seed", seed, "seed of the data, weights, data order and attacks, 0 to 2**32 - 1"),
)


def register(subparsers) -> None:
    """Add ``train`` and ``train-pairs``."""
    train = add_command(subparsers, "train", run_train)
    train.add_argument(
        "--preset",
        help="start from a default configuration (names: paramviz train-pairs --list); "
        "the flags below override it",
    )
    for flag, kind, text in CONFIG_FLAGS:
        train.add_argument(flag, type=kind, help=text)
    train.add_argument("--out", help="weights file (default: <cache>/trained/NAME.safetensors)")
    add_resume_flags(train, checkpoint_every=500)

    twin = add_command(subparsers, "train-twin", run_train_twin)
    twin.add_argument("--weights", required=True, help="the network to make robust (any --weights)")
    twin.add_argument(
        "-o",
        "--output",
        required=True,
        help="NAME (kept as <cache>/trained/NAME.safetensors, then --weights NAME) or a file",
    )
    twin.add_argument(
        "--eps", type=rate, default=0.25, help="L2 radius in [0, 1] pixel units at --image-size"
    )
    twin.add_argument(
        "--target",
        choices=("features", "logits"),
        default="features",
        help="what the twin keeps close to the original: the style layers' features (or "
        "--layers), or the class distribution (logits)",
    )
    twin.add_argument(
        "--layers", help="feature layers for --target features (default: the style layers)"
    )
    twin.add_argument("--steps", type=positive, default=420, help="optimiser steps")
    twin.add_argument("--batch-size", type=positive, default=32, help="crops per step")
    twin.add_argument("--image-size", type=whole(16), default=128, help="crop size in pixels")
    twin.add_argument("--attack-steps", type=positive, default=3, help="PGD steps per batch")
    twin.add_argument(
        "--robust-weight", type=weight, default=4.0, help="weight of the attacked term (beta)"
    )
    twin.add_argument("--learning-rate", type=rate, default=1e-4, help="peak Adam learning rate")
    twin.add_argument("--seed", type=seed, default=0, help="seed of the crops and the attacks")
    twin.add_argument(
        "--size",
        type=whole(16),
        default=224,
        help="rendering size at which R(f) is measured (its ball scaled to it)",
    )
    twin.add_argument(
        "--evaluate",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="measure agreement and R(f) against the original when done",
    )
    add_resume_flags(twin, checkpoint_every=50)

    pairs = add_command(subparsers, "train-pairs", run_train_pairs)
    pairs.add_argument("names", nargs="*", help="only these models (default: all)")
    pairs.add_argument("--out-dir", help="folder for the weights (default: <cache>/trained)")
    pairs.add_argument("--list", action="store_true", help="list the models and their settings")
    add_progress_flags(pairs, "--no-progress")


def add_resume_flags(parser: argparse.ArgumentParser, *, checkpoint_every: int) -> None:
    """What every training command takes: checkpoints, stopping, resuming, a progress bar."""
    parser.add_argument("--checkpoint-every", type=positive, default=checkpoint_every, help="steps")
    parser.add_argument(
        "--stop-after", type=positive, help="stop after this many steps (resumable)"
    )
    parser.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="continue from the checkpoint beside the output if there is one",
    )
    add_progress_flags(parser, "--no-progress")


def resume_options(args: argparse.Namespace) -> dict:
    """The flags of :func:`add_resume_flags`, as the training functions take them."""
    return {
        "checkpoint_every": args.checkpoint_every,
        "resume": args.resume,
        "progress": args.progress,
        "stop_after": args.stop_after,
    }


def config_from_args(args: argparse.Namespace):
    """The ``TrainConfig`` the flags describe: ``--preset`` (if any) with the set flags applied."""
    import dataclasses

    from paramviz.errors import UserError
    from paramviz.experiments.train import DEFAULT_PAIRS, TrainConfig

    if args.preset is not None and args.preset not in DEFAULT_PAIRS:
        raise UserError(f"unknown preset {args.preset!r}; known: {', '.join(DEFAULT_PAIRS)}")
    base = DEFAULT_PAIRS[args.preset] if args.preset else TrainConfig()
    overrides = {
        field.name: getattr(args, field.name)
        for field in dataclasses.fields(TrainConfig)
        if getattr(args, field.name, None) is not None
    }
    if overrides.get("eval_robust_limit") == 0:
        overrides["eval_robust_limit"] = None
    return dataclasses.replace(base, **overrides)


def run_train(args: argparse.Namespace) -> int:
    """Train a backbone, standard or adversarial, with checkpoints and resume.

    Train a backbone (standard or adversarial) offline, evaluate its clean and PGD-robust
    accuracy on held-out data, and write it as a converted .safetensors file that every
    --weights option takes. Running the same command again resumes an interrupted run from
    its last checkpoint."""
    from pathlib import Path

    from paramviz.experiments.train import train
    from paramviz.io import check_output
    from paramviz.paths import trained_dir

    config = config_from_args(args)
    if args.out:
        out = Path(args.out)
    else:
        name = args.preset or f"{config.dataset}-{config.arch}-{config.adversarial}"
        out = trained_dir() / f"{name}-{config.digest()}.safetensors"
    check_output(out, ".safetensors")
    report = train(config, out, **resume_options(args))
    if not report.complete:
        print(f"stopped after step {report.steps_done}/{report.total_steps}; run again to resume")
    print(report_table([report]))
    print(f"weights: {report.path}")
    return 0


def run_train_twin(args: argparse.Namespace) -> int:
    """Make a robust twin of a network by adversarial distillation.

    Fine-tune a copy of --weights so that its style layers' features (or, with --target
    logits, its class distribution) stay close to the original's inside an L2 ball of --eps
    around natural photographs, then compare the twin with the original: agreement (or
    feature error) on held-out crops, clean and under PGD-20, and R(f) of every style layer
    at --size. The twin is kept under its name; running the same command again resumes or
    reuses it."""
    from paramviz.experiments.train.twin import TwinConfig, train_twin, twin_path
    from paramviz.io import check_output, weights_sha256
    from paramviz.paths import trained_dir
    from paramviz.weights.resolve import resolve_backbone, weights_path

    source = weights_path(args.weights)
    if source is None:
        raise UserError("a robust twin needs real weights, not --weights random")
    out = twin_path(args.output)
    check_output(out, ".safetensors", inputs=[source])
    original = resolve_backbone(args.weights)
    config = TwinConfig(
        teacher=weights_sha256(source),
        eps=args.eps,
        image_size=args.image_size,
        target=args.target,
        layers=tuple(split_list(args.layers)) if args.layers else (),
        steps=args.steps,
        batch_size=args.batch_size,
        attack_steps=args.attack_steps,
        robust_weight=args.robust_weight,
        learning_rate=args.learning_rate,
        seed=args.seed,
    )
    report = train_twin(original, config, out, **resume_options(args))
    minutes = report.seconds / 60
    if not report.complete:
        print(f"stopped after step {report.steps_done}/{config.steps}; run again to resume")
        print(f"weights so far: {report.path}")
        return 0
    print(f"twin: {report.path} ({config.steps} steps, {minutes:.1f} min of training)")
    if args.evaluate:
        print(twin_table(evaluate(original, report.path, config, args.size)))
    print(f"use it with --weights {report.path.stem if out.parent == trained_dir() else out}")
    return 0


def evaluate(original, path, config, size: int):
    """The twin against the original (stored in the twin's metadata, so asked once)."""
    from paramviz.backbones import load, read_metadata, save, style_preset
    from paramviz.experiments.robustness import PICTURES, robustness_pictures
    from paramviz.experiments.train.twin import TwinEvaluation, evaluate_twin

    stored = json.loads(read_metadata(path).get("evaluation", "{}"))
    if stored.get("robustness_attack", "").endswith(f" at {size} px"):
        with contextlib.suppress(TypeError):  # one written by another paramviz: measure again
            return TwinEvaluation(**stored)
    twin = load(path)
    layers = style_preset(original)[0]
    evaluation = evaluate_twin(
        original,
        twin,
        config,
        robustness_pictures=robustness_pictures(PICTURES, size),
        robustness_eps=config.eps * size / config.image_size,
        robustness_layers=layers,
    )
    save(path, twin, evaluation=evaluation.to_json())
    return evaluation


def twin_table(evaluation) -> str:
    """Agreement and feature error on held-out crops, and R(f) per layer, original and twin."""
    lines = [f"on {evaluation.crops} held-out crops, attacked by PGD ({evaluation.threat}):"]
    rows = [("", "twin, clean", "twin, attacked", "original, attacked")]
    if evaluation.agreement:
        rows.append(("top-1 agreement", *(f"{v:.1%}" for v in evaluation.agreement)))
    if evaluation.feature_error:
        rows.append(("feature error", *(f"{v:.4f}" for v in evaluation.feature_error)))
    lines += [format_table(rows), f"R(f), {evaluation.robustness_attack}:"]
    rows = [("layer", "original", "twin", "twin / original")]
    for layer, (original, twin) in evaluation.robustness.items():
        rows.append((layer, f"{original:.3f}", f"{twin:.3f}", f"{twin / original:.2f}"))
    return "\n".join(lines) + "\n" + format_table(rows)


def run_train_pairs(args: argparse.Namespace) -> int:
    """Train the default standard/robust pairs and print their accuracy table.

    Train the default matched pairs (ResNet-18- and VGG-16-style nets on the texture set, a
    ResNet-18-style net on Fashion-MNIST; each standard and PGD-trained) and print a table
    of clean and PGD-robust accuracy. Finished models are reused."""
    from paramviz.experiments.train import DEFAULT_PAIRS, describe_training, train_pairs

    if args.list:
        for name, config in DEFAULT_PAIRS.items():
            print(
                f"{name}: {config.arch} width {config.width:g} on {config.dataset} "
                f"({config.image_size} px, {config.epochs} epochs), {describe_training(config)}"
            )
        return 0
    reports = train_pairs(args.names or None, args.out_dir, progress=args.progress)
    print(report_table(reports))
    for report in reports:
        print(f"weights: {report.path}")
    return 0


def report_table(reports) -> str:
    """Clean and robust accuracy, one row per trained model."""
    from paramviz.experiments.train import describe_training

    rows = [("model", "arch", "width", "training", "clean", "robust", "robust attack", "time")]
    for report in reports:
        config, evaluation = report.config, report.evaluation
        rows.append(
            (
                report.path.stem,
                config.arch,
                f"{config.width:g}",
                describe_training(config),
                f"{evaluation.clean_accuracy:.1%}" if evaluation else "-",
                f"{evaluation.robust_accuracy:.1%}" if evaluation else "-",
                f"{evaluation.threat} (n={evaluation.robust_examples})" if evaluation else "-",
                f"{report.seconds / 60:.1f} min",
            )
        )
    return format_table(rows, rule=True)
