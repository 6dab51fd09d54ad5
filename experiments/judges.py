"""Who judges a style or texture picture -- never the network that made it -- and what they say.

Every picture of a style experiment gets:

* ``style_distance``: Portilla & Simoncelli's texture statistics
  (:mod:`paramviz.experiments.texture_statistics`), a judge without learned weights and so the same
  independent judge for every row. Without plenoptic it falls back to a seeded random-initialised
  VGG-19 trunk, a network no row optimised (settings.json says which).
* ``content_distance``: :func:`paramviz.experiments.metrics.layout_distance`, the large-scale layout
  of the content (network-free; the trunk's feature distance also grows with the transferred
  texture, so it ran from 0.56 to 1.46 over pictures that were all recognisable).
* network judges (:func:`network_judges`), each at its first three style layers: the VGG-19
  trunk (``style_trunk``, ``content_trunk``), and the standard network of each architecture
  family in the set (``style_resnet``, ``style_vgg``, ...). A judge is left out of a row when it
  is the compared network or of its family, so every row keeps at least two judges independent
  of it (Portilla-Simoncelli and one or two networks).
* for priors with transforms, the network judges' style distance of the picture *as the network
  saw it* (``style_<judge>_seen``: the mean over :data:`SEEN_DRAWS` draws of the prior's
  transforms), beside the raw picture's.
* artefacts measured per colour-opponent channel: ``checkerboard_colour`` (the whole picture),
  ``checkerboard_local`` (the worst 32 px tile) and ``high_frequency_colour``, beside the
  luminance-only ``checkerboard``, ``high_frequency_ratio`` and ``spectrum_slope``.

Calibration (:mod:`paramviz.experiments.calibration`): the same numbers for the content picture,
content + noise, the style picture and a planted colour checkerboard, judged by every judge.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from paramviz import rng
from paramviz.experiments import calibration, metrics, texture_statistics
from paramviz.experiments.backbone_sets import BackboneSet, Member, load_member, random_vgg_judge
from paramviz.experiments.registry import RunContext

JUDGE_LAYER_COUNT = 3
SEEN_DRAWS = 4
SEEN_SEED = 7


@dataclasses.dataclass(frozen=True)
class NetworkJudge:
    """A judging network: its role (the metric's suffix) and the set member it is."""

    role: str
    member: Member

    def excluded_for(self, compared: Member | None) -> bool:
        """Whether this judge may not score pictures of ``compared``: itself, its pair (a twin
        is distilled from its original) or, for the per-family judges, its architecture."""
        if compared is None:
            return False
        if self.member.name == compared.name or self.member.family == compared.family:
            return True
        return self.role != "trunk" and family_kind(compared.arch) == self.role


def family_kind(arch: str) -> str:
    """``resnet18`` -> ``resnet``, ``vgg19_normalised`` -> ``vgg``, ``efficientnet_lite1`` ->
    ``lite1``: the architecture family (each EfficientNet-Lite is a family of its own: they
    differ in width, depth and resolution, and were trained separately)."""
    for kind in ("resnet", "vgg", "alexnet"):
        if arch.startswith(kind):
            return kind
    return arch.removeprefix("efficientnet_")


def network_judges(backbone_set: BackboneSet) -> list[NetworkJudge]:
    """The set's judge (the VGG-19 trunk where available), then the set's outside judges or,
    without them, one standard net per family."""
    judges = [NetworkJudge("trunk", backbone_set.judge)]
    if backbone_set.outside_judges:
        return judges + [NetworkJudge(family_kind(m.arch), m) for m in backbone_set.outside_judges]
    for member in backbone_set.members:
        kind = family_kind(member.arch)
        if member.training != "standard" or member.name == backbone_set.judge.name:
            continue
        if kind not in {judge.role for judge in judges}:
            judges.append(NetworkJudge(kind, member))
    return judges


def style_judge_name() -> str:
    """What ``style_distance`` is in this environment."""
    if texture_statistics.available():
        return "portilla-simoncelli (plenoptic)"
    return f"{random_vgg_judge().name} (plenoptic is not installed)"


def describe(backbone_set: BackboneSet) -> dict[str, Any]:
    """The judges, for settings.json."""
    return {
        "style_distance": style_judge_name(),
        "content_distance": "layout: 1 - correlation of blurred luminance",
        "networks": {
            judge.role: {"name": judge.member.name, "arch": judge.member.arch}
            for judge in network_judges(backbone_set)
        },
        "excluded": "a network judge never scores its own pictures or its family's",
    }


def _load(context: RunContext, judge: NetworkJudge):
    if judge.member.name == context.backbone_set.judge.name and judge.role == "trunk":
        return context.judge()
    return context.backbone(judge.member.name)


def _layers(net) -> tuple[str, ...]:
    from paramviz.backbones import style_preset

    return tuple(style_preset(net)[0][:JUDGE_LAYER_COUNT])


@functools.cache
def _fallback_judge():
    return load_member(random_vgg_judge())


def _fallback_style_distance(picture: np.ndarray, style: np.ndarray) -> float:
    net = _fallback_judge()
    return float(metrics.style_distance(net, picture, style, _layers(net)))


def seen_pictures(transform, picture: np.ndarray) -> np.ndarray:
    """``SEEN_DRAWS`` draws of ``transform`` on the picture: what the network saw."""
    keys = [jax.random.fold_in(rng.key(SEEN_SEED), i) for i in range(SEEN_DRAWS)]
    return np.concatenate([np.asarray(transform(k, picture[None])) for k in keys])


def judge_picture(
    context: RunContext,
    picture: np.ndarray,
    *,
    style: np.ndarray,
    content: np.ndarray | None,
    compared: str | None,
    periods: Sequence[int],
    transform=None,
) -> dict[str, float]:
    """Every judge's numbers for one picture (see the module docstring); ``compared`` is the
    network that made it (None: a calibration picture, judged by all)."""
    member = context.backbone_set.member(compared) if compared else None
    values: dict[str, float] = {}
    if texture_statistics.available():
        values["style_distance"] = float(texture_statistics.style_distance(picture, style))
    else:
        values["style_distance"] = _fallback_style_distance(picture, style)
    if content is not None:
        values["content_distance"] = float(metrics.layout_distance(picture, content))
    seen = seen_pictures(transform, picture) if transform is not None else None
    for judge in network_judges(context.backbone_set):
        if judge.excluded_for(member):
            continue
        net = _load(context, judge)
        layers = _layers(net)
        acts = metrics.judge_activations(net, picture, layers)  # one pass for both distances
        values[f"style_{judge.role}"] = float(
            metrics.style_distance(net, picture, style, layers, activations=acts)
        )
        if content is not None:
            values[f"content_{judge.role}"] = float(
                metrics.content_distance(net, picture, content, layers, activations=acts)
            )
        if seen is not None:
            seen_values = metrics.style_distance(net, seen, style, layers)
            values[f"style_{judge.role}_seen"] = float(np.mean(seen_values))
    return values | artefact_metrics(picture, periods)


def artefact_metrics(picture: np.ndarray, periods: Sequence[int]) -> dict[str, float]:
    """Luminance spectral metrics and their colour-aware and local versions."""
    return metrics.spectral_metrics(picture, periods) | {
        "checkerboard_colour": float(metrics.colour_checkerboard_energy(picture, periods)),
        "checkerboard_local": float(metrics.local_checkerboard_energy(picture, periods)),
        "high_frequency_colour": float(metrics.colour_high_frequency_ratio(picture)),
    }


def calibration_metrics(
    context: RunContext,
    content: np.ndarray | None,
    style: np.ndarray,
    other: np.ndarray,
    seed: int,
) -> dict[str, dict[str, float]]:
    """``{kind: metrics}`` of the calibration pictures of one group (texture tables: ``other``,
    another picture, stands in for the content)."""
    reference = content if content is not None else other
    return {
        kind: judge_picture(
            context,
            calibration.picture(kind, reference, style, seed),
            style=style,
            content=content,
            compared=None,
            periods=metrics.STRIDE_PERIODS,
        )
        for kind in calibration.KINDS
    }


def metric_orders(metric: str) -> tuple[calibration.Order, ...]:
    """The calibration orders a metric must give (:mod:`paramviz.experiments.calibration`);
    empty for metrics without one."""
    if metric.startswith("style_") and not metric.endswith("_seen"):
        return calibration.STYLE_ORDERS
    if metric.startswith("content_"):
        return calibration.CONTENT_ORDERS
    if metric in ("checkerboard_colour", "checkerboard_local"):
        return (calibration.ARTEFACT,)
    if metric == "high_frequency_colour":
        return (calibration.HIGH_FREQUENCY,)
    return ()
