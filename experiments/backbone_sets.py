"""Which networks the experiments compare: the ``imagenet`` and ``small`` backbone sets.

* ``imagenet``: the registry's VGG-19, AlexNet, ResNet-50 and robust ResNet-50 (L2 ε = 3), the
  networks of Nakano (2019) and Engstrom et al. (2019). They must have been fetched (``paramviz
  weights fetch NAME``); a missing one is a :class:`UserError` that lists the commands.
* ``small``: the matched standard/robust pairs of :data:`paramviz.experiments.train.DEFAULT_PAIRS`
  trained on textures (ResNet-18 and VGG-16 at narrow width; trained on first use, then read from
  the cache) plus the real normalised VGG-19 trunk (to ``relu3_1``) when its file lies beside the
  checkout.
* ``testbed``: the wider pair of :data:`paramviz.experiments.train.TESTBED_PAIRS` (ResNet-18 at
  width 1/4, trained on textures and photographs at the 128 px rendering scale; trained on first
  use) plus the real VGG-19 trunk: the set the ``headline`` protocol is meant for.
* ``real``: real ImageNet networks beside the robust twins paramviz makes of them (``paramviz
  train-twin``): the VGG-19 trunk and EfficientNet-Lite0, each with its twin, judged from outside
  the pairs by the standard EfficientNet-Lite1 and Lite2 (:data:`REAL_MEMBERS`,
  :data:`REAL_JUDGES`). The trunk must lie beside the checkout and the twins in the cache; a
  missing one is a :class:`UserError` with the command that makes it.
* ``quick`` (any set's smoke version for tests): seeded random-initialised stand-ins with the
  same names and architectures, so nothing is trained; every record says ``stand_in: true``.

The set's *judge* is the network judge :mod:`paramviz.experiments.judges` calls the trunk: the real
VGG-19
trunk where available, else the registry VGG-19 (``imagenet``) or a seeded random VGG-19 trunk:
random filters' Gram matrices still describe texture (Ustyuzhaninov et al. 2017). No judge scores
pictures of its own network (:mod:`paramviz.experiments.judges`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import Any

from paramviz import backbones, rng
from paramviz.errors import UserError
from paramviz.experiments.records import NetworkRecord
from paramviz.io import file_sha256
from paramviz.vocabulary import WEIGHTS_SETS
from paramviz.weights.local import TRUNK_NAME, real_vgg_trunk, trunk_source

IMAGENET_INPUT_SIZE = 224
IMAGENET_ROBUST_EPS = 3.0  # L2, [0, 1] pixels at 224 px: the robust ResNet-50's training ball
# (registry name, family, training). A family groups a standard network with its robust twin.
IMAGENET_MEMBERS: tuple[tuple[str, str, str], ...] = (
    ("vgg19", "vgg19", "standard"),
    ("alexnet", "alexnet", "standard"),
    ("resnet50", "resnet50", "standard"),
    ("resnet50-robust-l2-eps3", "resnet50", "robust"),
)

SMALL_PAIRS: tuple[str, ...] = ("textures-resnet18", "textures-vgg16")
TESTBED_PAIRS: tuple[str, ...] = ("testbed-resnet18",)
TESTBED_SIZE = 128
"""The test bed renders, judges and measures R(f) at 128 px (the protocol's smallest size)."""
QUICK_PAIRS: tuple[str, ...] = ("textures-resnet18",)
"""The quick set keeps one pair: every code path (ResNet, VGG trunk, pair, judge) at a third of
the compile time of two pairs."""
QUICK_CLASSES = 10
TRAININGS = ("standard", "robust")

JUDGE_SEED = 1234

REAL_SIZE = 128
"""The real set renders, judges and measures R(f) at 128 px, the twins' training size."""
REAL_ROBUST_EPS = 0.5
"""L2 radius of R(f) at 128 px, one ball for every network so that R compares across them:
between the Lite0 twin's training ball (0.25) and the trunk twin's (1.0)."""
REAL_MEMBERS: tuple[tuple[str, str, str, str], ...] = (
    (TRUNK_NAME, "vgg19-trunk", "standard", ""),
    ("vgg19-trunk-twin", "vgg19-trunk", "robust", f"--weights {TRUNK_NAME} --eps 1.0 --steps 270"),
    ("efficientnet-lite0", "efficientnet-lite0", "standard", ""),
    (
        "efficientnet-lite0-twin2",
        "efficientnet-lite0",
        "robust",
        "--weights efficientnet-lite0 --steps 840",
    ),
)
"""(weights name, family, training, the ``train-twin`` flags that make a twin). The Lite0 twin is
the one trained twice as long (the more robust of the two, experiments/README.md)."""
REAL_JUDGES: tuple[str, ...] = ("efficientnet-lite1", "efficientnet-lite2")
QUICK_REAL_SIZE = 32


@dataclasses.dataclass(frozen=True)
class Member:
    """One network of a set and everything needed to load and describe it.

    ``path`` is a converted ``.safetensors`` file, or None for a seeded random stand-in built from
    ``arch``, ``options`` and ``seed``. ``num_classes`` is None for a network without logits.
    """

    name: str
    arch: str
    family: str
    training: str
    path: Path | None
    input_size: int
    num_classes: int | None
    class_names: tuple[str, ...] | None = None
    options: tuple[tuple[str, Any], ...] = ()
    seed: int = 0
    note: str = ""

    @property
    def stand_in(self) -> bool:
        return self.path is None

    @property
    def weights(self) -> str:
        """Where the weights come from, for records."""
        if self.path is not None:
            return str(self.path)
        return f"random initialisation (seed {self.seed}){': ' + self.note if self.note else ''}"


@dataclasses.dataclass(frozen=True)
class BackboneSet:
    """The networks compared, the judge that scores them, and R(f)'s default attack ball."""

    name: str
    quick: bool
    members: tuple[Member, ...]
    judge: Member
    judge_layers: tuple[str, ...]
    robust_eps: float
    robustness_size: int
    notes: tuple[str, ...] = ()
    outside_judges: tuple[Member, ...] = ()
    """Networks that judge the compared ones but are not compared themselves (the real set's
    Lite1 and Lite2)."""

    def member(self, name: str) -> Member:
        """A compared network or an outside judge, by name."""
        for member in self.members + self.outside_judges:
            if member.name == name:
                return member
        raise UserError(f"no backbone {name!r} in the {self.name} set: {', '.join(self.names)}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(member.name for member in self.members)


def resolve(name: str, quick: bool = False, progress: bool | None = None) -> BackboneSet:
    """The backbone set called ``name`` (see the module docstring)."""
    if name == "imagenet":
        return imagenet_set(quick)
    if name == "small":
        return small_set(quick, progress)
    if name == "testbed":
        return testbed_set(quick, progress)
    if name == "real":
        return real_set(quick)
    raise UserError(f"unknown weights set {name!r}; choose one of {', '.join(WEIGHTS_SETS)}")


# ------------------------------------------------------------------------------------ imagenet


def imagenet_set(quick: bool = False) -> BackboneSet:
    """The registry networks; ``UserError`` listing the fetch commands for any that are missing.

    ``quick`` uses the same real weights (only the experiments' sizes and steps shrink).
    """
    from paramviz.weights import registry

    paths = {name: registry.converted_path(name) for name, _, _ in IMAGENET_MEMBERS}
    if missing := [name for name, path in paths.items() if not path.is_file()]:
        commands = "\n".join(f"  paramviz weights fetch {name}" for name in missing)
        raise UserError(
            f"the imagenet weights set needs {len(missing)} network(s) that are not in the cache "
            f"({registry.converted_path(missing[0]).parent}); fetch them with:\n{commands}\n"
            "or run with --weights-set small"
        )
    members = tuple(
        _file_member(name, family, training, paths[name], IMAGENET_INPUT_SIZE)
        for name, family, training in IMAGENET_MEMBERS
    )
    trunk = real_vgg_trunk()
    if trunk is not None:
        judge, note = _file_member(TRUNK_NAME, TRUNK_NAME, "standard", trunk, 224), ""
    else:
        judge = members[0]
        note = "judge: the registry VGG-19 (the real normalised trunk is absent); it is also a "
        note += "compared network, so its own cells are not judged independently"
    return BackboneSet(
        "imagenet",
        quick,
        members,
        judge,
        ("relu1_1", "relu2_1", "relu3_1"),
        IMAGENET_ROBUST_EPS,
        IMAGENET_INPUT_SIZE,
        tuple(filter(None, [note])),
    )


# --------------------------------------------------------------------------------------- small


def pair_names(pairs: tuple[str, ...]) -> list[str]:
    """``textures-resnet18`` -> its ``-standard`` and ``-robust`` model names."""
    return [f"{pair}-{training}" for pair in pairs for training in TRAININGS]


def small_set(quick: bool = False, progress: bool | None = None) -> BackboneSet:
    """Trained texture pairs (or quick stand-ins) plus the real VGG-19 trunk when present."""
    from paramviz.experiments.train import DEFAULT_PAIRS

    pairs = QUICK_PAIRS if quick else SMALL_PAIRS
    robust = DEFAULT_PAIRS[f"{pairs[0]}-robust"]
    return _paired_set("small", pairs, quick, progress, robust.eps, robust.image_size)


def testbed_set(quick: bool = False, progress: bool | None = None) -> BackboneSet:
    """The test bed's wider pair trained on textures and photographs, plus the real
    VGG-19 trunk. R(f) is measured at the rendering size, in the ball the robust twins were
    trained in scaled to it (L2 radius grows with the square root of the pixel count)."""
    from paramviz.experiments.train import TESTBED_PAIRS as CONFIGS

    robust = CONFIGS[f"{TESTBED_PAIRS[0]}-robust"]
    eps = robust.eps * TESTBED_SIZE / robust.image_size
    return _paired_set("testbed", TESTBED_PAIRS, quick, progress, eps, TESTBED_SIZE)


def _paired_set(
    name: str,
    pairs: tuple[str, ...],
    quick: bool,
    progress: bool,
    robust_eps: float,
    robustness_size: int,
) -> BackboneSet:
    """Trained pairs (or quick stand-ins) plus the real VGG-19 trunk when present."""
    names = pair_names(pairs)
    members = list(stand_ins(names) if quick else trained_members(names, progress))
    notes = []
    if quick:
        notes.append(
            "quick run: the pairs are seeded random-initialised stand-ins with the real names and "
            "architectures (nothing is trained); their numbers test the code, not claims"
        )
    trunk = real_vgg_trunk()
    if trunk is not None:
        members.append(_file_member(TRUNK_NAME, TRUNK_NAME, "standard", trunk, 224))
        judge = members[-1]
        notes.append(
            "judges (experiments/judges.py): Portilla-Simoncelli statistics, the real VGG-19 "
            "trunk and a standard network of each family; none judges its own pictures"
        )
    else:
        judge = random_vgg_judge()
        notes.append(
            f"the real VGG-19 trunk ({trunk_source()}) is absent: continuing without it; network "
            f"judge in its place: a random-initialised VGG-19 trunk (seed {JUDGE_SEED})"
        )
    return BackboneSet(
        name,
        quick,
        tuple(members),
        judge,
        ("relu1_1", "relu2_1", "relu3_1"),
        robust_eps,
        robustness_size,
        tuple(notes),
    )


def trained_members(names: list[str], progress: bool | None = None) -> list[Member]:
    """The trained pairs, trained now on first use (``train_pairs`` reuses finished files)."""
    from paramviz.experiments.train import PAIRS, train_pairs

    reports = train_pairs(names, progress=progress)
    return [
        _file_member(
            name,
            name.rsplit("-", 1)[0],
            name.rsplit("-", 1)[1],
            report.path,
            PAIRS[name].image_size,
        )
        for name, report in zip(names, reports, strict=True)
    ]


def stand_ins(names: list[str]) -> list[Member]:
    """Random-initialised networks with the pairs' names, architectures and widths.

    The robust twin gets another seed, so the two are different networks of the same shape.
    """
    from paramviz.experiments.train import PAIRS

    members = []
    for name in names:
        config = PAIRS[name]
        family, training = name.rsplit("-", 1)
        members.append(
            Member(
                name=name,
                arch=config.arch,
                family=family,
                training=training,
                path=None,
                input_size=config.image_size,
                num_classes=QUICK_CLASSES,
                options=(("num_classes", QUICK_CLASSES), ("width", config.width)),
                seed=TRAININGS.index(training),
                note=f"stand-in for {name}",
            )
        )
    return members


def random_vgg_judge() -> Member:
    """A seeded random VGG-19 trunk to ``relu3_1``: the judge when no real one is available."""
    return Member(
        name="vgg19-random-trunk",
        arch="vgg19",
        family="vgg19-random-trunk",
        training="standard",
        path=None,
        input_size=224,
        num_classes=None,
        options=(("last_layer", "relu3_1"),),
        seed=JUDGE_SEED,
        note="judge of last resort",
    )


# ---------------------------------------------------------------------------------------- real


def real_set(quick: bool = False) -> BackboneSet:
    """The real ImageNet pairs and their outside judges (seeded stand-ins with ``quick``)."""
    notes = [
        "judges (experiments/judges.py): Portilla-Simoncelli statistics, the VGG-19 trunk (never "
        "for its own pair) and the standard EfficientNet-Lite1 and Lite2, which are compared "
        "with nothing; class pictures are recognised by Lite1 and Lite2 above their rate on "
        "small adversarial examples of the rendered network"
    ]
    if quick:
        members, judges = _real_stand_ins()
        notes.insert(0, "quick run: seeded random-initialised stand-ins of the real networks")
    else:
        members, judges = _real_members(), tuple(_registry_member(n, n) for n in REAL_JUDGES)
    return BackboneSet(
        "real",
        quick,
        members,
        members[0],
        ("relu1_1", "relu2_1", "relu3_1"),
        REAL_ROBUST_EPS,
        QUICK_REAL_SIZE if quick else REAL_SIZE,
        tuple(notes),
        judges,
    )


def _real_members() -> tuple[Member, ...]:
    """The real pairs from the trunk beside the checkout and the cached twins; ``UserError``
    naming what is missing and how to make it."""
    from paramviz.experiments.train.twin import twin_path

    trunk = real_vgg_trunk()
    if trunk is None:
        raise UserError(
            f"the real weights set needs the VGG-19 trunk ({trunk_source()}), which is absent"
        )
    paths = {TRUNK_NAME: trunk}
    missing = []
    for name, _, training, flags in REAL_MEMBERS:
        if training == "robust":
            paths[name] = twin_path(name)
            if not paths[name].is_file():
                missing.append(f"  paramviz train-twin {flags} -o {name}")
    if missing:
        raise UserError(
            "the real weights set needs robust twins that are not in the cache; make them with "
            "(about an hour each on 2 cores):\n" + "\n".join(missing)
        )
    return tuple(
        _registry_member(name, family, training, paths.get(name))
        for name, family, training, _ in REAL_MEMBERS
    )


def _registry_member(
    name: str, family: str, training: str = "standard", path: Path | None = None
) -> Member:
    """A member from its converted file (a packaged network is converted on first use)."""
    from paramviz.weights.resolve import weights_path

    return _file_member(name, family, training, path or weights_path(name), REAL_SIZE)


def _real_stand_ins() -> tuple[tuple[Member, ...], tuple[Member, ...]]:
    """Random networks with the real set's names, architectures and roles (few classes)."""

    def stand_in(name: str, family: str, training: str, seed: int) -> Member:
        classifier = not family.startswith("vgg")  # the trunk stand-in stops at relu3_1
        return Member(
            name=name,
            arch=family.replace("-", "_") if classifier else "vgg19",
            family=family,
            training=training,
            path=None,
            input_size=QUICK_REAL_SIZE,
            num_classes=QUICK_CLASSES if classifier else None,
            options=(("num_classes", QUICK_CLASSES),)
            if classifier
            else (("last_layer", "relu3_1"),),
            seed=seed,
            note=f"stand-in for {name}",
        )

    members = tuple(
        stand_in(name, family, training, TRAININGS.index(training))
        for name, family, training, _ in REAL_MEMBERS
    )
    judges = tuple(stand_in(name, name, "standard", 2 + i) for i, name in enumerate(REAL_JUDGES))
    return members, judges


# ------------------------------------------------------------------------------------ loading


def _file_member(name: str, family: str, training: str, path: Path, input_size: int) -> Member:
    """A member described by its converted file's metadata (read without loading tensors)."""
    info = backbones.read_metadata(path)
    options = json.loads(info.get("arch_options", "{}"))
    class_names = json.loads(info["class_names"]) if "class_names" in info else None
    return Member(
        name=name,
        arch=info["arch"],
        family=family,
        training=training,
        path=Path(path),
        input_size=input_size,
        num_classes=options.get("num_classes") if info.get("last_layer") == "logits" else None,
        class_names=tuple(class_names) if class_names else None,
    )


_sha256 = functools.cache(file_sha256)  # metrics.json is rewritten after every cell


def pooling_option(arch: str, pooling: str | None) -> str | None:
    """``pooling`` for networks with the option (Gatys' average-pool swap), else None."""
    return pooling if backbones.get(arch).pooling else None


def load_member(member: Member, pooling: str | None = None):
    """The member as a :class:`~paramviz.backbones.Backbone` (``pooling`` only where offered)."""
    from paramviz.weights.resolve import resolve_backbone

    pooling = pooling_option(member.arch, pooling)
    if member.path is not None:
        return resolve_backbone(str(member.path), pooling=pooling)
    options = dict(member.options) | ({"pooling": pooling} if pooling else {})
    size = (member.input_size, member.input_size)
    return backbones.init(member.arch, rng.key(member.seed), image_size=size, **options)


def describe(member: Member) -> NetworkRecord:
    """The ``backbones`` entry of ``metrics.json``."""
    return NetworkRecord(
        arch=member.arch,
        weights=member.weights,
        sha256=_sha256(member.path) if member.path is not None else None,
        stand_in=member.stand_in,
        training=member.training,
        family=member.family,
    )


def summary(backbone_set: BackboneSet) -> str:
    """A few lines saying which networks run, which judge scores them, and any caveats."""
    lines = [f"weights set {backbone_set.name}{' (quick)' if backbone_set.quick else ''}:"]
    for member in backbone_set.members:
        lines.append(f"  {member.name} ({member.arch}, {member.training}): {member.weights}")
    lines.append(f"  judge: {backbone_set.judge.name} at {', '.join(backbone_set.judge_layers)}")
    lines += [
        f"  outside judge: {judge.name}: {judge.weights}" for judge in backbone_set.outside_judges
    ]
    lines += [f"  note: {note}" for note in backbone_set.notes]
    return "\n".join(lines)


def recognition_judges(backbone_set: BackboneSet, member: Member) -> list[Member]:
    """Independent classifiers for ``member``'s logit pictures (same classes, other networks).

    A set with outside judges uses every one of them with ``member``'s classes. Otherwise one:
    a standard network of another family (another architecture: it shares no weights and no
    training run with ``member``), else ``member``'s own pair twin. Empty when no other network
    has the same classes.
    """
    outside = [other for other in backbone_set.outside_judges if _same_classes(other, member)]
    if outside:
        return outside
    same_classes = [other for other in backbone_set.members if _same_classes(other, member)]
    other_family = [other for other in same_classes if other.family != member.family]
    ranked = sorted(other_family, key=lambda other: other.training != "standard") + [
        other for other in same_classes if other.family == member.family
    ]
    return ranked[:1]


def _same_classes(other: Member, member: Member) -> bool:
    return (
        other.name != member.name
        and other.num_classes is not None
        and other.num_classes == member.num_classes
    )
