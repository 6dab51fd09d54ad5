"""The flags users of neural-style and Lucid know, each checked for what it does: several style
pictures with blend weights, --style-scale, --original-colors, --sizes, --init image:PATH,
--tv-weight, and visualize's --batch with the direction and diversity objective strings."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import pytest
from helpers.cli import run_cli
from helpers.files import small_weights

from paramviz import backbones, budget, objectives, tasks
from paramviz.io import read_image, save_png
from paramviz.objectives.parse import channel_ranges

SPEC = "conv8k3s1p1,relu,maxpool2,conv16k3s1p1,relu,maxpool2,conv16k3s1p1,relu"
CONTENT_HW = (24, 32)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """A tiny plain CNN (taps conv1, relu1, pool1, ..., relu3 of 16 channels) on disk."""
    return small_weights(tmp_path_factory.mktemp("w") / "small.safetensors", SPEC)


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> dict[str, Path]:
    """A colourful content picture, two different styles and a picture to start from."""
    folder = tmp_path_factory.mktemp("img")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[: CONTENT_HW[0], : CONTENT_HW[1]] / CONTENT_HW[1]
    content = np.stack([xx, yy, 1 - xx], -1) * 0.6 + 0.2 * rng.uniform(size=(*CONTENT_HW, 3))
    stripes = np.tile((np.arange(40) % 8 < 4)[None, :, None], (40, 1, 3)).astype(np.float32)
    return {
        "content": save_png(folder / "content.png", content),
        "stripes": save_png(folder / "stripes.png", 0.2 + 0.6 * stripes),
        "noise": save_png(folder / "noise.png", rng.uniform(size=(40, 40, 3))),
        "start": save_png(folder / "start.png", rng.uniform(size=(*CONTENT_HW, 3))),
    }


def render(capsys, command: str, out: Path, *flags) -> dict:
    """Run ``paramviz COMMAND`` on the tiny network; returns the sidecar."""
    argv = [command, *flags, "--size", 32, "--quiet", "-o", out]
    code, err = run_cli(capsys, *argv)
    assert code == 0, err
    return json.loads(out.with_suffix(".json").read_text())


def style(capsys, weights, pictures, out: Path, *flags) -> dict:
    return render(
        capsys, "style", out, "--content", pictures["content"], "--weights", weights, *flags
    )


def pixels(path: Path) -> np.ndarray:
    return read_image(path)


def chroma(images: np.ndarray) -> np.ndarray:
    """The I and Q channels of YIQ."""
    return np.asarray(images) @ tasks.YIQ[1:].T


# ------------------------------------------------------------------------ several style pictures


def test_blend_weights_1_0_give_the_first_style_alone_and_0_1_the_second(
    weights, pictures, tmp_path, capsys
):
    both = f"{pictures['stripes']},{pictures['noise']}"
    common = ["--steps", 15, "--lr", 0.1]
    single = {}
    for name in ("stripes", "noise"):
        style(
            capsys, weights, pictures, tmp_path / f"{name}.png", "--style", pictures[name], *common
        )
        single[name] = pixels(tmp_path / f"{name}.png")
    for blend, alone in (("1,0", "stripes"), ("0,1", "noise")):
        out = tmp_path / f"blend{blend.replace(',', '')}.png"
        record = style(
            capsys, weights, pictures, out, "--style", both, "--style-blend-weights", blend, *common
        )
        assert record["settings"]["style_blend_weights"] == [float(w) for w in blend.split(",")]
        np.testing.assert_array_equal(pixels(out), single[alone])
    assert np.abs(single["stripes"] - single["noise"]).mean() > 0.02  # the styles do differ
    even = tmp_path / "even.png"
    style(capsys, weights, pictures, even, "--style", both, *common)
    assert np.abs(pixels(even) - single["stripes"]).mean() > 1e-3


def test_blended_targets_are_the_weighted_average_of_the_grams(pictures):
    net = backbones.init("sequential", jax.random.PRNGKey(1), (32, 32), spec=SPEC)
    a, b = read_image(pictures["stripes"], 32), read_image(pictures["noise"], 32)
    layers = ("relu1", "relu2")
    blended = tasks.blended_style_targets(
        net, [a, b], layers, tasks.StyleSettings(style_blend_weights=(3.0, 7.0))
    )
    ga, gb = (objectives.style_targets(net, image, layers) for image in (a, b))
    for layer in layers:
        np.testing.assert_allclose(blended[layer], 0.3 * ga[layer] + 0.7 * gb[layer], rtol=1e-6)


def test_blend_weights_must_match_the_style_pictures(weights, pictures, tmp_path, capsys):
    argv = [
        "style",
        "--content",
        pictures["content"],
        "--style",
        pictures["stripes"],
        "--weights",
        weights,
        "--style-blend-weights",
        "1,2",
        "-o",
        tmp_path / "x.png",
    ]
    code, err = run_cli(capsys, *argv)
    assert code == 2 and "2 weights for 1 style pictures" in err
    code, err = run_cli(capsys, *argv[:-4], "--style-blend-weights", "1,-2", "-o", tmp_path / "x")
    assert code == 2 and "--style-blend-weights: expected a finite number and >= 0" in err
    assert not list(tmp_path.iterdir())


def test_a_style_picture_is_an_input_never_the_output(weights, pictures, tmp_path, capsys):
    copy = save_png(tmp_path / "b.png", read_image(pictures["noise"]))
    code, err = run_cli(capsys, "texture", "--style", f"{pictures['stripes']},{copy}",
                        "--weights", weights, "-o", copy)  # fmt: skip
    assert code == 2 and "is the input" in err


# ----------------------------------------------------------------------------------- style scale


def test_style_scale_sets_the_size_the_style_is_read_at(weights, pictures, tmp_path, capsys):
    flags = ["--style", pictures["stripes"], "--steps", 1]
    full = style(capsys, weights, pictures, tmp_path / "full.png", *flags)
    half = style(capsys, weights, pictures, tmp_path / "half.png", *flags, "--style-scale", 0.5)
    assert full["settings"]["style_sizes"] == [[32, 32]]
    assert half["settings"]["style_sizes"] == [[16, 16]]
    assert half["result"]["image_shape"] == full["result"]["image_shape"] == [1, *CONTENT_HW, 3]
    texture = render(capsys, "texture", tmp_path / "t.png", "--weights", weights, *flags,
                     "--style-scale", "0.5")  # fmt: skip
    assert texture["settings"]["style_sizes"] == [[16, 16]]
    assert texture["result"]["image_shape"] == [1, 32, 32, 3]  # the output keeps --size


def test_a_style_scale_too_large_for_the_machine_is_refused(
    weights, pictures, tmp_path, capsys, monkeypatch
):
    net = backbones.load(weights)
    needed, _ = budget.forward_bytes(net, ["relu1", "relu2", "relu3"], (256, 256), ())
    monkeypatch.setattr(budget, "available_bytes", lambda: needed - 1)
    flags = ["--style", pictures["stripes"], "--steps", 1]
    argv = ["style", "--content", pictures["content"], "--weights", weights, *flags]
    code, err = run_cli(capsys, *argv, "--style-scale", 8, "--size", 32, "-o", tmp_path / "big.png")
    assert code == 2 and "reading a 256x256 style picture with sequential needs about" in err
    assert "use a smaller --style-scale or --size" in err and not list(tmp_path.iterdir())
    style(capsys, weights, pictures, tmp_path / "fits.png", *flags, "--style-scale", 2)


# ------------------------------------------------------------------------------- original colours


def test_original_colors_keep_the_content_chroma(weights, pictures, tmp_path, capsys):
    """At every pixel whose channels were not clipped to 0 or 1, the result's I and Q (YIQ) are
    the content's within 1/255 (8-bit rounding shifts all three channels alike, so it changes
    luminance only); without the flag they are far off."""
    flags = ["--style", pictures["noise"], "--steps", 30, "--lr", 0.1, "--style-weight", 100]
    style(capsys, weights, pictures, tmp_path / "plain.png", *flags)
    record = style(capsys, weights, pictures, tmp_path / "kept.png", *flags, "--original-colors")
    assert record["settings"]["original_colors"] is True
    content = chroma(read_image(pictures["content"], 32))
    kept, plain = pixels(tmp_path / "kept.png"), pixels(tmp_path / "plain.png")
    unclipped = np.all((kept > 0.5 / 255) & (kept < 254.5 / 255), axis=-1)
    assert unclipped.mean() > 0.8
    assert np.abs(chroma(kept) - content)[unclipped].max() <= 1 / 255
    assert np.median(np.abs(chroma(plain) - content)) > 5 / 255
    luminance = tasks.YIQ[0]
    assert np.abs(kept @ luminance - plain @ luminance)[unclipped].mean() < 0.02


def test_original_colours_is_the_luminance_of_one_and_the_chroma_of_the_other():
    rng = np.random.default_rng(0)
    picture, content = rng.uniform(0.3, 0.7, (2, 5, 6, 3)).astype(np.float32)
    mixed = tasks.original_colours(picture, content)
    np.testing.assert_allclose(mixed @ tasks.YIQ[0], picture @ tasks.YIQ[0], atol=1e-5)
    np.testing.assert_allclose(chroma(mixed), chroma(content), atol=1e-5)


# ------------------------------------------------------------------------------------ multi-scale


def test_sizes_end_at_the_last_size_and_each_stage_starts_from_the_one_before(
    weights, pictures, tmp_path, capsys
):
    """With a vanishing learning rate every stage returns its start, so the 32 px result is the
    16 px stage's picture upsampled, not the content read at 32 px."""
    out = tmp_path / "staged.png"
    record = render(
        capsys, "style", out, "--content", pictures["content"], "--style", pictures["stripes"],
        "--weights", weights, "--sizes", "16,32", "--steps", 1, "--lr", 1e-7,
        "--param", "pixel", "--no-decorrelate",
    )  # fmt: skip
    assert record["settings"]["stage_sizes"] == [[12, 16], list(CONTENT_HW)]
    assert record["result"]["image_shape"] == [1, *CONTENT_HW, 3]
    upsampled = tasks.resized(read_image(pictures["content"], 16), CONTENT_HW)
    assert np.abs(pixels(out) - upsampled).max() <= 2 / 255
    assert np.abs(pixels(out) - read_image(pictures["content"], 32)).mean() > 0.02


