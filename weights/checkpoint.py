"""Read a PyTorch checkpoint safely and unwrap it into a plain state_dict of float32 arrays.

A ``.pth`` is a pickle: loading it the ordinary way runs whatever code the file names. We load with
``torch.load(weights_only=True)``, which only rebuilds tensors and plain containers, and unpickle
arbitrary objects only when the user says they trust the file (``trust_pickle=True`` /
``--trust-pickle``). torch is imported only inside :func:`load_torch_file`.

Formats (``fmt``), each giving torchvision-style parameter names:

* ``torchvision``: a plain state_dict; a DataParallel ``module.`` prefix is stripped.
* ``robustness``: MadryLab's ``{'model': state_dict, 'epoch': ...}`` (or legacy ``'state_dict'``),
  also used by microsoft/robust-models-transfer. ``module.model.*`` are the weights (one more
  ``model.`` level under robust-models-transfer's DummyModel is stripped too), the duplicate
  ``module.attacker.*`` copy is ignored, ``module.normalizer.new_mean/new_std`` become the input
  convention, and AlexNet's ``last_layer`` is renamed ``classifier.6``.
* ``vgg-normalised``: ``nn.Sequential`` indices, ``0.weight`` being the (3, 3, 1, 1) RGB→BGR conv.
* ``efficientnet-lite``: a plain state_dict in ``efficientnet-lite-pytorch``'s names
  (``_conv_stem``, ``_blocks.N._depthwise_conv``, ..., ``_fc``), trained on TensorFlow's inputs.
* ``sequential``: a user's own ``nn.Sequential`` (indices as keys), described by ``--spec``.
"""

from __future__ import annotations

import os
import pickle
import re
import struct
import warnings
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from paramviz.errors import UserError
from paramviz.io import MAX_NAMED, check_finite, file_sha256
from paramviz.weights.registry import SOURCE_FORMATS, VGG_NORMALISED, InputConvention

FORMATS = ("auto", *SOURCE_FORMATS)
ZIP_MAGIC = b"PK\x03\x04"
PICKLE_PROTO_OPCODE = b"\x80"
_SEQUENTIAL_KEY = re.compile(r"^\d+\.")
EFFICIENTNET_STEM = "_conv_stem.weight"
# How torch's weights-only unpickler names what it refused: "Unsupported global: GLOBAL x.y",
# torch 2.13's "unsupported GLOBAL x.y whose module x is blocked", "... but got <class 'x.y'>".
_REFUSED_OBJECT = re.compile(r"GLOBAL ([\w.]+)|but got <class '([\w.]+)'>")

StateDict = dict[str, Any]


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint's weights under torchvision-style names, and what the file told us."""

    state_dict: dict[str, np.ndarray]
    source_format: str
    input_convention: InputConvention | None
    sha256: str
    path: Path


def read_checkpoint(
    path: str | os.PathLike, fmt: str = "auto", trust_pickle: bool = False
) -> Checkpoint:
    """Load ``path`` safely, unwrap its format and return float32 numpy weights."""
    path = Path(path)
    if fmt not in FORMATS:
        raise UserError(f"unknown checkpoint format {fmt!r}; choose one of {', '.join(FORMATS)}")
    raw = find_state_dict(load_torch_file(path, trust_pickle), path)
    fmt = detect_format(raw) if fmt == "auto" else fmt
    weights, convention = UNWRAPPERS[fmt](raw)
    state_dict = to_float32(weights)
    check_finite(state_dict, path)
    return Checkpoint(state_dict, fmt, convention, file_sha256(path), path)


# --------------------------------------------------------------------------------------------
# Loading


def load_torch_file(path: Path, trust_pickle: bool = False) -> Any:
    """``torch.load`` on CPU, refusing arbitrary unpickling unless ``trust_pickle``."""
    check_torch_file_header(path)
    import torch

    try:
        if trust_pickle:
            return _load_trusted(torch, path)
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the error says it
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if not trust_pickle and (found := _REFUSED_OBJECT.search(str(err))):
            raise _needs_trust(path, found.group(1) or found.group(2)) from None
        raise _corrupt(path, err) from None
    except (EOFError, struct.error, RuntimeError, ValueError, KeyError, TypeError) as err:
        if not trust_pickle and "legacy .tar format" in str(err):
            raise UserError(
                f"{path} is in PyTorch's legacy tar format, which can only be read by unpickling "
                "it, and that would execute code from the file. If you trust where it came from, "
                "pass --trust-pickle (API: trust_pickle=True)."
            ) from None
        raise _corrupt(path, err) from None


class CorruptCheckpoint(UserError):
    """The file is not a readable PyTorch checkpoint (empty, truncated, a web page, ...)."""


