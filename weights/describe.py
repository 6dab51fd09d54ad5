"""Plain-text descriptions of weights files: converted ``.safetensors`` or PyTorch checkpoints."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

from paramviz.backbones.store import open_safetensors


def describe_safetensors(path: Path) -> str:
    """Metadata, tensor count, sizes and dtypes of a converted file, without loading tensors."""
    with open_safetensors(path) as handle:
        metadata = handle.metadata() or {}
        slices = [handle.get_slice(key) for key in handle.keys()]
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
    from paramviz.weights import mapping
    from paramviz.weights.checkpoint import read_checkpoint

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


def _count(shape) -> int:
    return math.prod(shape)


def _pretty_json(value: str) -> str:
    try:
        return json.dumps(json.loads(value))
    except (json.JSONDecodeError, TypeError):
        return value