def test_sizes_must_increase(weights, pictures, capsys):
    code, err = run_cli(capsys, "texture", "--style", pictures["stripes"], "--weights", weights,
                        "--sizes", "32,16")  # fmt: skip
    assert code == 2 and "--sizes: expected increasing sizes, got '32,16'" in err


# ------------------------------------------------------------------------------ --init image:PATH


def test_init_image_with_no_steps_gives_the_picture_back(weights, pictures, tmp_path, capsys):
    start = ["--init", f"image:{pictures['start']}", "--steps", 0, "--weights", weights]
    picture = read_image(pictures["start"])
    style(capsys, weights, pictures, tmp_path / "s.png", "--style", pictures["stripes"], *start)
    assert np.abs(pixels(tmp_path / "s.png") - picture).max() <= 1 / 255
    units = ["--objective", "relu2:1", "--batch", 2]
    render(capsys, "visualize", tmp_path / "v.png", *units, *start)
    sheet = pixels(tmp_path / "v.png")
    square = tasks.resized(picture, (32, 32))  # every image of the batch starts from it
    for tile in (sheet[2:34, 2:34], sheet[2:34, 36:68]):
        assert np.abs(tile - square).max() <= 1 / 255


def test_init_image_is_an_input_and_is_checked(weights, pictures, tmp_path, capsys):
    texture = ["texture", "--style", pictures["stripes"], "--weights", weights]
    start = f"image:{pictures['start']}"
    code, err = run_cli(capsys, *texture, "--init", start, "-o", pictures["start"])
    assert code == 2 and "is the input" in err
    code, err = run_cli(capsys, *texture, "--init", "photo")
    assert code == 2 and "expected content, noise or image:PATH, got 'photo'" in err