def check_torch_file_header(path: Path) -> None:
    """Fail early, with a specific message, on files torch.load would reject obscurely."""
    if not path.exists():
        raise UserError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise UserError(f"not a file: {path}")
    with open(path, "rb") as f:
        head = f.read(512)
    if not head:
        raise CorruptCheckpoint(
            f"{path} is empty (0 bytes): an interrupted download? Get it again."
        )
    if head.startswith(ZIP_MAGIC):
        if not zipfile.is_zipfile(path):
            raise CorruptCheckpoint(
                f"{path} is truncated: a zip-format PyTorch file without its central directory "
                f"({path.stat().st_size} bytes). An interrupted download? Get it again."
            )
        return
    if head.startswith(PICKLE_PROTO_OPCODE) or head[257:262] == b"ustar":  # legacy formats
        return
    if head.startswith(b"version https://git-lfs"):
        raise CorruptCheckpoint(f"{path} is a Git LFS pointer, not the checkpoint itself")
    if head.lstrip()[:1] == b"<":
        raise CorruptCheckpoint(
            f"{path} is an HTML/XML page, not a checkpoint (a failed download?)"
        )
    if _is_safetensors(head):
        raise UserError(
            f"{path} is already a converted .safetensors file: use it directly with --weights"
        )
    raise CorruptCheckpoint(f"{path} is not a PyTorch checkpoint (neither a zip nor a pickle file)")


def _is_safetensors(head: bytes) -> bool:
    """A safetensors file: an 8-byte little-endian header length, then a JSON header."""
    length = int.from_bytes(head[:8], "little")
    return len(head) > 8 and head[8:9] == b"{" and 2 <= length <= 100_000_000


def _load_trusted(torch, path: Path) -> Any:
    """Full unpickling (the user trusts the file); retries with dill if pickle lacks code."""
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except (ModuleNotFoundError, AttributeError) as err:
        first_error = err
    try:
        import dill
    except ImportError:
        raise _missing_code(path, first_error) from None
    try:
        return torch.load(path, map_location="cpu", weights_only=False, pickle_module=dill)
    except (ModuleNotFoundError, AttributeError) as err:
        raise _missing_code(path, err) from None


def _needs_trust(path: Path, global_name: str) -> UserError:
    return UserError(
        f"{path} contains a pickled Python object ({global_name}), not just tensors. Loading it "
        "would execute code from the file. If you trust where it came from, pass --trust-pickle "
        "(API: trust_pickle=True)."
    )


def _missing_code(path: Path, err: Exception) -> UserError:
    return UserError(
        f"{path} needs Python code that is not installed to unpickle ({err}). Files saved with "
        "dill may need `pip install dill`."
    )


def _corrupt(path: Path, err: Exception) -> UserError:
    reason = _reason(str(err)) or type(err).__name__
    return CorruptCheckpoint(
        f"cannot read {path}: {reason}. The file is truncated or corrupt, or not a PyTorch "
        "checkpoint."
    )


