"""Every judge and artefact metric on the calibration pictures: the content picture, content +
noise, the style picture and a planted 2-px colour checkerboard must come out in the order their
kind demands (experiments.calibration); plus the cases the old, luminance-only metrics missed."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from paramviz import backbones
from paramviz.experiments import calibration, judges, metrics, texture_statistics
from paramviz.experiments.backbone_sets import BackboneSet, Member
from paramviz.experiments.pictures import load_picture

PAIRS = (("chelsea", "immunohistochemistry"), ("coffee", "gravel"))
SIZE = 64


@pytest.fixture(scope="module", params=PAIRS, ids=lambda pair: "+".join(pair))
def calibration_set(request) -> dict[str, np.ndarray]:
    content, style = (load_picture(name, SIZE) for name in request.param)
    pictures = {kind: calibration.picture(kind, content, style) for kind in calibration.KINDS}
    return pictures | {"_content": content, "_style": style}


def kinds(pictures: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {kind: pictures[kind] for kind in calibration.KINDS}


def assert_ranked(orders: tuple[calibration.Order, ...], values: dict[str, float]) -> None:
    broken = [v for order in orders for v in calibration.violations(order, values)]
    assert broken == [], values


ARTEFACT_METRICS = {
    "checkerboard_colour": lambda p: metrics.colour_checkerboard_energy(p, (2, 4, 8)),
    "checkerboard_local": lambda p: metrics.local_checkerboard_energy(p, (2, 4, 8)),
    "high_frequency_colour": metrics.colour_high_frequency_ratio,
}


@pytest.mark.parametrize("name", ARTEFACT_METRICS)
def test_artefact_metrics_rank_the_calibration_pictures(calibration_set, name):
    values = {k: float(ARTEFACT_METRICS[name](p)) for k, p in kinds(calibration_set).items()}
    assert_ranked(judges.metric_orders(name), values)


def test_the_planted_checkerboard_is_far_outside_natural_values(calibration_set):
    planted = calibration_set["content+checkerboard"]
    clean = [calibration_set[k] for k in ("content", "content+noise", "style")]
    assert metrics.colour_checkerboard_energy(planted) > 30 * max(
        metrics.colour_checkerboard_energy(p) for p in clean
    )


def test_the_luminance_metrics_cannot_see_an_isoluminant_checkerboard(calibration_set):
    """Why the colour-aware metrics exist: the planted pattern has no luma at all."""
    content, planted = calibration_set["content"], calibration_set["content+checkerboard"]
    plain = metrics.checkerboard_energy(planted, (2,)).summary
    assert plain < 3 and metrics.high_frequency_ratio(planted) == pytest.approx(
        metrics.high_frequency_ratio(content), abs=0.01
    )
    assert metrics.colour_checkerboard_energy(planted, (2,)) > 100


def test_layout_distance_ranks_the_calibration_pictures(calibration_set):
    content = calibration_set["_content"]
    values = {
        k: float(metrics.layout_distance(p, content)) for k, p in kinds(calibration_set).items()
    }
    assert_ranked(calibration.CONTENT_ORDERS, values)
    assert values["content+noise"] < 0.05 and values["content+checkerboard"] < 0.05


@pytest.mark.skipif(not texture_statistics.available(), reason="plenoptic is not installed")
def test_portilla_simoncelli_distance_ranks_the_calibration_pictures(calibration_set):
    style = calibration_set["_style"]
    pictures = kinds(calibration_set)
    values = dict(
        zip(
            pictures,
            texture_statistics.style_distance(np.stack(list(pictures.values())), style),
            strict=True,
        )
    )
    assert values["style"] == pytest.approx(0.0, abs=1e-6)
    assert_ranked(calibration.STYLE_ORDERS, values)


def test_portilla_simoncelli_sees_a_scrambled_texture():
    """Same pixel values, destroyed structure: far from the texture, unlike a shifted copy."""
    if not texture_statistics.available():
        pytest.skip("plenoptic is not installed")
    texture = load_picture("gravel", SIZE)
    rng = np.random.default_rng(0)
    scrambled = texture.reshape(-1, 3)[rng.permutation(SIZE * SIZE)].reshape(texture.shape)
    shifted = np.roll(texture, (SIZE // 3, SIZE // 5), axis=(0, 1))
    near, far = texture_statistics.style_distance(np.stack([shifted, scrambled]), texture)
    assert near < far / 2


def random_net(arch: str, seed: int, **options) -> backbones.Backbone:
    return backbones.init(arch, jax.random.PRNGKey(seed), image_size=(SIZE, SIZE), **options)


@pytest.fixture(scope="module")
def network_judges(request) -> dict[str, backbones.Backbone]:
    nets = {
        "random vgg19": random_net("vgg19", 1234, last_layer="relu3_1"),
        "random resnet18/4": random_net("resnet18", 5, width=0.25, num_classes=10),
    }
    from paramviz.weights.local import real_vgg_trunk
    from paramviz.weights.resolve import resolve_backbone

    if (trunk := real_vgg_trunk()) is not None:
        nets["real vgg19 trunk"] = resolve_backbone(str(trunk))
    nets["efficientnet-lite1"] = resolve_backbone("efficientnet-lite1")
    return nets


@pytest.mark.parametrize(
    "judge", ["random vgg19", "random resnet18/4", "real vgg19 trunk", "efficientnet-lite1"]
)
def test_network_judges_rank_the_calibration_pictures(calibration_set, network_judges, judge):
    if judge not in network_judges:
        pytest.skip("the real VGG-19 trunk is not beside the checkout")
    net = network_judges[judge]
    layers = backbones.style_preset(net)[0][: judges.JUDGE_LAYER_COUNT]
    pictures = kinds(calibration_set)
    batch = np.stack(list(pictures.values()))
    style = dict(
        zip(
            pictures,
            metrics.style_distance(net, batch, calibration_set["_style"], layers),
            strict=True,
        )
    )
    content = dict(
        zip(
            pictures,
            metrics.content_distance(net, batch, calibration_set["_content"], layers),
            strict=True,
        )
    )
    assert_ranked(calibration.STYLE_ORDERS, style)
    assert_ranked(calibration.CONTENT_ORDERS, content)


def test_a_checkerboard_patch_is_found_by_the_tiles_not_by_the_whole_picture():
    picture = load_picture("chelsea", 128)
    rows, cols = np.indices((128, 128))
    patch = (abs(rows - 40) < 10) & (abs(cols - 80) < 10)
    sign = np.where((rows + cols) % 2 == 0, 1.0, -1.0)
    planted = np.clip(
        picture + (0.1 * sign * patch)[..., None] * calibration.ISOLUMINANT_ORANGE_BLUE, 0, 1
    )
    whole = metrics.colour_checkerboard_energy(planted, (2,))
    local = metrics.local_checkerboard_energy(planted, (2,))
    assert local > 100 and local > 10 * whole
    assert metrics.local_checkerboard_energy(picture, (2,)) < 10


def test_a_drifting_two_pixel_pattern_is_seen_by_its_disc_not_by_a_peak():
    """The Fourier/Adam artefact on the trunk: a 2-px checkerboard whose phase wanders spreads
    its power over the bins near Nyquist, so a peak-versus-neighbours test reads ~1."""
    picture = load_picture("coffee", 96)
    rows, cols = np.indices((96, 96))
    phase = 2 * np.pi * np.random.default_rng(0).random()
    drift = 3.0 * np.sin(2 * np.pi * rows / 41 + phase) + 2.0 * np.cos(2 * np.pi * cols / 29)
    pattern = 0.08 * np.cos(np.pi * (rows + cols) + drift)
    planted = np.clip(picture + pattern[..., None], 0, 1)
    assert metrics.checkerboard_energy(planted, (2,)).summary < 3
    assert metrics.two_pixel_excess(metrics.luminance(planted)) > 10
    assert metrics.colour_checkerboard_energy(planted, (2,)) > 10
    assert metrics.colour_checkerboard_energy(picture, (2,)) < 2


# ------------------------------------------------------------------------------ who judges whom


def member(name: str, arch: str, training: str = "standard") -> Member:
    return Member(name, arch, name.rsplit("-", 1)[0], training, None, 64, 10)


def test_no_row_is_judged_by_its_own_network_or_family_and_every_row_keeps_two_judges():
    trunk = member("trunk", "vgg19_normalised")
    nets = (
        member("resnet-standard", "resnet18"),
        member("resnet-robust", "resnet18", "robust"),
        member("vgg-standard", "vgg16"),
        member("vgg-robust", "vgg16", "robust"),
        trunk,
    )
    backbone_set = BackboneSet("t", False, nets, trunk, (), 1.0, 64)
    panel = judges.network_judges(backbone_set)
    assert [(j.role, j.member.name) for j in panel] == [
        ("trunk", "trunk"),
        ("resnet", "resnet-standard"),
        ("vgg", "vgg-standard"),
    ]
    for compared in nets:
        allowed = [j for j in panel if not j.excluded_for(compared)]
        names = {j.member.name for j in allowed}
        assert compared.name not in names
        assert judges.family_kind(compared.arch) not in {
            j.role for j in allowed if j.role != "trunk"
        }
        assert len(allowed) + 1 >= 2  # plus Portilla-Simoncelli, which no network is
    assert {j.role for j in panel if not j.excluded_for(trunk)} == {"resnet"}
    assert all(not j.excluded_for(None) for j in panel)  # calibration: everyone judges


def test_the_calibration_check_reports_a_wrong_order():
    good = {"content": 0.0, "content+noise": 0.1, "style": 0.9, "content+checkerboard": 0.05}
    assert calibration.check(
        {"a": {k: {"content_x": v} for k, v in good.items()}}, judges.metric_orders
    ) == {"content_x": []}
    bad = good | {"style": 0.0}
    report = calibration.check(
        {"a": {k: {"content_x": v} for k, v in bad.items()}}, judges.metric_orders
    )
    assert report["content_x"] == ["a: content 0 >= style 0", "a: content+noise 0.1 >= style 0"]


def test_the_shuffled_style_moves_every_tile_and_keeps_every_pixel():
    style = load_picture("gravel", SIZE)
    shuffled = calibration.shuffled_tiles(style, seed=3)
    side = SIZE // calibration.SHUFFLE_GRID
    tiles = [
        style[r : r + side, c : c + side]
        for r in range(0, SIZE, side)
        for c in range(0, SIZE, side)
    ]
    moved = [
        shuffled[r : r + side, c : c + side]
        for r in range(0, SIZE, side)
        for c in range(0, SIZE, side)
    ]
    assert not any(np.array_equal(a, b) for a, b in zip(tiles, moved, strict=True))
    np.testing.assert_array_equal(np.sort(shuffled, axis=None), np.sort(style, axis=None))
    assert not np.array_equal(calibration.shuffled_tiles(style, seed=4), shuffled)


def test_the_blurred_style_keeps_the_colours_and_loses_the_fine_texture():
    style = load_picture("gravel", SIZE)
    blurred = calibration.blurred(style)
    np.testing.assert_allclose(blurred.mean(axis=(0, 1)), style.mean(axis=(0, 1)), atol=2e-3)
    assert metrics.high_frequency_ratio(blurred) < metrics.high_frequency_ratio(style) / 3