# ------------------------------------------------------------------------------------- TV weight


def test_tv_weight_defaults_to_off_and_smooths_the_picture(weights, pictures, tmp_path, capsys):
    flags = ["--style", pictures["noise"], "--weights", weights, "--steps", 30, "--lr", 0.1]
    plain = render(capsys, "texture", tmp_path / "plain.png", *flags)
    assert plain["settings"]["tv_weight"] == 0.0
    smooth = render(capsys, "texture", tmp_path / "tv.png", *flags, "--tv-weight", 1e-2)
    assert smooth["settings"]["tv_weight"] == 0.01

    def variation(path: Path) -> float:
        image = pixels(path)
        return float(np.abs(np.diff(image, axis=0)).sum() + np.abs(np.diff(image, axis=1)).sum())

    assert variation(tmp_path / "tv.png") < 0.7 * variation(tmp_path / "plain.png")


# ---------------------------------------------------------------- visualize: batch, direction, ...


def test_batch_renders_n_random_starts_of_one_unit(weights, tmp_path, capsys):
    flags = ["--objective", "relu2:3", "--batch", 3, "--weights", weights, "--transforms", "none"]
    start = render(capsys, "visualize", tmp_path / "start.png", *flags, "--steps", 0)
    record = render(capsys, "visualize", tmp_path / "end.png", *flags, "--steps", 10)
    assert record["labels"] == ["relu2:3 #0", "relu2:3 #1", "relu2:3 #2"]
    assert record["result"]["image_shape"] == [3, 32, 32, 3]
    names = [f"channel(relu2:3, batch={i})" for i in range(3)]
    assert sorted(record["result"]["terms"]) == names
    for name in names:  # every image raised the unit
        assert record["result"]["terms"][name] > start["result"]["terms"][name]
    sheet = pixels(tmp_path / "end.png")
    tiles = [sheet[2:34, 2 + 34 * i : 34 + 34 * i] for i in range(2)]
    assert np.abs(tiles[0] - tiles[1]).mean() > 0.01  # different random starts, different ends