def _reason(text: str) -> str:
    """The line of a torch error that says what went wrong (the weights-only unpickler puts it
    after a paragraph of general advice)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if lines and lines[0].startswith("Weights only load failed"):
        specific = [line for line in lines[1:] if not line.startswith(("Please file", "Check the"))]
        lines = specific or lines
    return lines[0].removeprefix("WeightsUnpickler error:").strip() if lines else ""


# --------------------------------------------------------------------------------------------
# Finding and unwrapping the state_dict


def find_state_dict(obj: Any, path: Path) -> Mapping[str, Any]:
    """The mapping of name → tensor inside whatever was pickled."""
    obj = _module_state_dict(obj)
    if _is_tensor_mapping(obj):
        return obj
    if isinstance(obj, Mapping):
        for key in ("model", "state_dict"):
            inner = _module_state_dict(obj.get(key))
            if _is_tensor_mapping(inner):
                return inner
        top = ", ".join(map(str, list(obj)[:MAX_NAMED]))
        raise UserError(f"{path} holds no state_dict of tensors (top-level keys: {top})")
    raise UserError(f"{path} holds a {type(obj).__name__}, not a state_dict of tensors")


def _module_state_dict(obj: Any) -> Any:
    """A pickled ``nn.Module`` (trusted files only) contributes its ``state_dict()``."""
    state_dict = getattr(obj, "state_dict", None)
    return state_dict() if callable(state_dict) and not isinstance(obj, Mapping) else obj


def _is_tensor_mapping(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and hasattr(v, "shape") for k, v in obj.items())
    )


def detect_format(state_dict: Mapping[str, Any]) -> str:
    """Guess the source format from the key names (and the first conv's shape)."""
    keys = list(strip_common_prefix(state_dict, "module."))
    if any(k.startswith(("normalizer.", "attacker.")) for k in keys):
        return "robustness"
    if EFFICIENTNET_STEM in keys:
        return "efficientnet-lite"
    if all(_SEQUENTIAL_KEY.match(k) for k in keys):
        first = state_dict.get("0.weight", state_dict.get("module.0.weight"))
        return "vgg-normalised" if _is_rgb_to_bgr_conv(first) else "sequential"
    return "torchvision"


def strip_common_prefix(state_dict: Mapping[str, Any], prefix: str) -> StateDict:
    """Drop ``prefix`` from every key when every key has it (DataParallel's ``module.``)."""
    if state_dict and all(k.startswith(prefix) for k in state_dict):
        return {k[len(prefix) :]: v for k, v in state_dict.items()}
    return dict(state_dict)


def _is_rgb_to_bgr_conv(tensor: Any) -> bool:
    return tensor is not None and tuple(tensor.shape) == (3, 3, 1, 1)


def unwrap_torchvision(state_dict: Mapping[str, Any]) -> tuple[StateDict, None]:
    """A plain state_dict, possibly saved from a DataParallel model."""
    return strip_common_prefix(state_dict, "module."), None


def unwrap_sequential(state_dict: Mapping[str, Any]) -> tuple[StateDict, None]:
    """An ``nn.Sequential`` state_dict: indices are the names; the spec says what they are."""
    weights = strip_common_prefix(state_dict, "module.")
    if not all(_SEQUENTIAL_KEY.match(k) for k in weights):
        odd = [k for k in weights if not _SEQUENTIAL_KEY.match(k)][:MAX_NAMED]
        raise UserError(f"not an nn.Sequential state_dict: keys like {', '.join(odd)}")
    return weights, None


def unwrap_vgg_normalised(state_dict: Mapping[str, Any]) -> tuple[StateDict, InputConvention]:
    """The normalised VGG-19: Sequential indices starting with the fixed 1×1 input conv."""
    weights, _ = unwrap_sequential(state_dict)
    if not _is_rgb_to_bgr_conv(weights.get("0.weight")):
        raise UserError(
            "not a normalised-VGG checkpoint: '0.weight' should be the (3, 3, 1, 1) input conv"
        )
    return weights, VGG_NORMALISED


def unwrap_robustness(state_dict: Mapping[str, Any]) -> tuple[StateDict, InputConvention | None]:
    """MadryLab ``AttackerModel`` weights → the classifier's own names plus its normalisation."""
    keys = strip_common_prefix(state_dict, "module.")
    model = {k[len("model.") :]: v for k, v in keys.items() if k.startswith("model.")}
    if not model:
        raise UserError(
            "not a robustness-library checkpoint: no 'module.model.*' weights "
            f"(keys like {', '.join(list(keys)[:MAX_NAMED])})"
        )
    model = strip_common_prefix(model, "model.")  # robust-models-transfer's DummyModel
    model = {_rename_alexnet_last_layer(k): v for k, v in model.items()}
    # Anything that is neither the model, the attacker's copy nor the normaliser is passed on,
    # so the architecture mapping reports it as unexpected rather than it vanishing silently.
    others = {
        k: v for k, v in keys.items() if not k.startswith(("model.", "attacker.", "normalizer."))
    }
    return {**model, **others}, _robustness_convention(keys)


def _rename_alexnet_last_layer(key: str) -> str:
    return "classifier.6." + key[len("last_layer.") :] if key.startswith("last_layer.") else key


def _robustness_convention(keys: Mapping[str, Any]) -> InputConvention | None:
    """``InputNormalize`` clamps to [0, 1] and then standardises with its (3, 1, 1) buffers."""
    mean, std = keys.get("normalizer.new_mean"), keys.get("normalizer.new_std")
    if mean is None or std is None:
        return None
    return InputConvention(mean=_floats(mean), std=_floats(std), clamp=True)


def _floats(tensor: Any) -> tuple[float, ...]:
    return tuple(float(x) for x in np.asarray(tensor, dtype=np.float64).reshape(-1))


UNWRAPPERS: dict[str, Callable[[Mapping[str, Any]], tuple[StateDict, InputConvention | None]]] = {
    "torchvision": unwrap_torchvision,
    "efficientnet-lite": unwrap_torchvision,  # the same plain state_dict; only the names differ
    "robustness": unwrap_robustness,
    "vgg-normalised": unwrap_vgg_normalised,
    "sequential": unwrap_sequential,
}


# --------------------------------------------------------------------------------------------
# Arrays


def to_float32(state_dict: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Torch tensors (any float dtype, bf16 included) → float32 numpy; BN step counters dropped."""
    return {
        k: _as_float32(v) for k, v in state_dict.items() if not k.endswith("num_batches_tracked")
    }


def _as_float32(tensor: Any) -> np.ndarray:
    if hasattr(tensor, "detach"):  # a torch tensor; torch itself is not imported here
        tensor = tensor.detach().float().cpu().numpy()
    return np.asarray(tensor, dtype=np.float32)
