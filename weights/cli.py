"""Sub-command group ``paramviz weights``: list, info, fetch, convert.

Only argparse wiring and printing happen at import; torch and jax load inside the handlers.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from paramviz.errors import UserError
from weights.registry import SOURCE_FORMATS

FORMAT_CHOICES = ("auto", *SOURCE_FORMATS)
SAFETENSORS_SUFFIX = ".safetensors"


def register(subparsers) -> None:
    """Add ``weights list|info|fetch|convert``."""
    weights = subparsers.add_parser(
        "weights", help="list, fetch, inspect and convert pretrained weights"
    )
    actions = weights.add_subparsers(dest="weights_command", required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="the checkpoints paramviz can fetch")
    listing.set_defaults(run=run_list)

    info = actions.add_parser("info", help="describe a .safetensors or PyTorch checkpoint file")
    info.add_argument("file", type=Path)
    _add_trust_pickle(info)
    info.set_defaults(run=run_info)

    fetch = actions.add_parser("fetch", help="download a registered checkpoint and convert it")
    fetch.add_argument("name", help="a name from `paramviz weights list`")
    fetch.add_argument("--no-convert", action="store_true", help="only download")
    fetch.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_trust_pickle(fetch)
    fetch.set_defaults(run=run_fetch)

    convert = actions.add_parser("convert", help="convert a PyTorch checkpoint to .safetensors")
    convert.add_argument("src", type=Path, help="a .pth/.pt/.ckpt file")
    convert.add_argument("-o", "--output", type=Path, required=True, help="OUT.safetensors")
    convert.add_argument("--arch", help="architecture (default: detected from the keys)")
    convert.add_argument("--format", dest="fmt", choices=FORMAT_CHOICES, default="auto")
    convert.add_argument("--spec", help="layers of a sequential net, e.g. conv16k4s2p1,relu,...")
    convert.add_argument("--mean", type=_triple, help="input mean per RGB channel: a,b,c")
    convert.add_argument("--std", type=_triple, help="input std per RGB channel: a,b,c")
    _add_trust_pickle(convert)
    convert.set_defaults(run=run_convert)


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
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected three comma-separated numbers, got {text!r}")
    return values


# --------------------------------------------------------------------------------------------
# Handlers


def run_list(args: argparse.Namespace) -> int:
    from paramviz import paths
    from weights import registry

    downloads = paths.downloads_dir()
    rows = [("NAME", "ARCH", "FORMAT", "CLASSES", "TOP-1", "DOWNLOADED", "CONVERTED")]
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
    print(format_table(rows))
    return 0


def run_info(args: argparse.Namespace) -> int:
    path: Path = args.file
    if not path.is_file():
        raise UserError(f"file not found: {path}")
    if path.suffix == SAFETENSORS_SUFFIX:
        print(describe_safetensors(path))
    else:
        print(describe_checkpoint(path, args.trust_pickle))
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    from weights.convert import convert_registered
    from weights.download import fetch

    if args.no_convert:
        print(fetch(args.name, progress=not args.quiet))
        return 0
    out = convert_registered(args.name, trust_pickle=args.trust_pickle, progress=not args.quiet)
    print(f"{out}\nuse it with --weights {args.name}")
    return 0


def run_convert(args: argparse.Namespace) -> int:
    from weights.convert import convert
    from weights.registry import InputConvention

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


# --------------------------------------------------------------------------------------------
# Descriptions


def describe_safetensors(path: Path) -> str:
    """Metadata, tensor count, sizes and dtypes of a converted file, without loading tensors."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(path, framework="numpy") as f:
            metadata = f.metadata() or {}
            slices = [f.get_slice(key) for key in f.keys()]
    except (SafetensorError, OSError) as err:
        raise UserError(f"cannot read {path}: {err}") from None
    shapes = [s.get_shape() for s in slices]
    dtypes = Counter(s.get_dtype() for s in slices)
    lines = [f"{path}"]
    lines += [f"  {key}: {_pretty_json(value)}" for key, value in sorted(metadata.items())]
    lines.append(f"  tensors: {len(slices)}, parameters: {sum(_count(s) for s in shapes):,}")
    lines.append(f"  dtypes: {', '.join(f'{d} x{n}' for d, n in sorted(dtypes.items()))}")
    lines.append(f"  file size: {path.stat().st_size / 2**20:.1f} MiB")
    return "\n".join(lines)


def describe_checkpoint(path: Path, trust_pickle: bool = False) -> str:
    """Format, detected architecture and a summary of the keys of a PyTorch checkpoint."""
    from weights import mapping
    from weights.checkpoint import read_checkpoint

    ckpt = read_checkpoint(path, trust_pickle=trust_pickle)
    arch = mapping.detect_arch(ckpt.state_dict)
    last = mapping.infer_last_layer(arch, ckpt.state_dict) if arch else None
    groups = Counter(key.split(".", 1)[0] for key in ckpt.state_dict)
    convention = json.dumps(ckpt.input_convention.to_metadata()) if ckpt.input_convention else None
    lines = [
        f"{path}",
        f"  format: {ckpt.source_format}",
        f"  architecture: {arch or 'not recognised (pass --arch when converting)'}",
        f"  last layer: {last or 'the whole network'}" if arch else None,
        f"  input convention: {convention or 'not stored in the file'}",
        f"  sha256: {ckpt.sha256}",
        f"  tensors: {len(ckpt.state_dict)}, parameters: "
        f"{sum(v.size for v in ckpt.state_dict.values()):,}",
        "  keys by first component: " + ", ".join(f"{k} ({n})" for k, n in groups.items()),
    ]
    return "\n".join(line for line in lines if line is not None)


def format_table(rows: list[tuple[str, ...]]) -> str:
    """Left-aligned columns separated by two spaces."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "-"


def _count(shape) -> int:
    total = 1
    for dim in shape:
        total *= dim
    return total


def _pretty_json(value: str) -> str:
    try:
        return json.dumps(json.loads(value))
    except (json.JSONDecodeError, TypeError):
        return value
