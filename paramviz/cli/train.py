"""``paramviz train`` and ``paramviz train-pairs``: matched standard / robust backbones.

jax and the training code are imported inside the handlers, so ``paramviz --help`` stays instant.
"""

from __future__ import annotations

import argparse

from paramviz.cli.checks import count, number, positive, rate, seed, weight
from paramviz.cli.common import add_command, add_progress_flags, format_table

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
    train.add_argument("--checkpoint-every", type=positive, default=500, help="steps (default 500)")
    train.add_argument("--stop-after", type=positive, help="stop after this many steps (resumable)")
    train.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="continue from the checkpoint beside --out if there is one (default: yes)",
    )
    add_progress_flags(train, "--no-progress")

    pairs = add_command(subparsers, "train-pairs", run_train_pairs)
    pairs.add_argument("names", nargs="*", help="only these models (default: all)")
    pairs.add_argument("--out-dir", help="folder for the weights (default: <cache>/trained)")
    pairs.add_argument("--list", action="store_true", help="list the models and their settings")
    add_progress_flags(pairs, "--no-progress")


def config_from_args(args: argparse.Namespace):
    """The ``TrainConfig`` the flags describe: ``--preset`` (if any) with the set flags applied."""
    import dataclasses

    from experiments.train import DEFAULT_PAIRS, TrainConfig
    from paramviz.errors import UserError

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

    from experiments.train import train
    from paramviz.io import check_output
    from paramviz.paths import trained_dir

    config = config_from_args(args)
    if args.out:
        out = Path(args.out)
    else:
        name = args.preset or f"{config.dataset}-{config.arch}-{config.adversarial}"
        out = trained_dir() / f"{name}-{config.digest()}.safetensors"
    check_output(out, ".safetensors")
    report = train(
        config,
        out,
        checkpoint_every=args.checkpoint_every,
        resume=args.resume,
        progress=args.progress,
        stop_after=args.stop_after,
    )
    if not report.complete:
        print(f"stopped after step {report.steps_done}/{report.total_steps}; run again to resume")
    print(report_table([report]))
    print(f"weights: {report.path}")
    return 0


def run_train_pairs(args: argparse.Namespace) -> int:
    """Train the default standard/robust pairs and print their accuracy table.

    Train the default matched pairs (ResNet-18- and VGG-16-style nets on the texture set, a
    ResNet-18-style net on Fashion-MNIST; each standard and PGD-trained) and print a table
    of clean and PGD-robust accuracy. Finished models are reused."""
    from experiments.train import DEFAULT_PAIRS, describe_training, train_pairs

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
    from experiments.train import describe_training

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