def test_direction_and_diversity_strings_are_lucids_objectives(weights, tmp_path, capsys):
    """The sidecar's term values, computed by the render on its final images, match
    objectives.direction and objectives.diversity evaluated on the saved pictures."""
    net = backbones.load(weights)
    vector = np.random.default_rng(0).normal(size=16).astype(np.float32)
    np.save(tmp_path / "v.npy", vector)
    out = tmp_path / "dir.png"
    record = render(
        capsys, "visualize", out, "--objective", f"direction:relu3:{tmp_path / 'v.npy'}",
        "--objective", "diversity:relu3:50", "--batch", 2, "--weights", weights,
        "--steps", 20, "--lr", 0.1, "--transforms", "none", "--param", "pixel",
    )  # fmt: skip
    terms = record["result"]["terms"]
    sheet = pixels(out)
    images = np.stack([sheet[2:34, 2:34], sheet[2:34, 36:68]])
    features = {"main": {"relu3": net(images, ("relu3",))["relu3"]}}
    for batch in range(2):
        expected = objectives.direction("relu3", vector, batch=batch)(features)
        assert terms[f"direction(relu3, batch={batch})"] == pytest.approx(float(expected), rel=0.02)
    expected = -50 * float(objectives.diversity("relu3")(features))
    assert expected < -1  # Grams large enough to be normalised (far from the 1e-10 floor)
    assert terms["-50 * diversity(relu3)"] == pytest.approx(expected, rel=0.02)


def test_objective_strings_parse_to_the_engines_objectives(tmp_path):
    features = {"main": {"acts": jax.random.normal(jax.random.PRNGKey(0), (3, 5, 4, 4))}}
    vector = [0.5, -1.0, 2.0, 0.0]
    np.savetxt(tmp_path / "v.txt", vector)
    for text in ("direction:acts:0.5 -1 2 0", f"direction:acts:{tmp_path / 'v.txt'}"):
        parsed = objectives.parse(text, batch=1)
        expected = objectives.direction("acts", np.asarray(vector), batch=1)
        assert float(parsed(features)) == pytest.approx(float(expected(features)), rel=1e-6)
    default = objectives.parse("diversity:acts")
    assert float(default(features)) == pytest.approx(
        -100 * float(objectives.diversity("acts")(features)), rel=1e-6
    )
    objective, units = objectives.batch_objective(["acts:1", "diversity:acts:2"], copies=2)
    assert units == ["acts:1 #0", "acts:1 #1"]
    expected = (
        objectives.channel("acts", 1, batch=0)
        + objectives.channel("acts", 1, batch=1)
        - 2 * objectives.diversity("acts")
    )
    assert float(objective(features)) == pytest.approx(float(expected(features)), rel=1e-6)
    ranges = channel_ranges(["acts:0-3, acts:1", "b:2-9"])
    assert [(r.layer, r.start, r.stop) for r in ranges] == [("acts", 0, 3), ("b", 2, 9)]
    read = ["acts:0-99999999, neuron:b:2", "diversity:c", "logit:1", "direction:d:1 2"]
    assert objectives.spec_layers(read) == ["acts", "b", "c", "d", "logits"]
