"""Inputs a hostile or careless user gives: each ends in one clear line, never in running code,
a traceback or a destroyed input."""

from __future__ import annotations

import io
import os
import pickle
import struct
import tarfile
import zlib
from pathlib import Path

import jax
import numpy as np
import pytest
import torch
from helpers.cli import one_line, run_cli
from helpers.files import SPEC, random_picture, small_weights
from PIL import Image

from paramviz import backbones
from paramviz.backbones.store import check_finite
from paramviz.errors import UserError
from paramviz.io import read_image


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory) -> Path:
    return small_weights(tmp_path_factory.mktemp("w") / "small.safetensors")


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    return random_picture(tmp_path_factory.mktemp("img") / "photo.png")


# ------------------------------------------------------------------------------ pickles


class RunsCode:
    """Unpickling this runs ``touch MARKER``: what a malicious checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _tar_checkpoint(path: Path, payload) -> Path:
    """PyTorch's oldest (tar) format: sys_info, storages, tensors and the pickled object."""

    def add(tar, name, value):
        data = pickle.dumps(value, protocol=2)
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

    with tarfile.open(path, "w") as tar:
        sizes = {"short": 2, "int": 4, "long": 4}
        add(tar, "sys_info", {"protocol_version": 1000, "little_endian": True, "type_sizes": sizes})
        add(tar, "storages", 0)
        add(tar, "tensors", 0)
        add(tar, "pickle", payload)
    return path


def _evil_file(tmp_path: Path, fmt: str, name: str) -> tuple[Path, Path]:
    marker = tmp_path / "MARKER"
    payload = {"conv.weight": torch.zeros(2), "x": RunsCode(marker)}
    path = tmp_path / name
    if fmt == "zip":
        torch.save(payload, path)
    elif fmt == "legacy":
        torch.save(payload, path, _use_new_zipfile_serialization=False)
    else:
        _tar_checkpoint(path, payload)
    return path, marker


@pytest.mark.parametrize("fmt", ["zip", "legacy", "tar"])
@pytest.mark.parametrize("name", ["evil.pth", "evil.ckpt", "evil.bin"])
def test_a_pickle_that_runs_code_never_runs(tmp_path, capsys, fmt, name):
    path, marker = _evil_file(tmp_path, fmt, name)
    for argv in (
        ["weights", "convert", path, "--arch", "resnet18", "-o", tmp_path / "x.safetensors"],
        ["weights", "info", path],
    ):
        code, err = run_cli(capsys, *argv)
        assert code == 2
        assert "--trust-pickle" in one_line(err) and "execute code" in err
        assert ("legacy tar format" if fmt == "tar" else "(posix.system)") in err
    assert not marker.exists()  # the payload never ran
    assert not (tmp_path / "x.safetensors").exists()


def test_a_torch_file_named_safetensors_is_named_for_what_it_is(tmp_path, capsys, photo):
    fake = tmp_path / "model.safetensors"
    torch.save({"conv1.weight": torch.zeros(2, 3, 1, 1)}, fake)
    for argv in (
        ["weights", "info", fake],
        [
            "probe",
            "--weights",
            fake,
            "--image",
            photo,
            "--layers",
            "relu1",
            "-o",
            tmp_path / "a.npz",
        ],
        ["visualize", "--weights", fake, "--objective", "relu1:0", "-o", tmp_path / "v.png"],
    ):
        code, err = run_cli(capsys, *argv)
        assert code == 2
        assert "is a PyTorch checkpoint, not a converted .safetensors file" in one_line(err)
        assert f"paramviz weights convert {fake}" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]


def test_a_converted_file_given_to_convert_says_so(tmp_path, capsys, weights_file):
    code, err = run_cli(
        capsys, "weights", "convert", weights_file, "-o", tmp_path / "again.safetensors"
    )
    assert code == 2 and "already a converted .safetensors file" in one_line(err)


# ------------------------------------------------------------------------------ pictures


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG that declares ``width`` x ``height`` 8-bit greyscale pixels (a decompression bomb:
    the file is tiny, decoding it would not be)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (width + 1))  # one row; a reader would fail long after
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
    return path


def test_a_decompression_bomb_is_one_line_with_the_size_and_the_flag(
    tmp_path, capsys, weights_file
):
    bomb = _png_header_only(tmp_path / "bomb.png", 30000, 30000)
    out = tmp_path / "out.png"
    code, err = run_cli(capsys, "texture", "--style", bomb, "--weights", weights_file, "-o", out)
    line = one_line(err)
    assert code == 2 and "30000x30000 pixels (900.0 megapixels)" in line
    assert "limit of 89.5 megapixels" in line and "--max-pixels 900000000" in line
    assert not out.exists()


def test_max_pixels_is_the_limit_for_reading_and_for_resizing(photo):
    assert read_image(photo, max_pixels=480).shape == (20, 24, 3)  # 24 x 20 = 480
    with pytest.raises(UserError, match="24x20 pixels .* --max-pixels 480"):
        read_image(photo, max_pixels=479)
    with pytest.raises(UserError, match="size 100000 would make image .* 100000x83333"):
        read_image(photo, size=100000)
    with pytest.raises(UserError, match="whole number of pixels >= 1"):
        read_image(photo, size=0)


def _png16(path: Path, array: np.ndarray) -> Path:
    """A 16-bit PNG of a (H, W) or (H, W, C) uint16 array (PIL cannot write most of these)."""
    data = np.asarray(array, dtype=">u2")
    data = data[..., None] if data.ndim == 2 else data
    height, width, channels = data.shape
    colour = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    raw = b"".join(b"\x00" + row.tobytes() for row in data)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 16, colour, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    return path


RAMP = np.linspace(0, 65535, 32 * 32).reshape(32, 32).astype(np.uint16)


@pytest.mark.parametrize(
    "channels",
    [
        [RAMP],
        [RAMP, np.full_like(RAMP, 65535)],
        [RAMP, RAMP // 2, 65535 - RAMP],
        [RAMP, RAMP // 2, 65535 - RAMP, np.full_like(RAMP, 65535)],
    ],
    ids=["grey", "grey+alpha", "rgb", "rgba"],
)
def test_16_bit_pngs_keep_their_range(tmp_path, channels):
    path = _png16(tmp_path / "deep.png", np.stack(channels, -1) if len(channels) > 1 else RAMP)
    image = read_image(path)
    expected = np.stack(channels[:3], -1) if len(channels) >= 3 else np.stack([RAMP] * 3, -1)
    np.testing.assert_allclose(image, expected / 65535.0, atol=1 / 255)  # not clipped to white
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert (image >= 0.999).mean() < 0.01


def test_16_bit_greyscale_resizes_in_full_precision(tmp_path):
    image = read_image(_png16(tmp_path / "deep.png", RAMP), size=16)
    assert image.shape == (16, 16, 3) and np.all(image[..., 0] == image[..., 2])
    assert len(np.unique(image[..., 0])) > 200  # more levels than 8 bits would keep
    assert image.max() <= 1.0 and image.mean() == pytest.approx(0.5, abs=0.02)


def test_other_modes_and_depths(tmp_path):
    ramp = (RAMP / 65535).astype(np.float32)
    Image.fromarray(ramp, mode="F").save(tmp_path / "float.tif")
    np.testing.assert_allclose(read_image(tmp_path / "float.tif")[..., 1], ramp, atol=1e-6)
    Image.fromarray(RAMP).save(tmp_path / "grey16.tif")
    np.testing.assert_allclose(read_image(tmp_path / "grey16.tif")[..., 0], RAMP / 65535, 1e-6)
    Image.fromarray(RAMP > 30000).save(tmp_path / "bits.png")  # 1-bit
    assert set(np.unique(read_image(tmp_path / "bits.png"))) == {0.0, 1.0}


# ------------------------------------------------------------------------------ weights files


def _save_with(tmp_path: Path, name: str, **changes) -> Path:
    from safetensors.numpy import load_file, save_file

    net = backbones.init("sequential", jax.random.PRNGKey(0), (16, 16), spec=SPEC)
    path = backbones.save(tmp_path / "good.safetensors", net)
    tensors = load_file(str(path))
    metadata = dict(backbones.read_metadata(path))
    for key, value in changes.items():
        if key in tensors:
            tensors[key] = value
        else:
            metadata[key] = value
    save_file(tensors, str(tmp_path / name), metadata=metadata)
    return tmp_path / name


def test_nan_weights_are_refused_on_load(tmp_path, capsys):
    nan = np.full((3, 3, 3, 4), np.nan, np.float32)
    path = _save_with(tmp_path, "nan.safetensors", **{"params/conv1/kernel": nan})
    with pytest.raises(UserError, match="NaN or Inf values in params/conv1/kernel"):
        backbones.load(path)
    out = tmp_path / "v.png"
    code, err = run_cli(capsys, "visualize", "--weights", path, "--objective", "relu1:0", "-o", out)
    assert code == 2 and "NaN or Inf" in one_line(err) and not out.exists()


def test_check_finite_names_every_bad_tensor():
    arrays = {f"t{i}": np.array([np.inf if i % 2 else 1.0]) for i in range(20)}
    with pytest.raises(UserError, match="t1, t3, .* and 2 more"):
        check_finite(arrays, "f.safetensors")


@pytest.mark.parametrize(
    ("convention", "message"),
    [
        ('{"mean": [0, 0, 0], "std": [0, 1, 1], "clamp": false}', "std=\\(0, 1, 1\\)"),
        ('{"mean": [0.5, 0.5], "std": [1, 1, 1], "clamp": false}', "mean of sequential should"),
        ('{"mean": [0, 0, 0], "std": [1, 1, NaN], "clamp": false}', "finite"),
        ('{"mean": [0, 0, 0], "std": [1, 1, 1], "clamp": "yes"}', "true or false"),
    ],
    ids=["std-0", "two-means", "nan-std", "clamp-text"],
)
def test_impossible_input_conventions_are_refused_on_load(tmp_path, convention, message):
    path = _save_with(tmp_path, "odd.safetensors", input_convention=convention)
    with pytest.raises(UserError, match=message):
        backbones.load(path)


# ------------------------------------------------------------------------------ output = input


@pytest.fixture
def inputs(tmp_path, weights_file, photo) -> dict[str, Path]:
    copies = {}
    for name, source in (("weights", weights_file), ("photo", photo), ("style", photo)):
        target = tmp_path / f"{name}{source.suffix}"
        target.write_bytes(source.read_bytes())
        copies[name] = target
    copies["link"] = tmp_path / "link.png"
    copies["link"].symlink_to(copies["photo"])
    copies["hard"] = tmp_path / "hard.png"
    os.link(copies["photo"], copies["hard"])
    torch.save(backbones_state(), tmp_path / "src.pth")
    copies["pth"] = tmp_path / "src.pth"
    return copies


def backbones_state() -> dict:
    return {"0.weight": torch.zeros(4, 3, 3, 3), "0.bias": torch.zeros(4)}


def _commands(files: dict[str, Path]) -> list[tuple[list, Path]]:
    """``(argv, the input its output names)`` for every command that writes a file."""
    w, photo, style = files["weights"], files["photo"], files["style"]
    common = ["--weights", w, "--steps", "1", "--size", "16", "--quiet"]
    probe = ["probe", "--weights", w, "--image", photo, "--layers", "relu1"]
    convert = ["weights", "convert", files["pth"], "--arch", "sequential", "--spec", "conv4k3"]
    return [
        (["style", "--content", photo, "--style", style, *common, "-o", photo], photo),
        (["style", "--content", photo, "--style", style, *common, "-o", style], style),
        (["style", "--content", files["link"], "--style", style, *common, "-o", photo], photo),
        (["style", "--content", files["hard"], "--style", style, *common, "-o", photo], photo),
        (["texture", "--style", style, *common, "-o", style], style),
        ([*probe, "-o", w], w),
        ([*probe, "-o", photo], photo),
        ([*convert, "-o", files["pth"]], files["pth"]),
    ]


def test_no_command_overwrites_one_of_its_inputs(inputs, capsys):
    before = {path: path.read_bytes() for path in inputs.values()}
    for argv, _ in _commands(inputs):
        code, err = run_cli(capsys, *argv)
        assert code == 2, argv
        line = one_line(err)
        assert "would destroy the input" in line or "must end in" in line, line
    assert {path: path.read_bytes() for path in inputs.values()} == before
    assert inputs["link"].is_symlink()


def test_a_snapshot_or_sidecar_that_is_an_input_is_refused(inputs, capsys):
    style = inputs["style"]
    snapshot = style.with_name("st_step00001.png")
    snapshot.write_bytes(style.read_bytes())
    common = ["--weights", inputs["weights"], "--steps", "3", "--size", "16", "--quiet"]
    argv = [
        "texture",
        "--style",
        snapshot,
        *common,
        "--save-every",
        "1",
        "-o",
        style.with_stem("st"),
    ]
    code, err = run_cli(capsys, *argv)
    assert code == 2 and f"the output {snapshot} is the input {snapshot}" in one_line(err)
    sidecar = style.with_name("pic.json")
    sidecar.write_text("{}")
    argv = ["texture", "--style", sidecar, *common, "-o", style.with_name("pic.png")]
    code, err = run_cli(capsys, *argv)
    assert code == 2 and "is the input" in one_line(err) and sidecar.read_text() == "{}"


@pytest.mark.parametrize(
    ("argv", "suffix"),
    [
        (
            ["probe", "--image", "{photo}", "--layers", "relu1", "-o", "{dir}/acts.safetensors"],
            ".npz",
        ),
        (["texture", "--style", "{photo}", "-o", "{dir}/t.bmp"], ".png, .jpg, .jpeg or .webp"),
        (
            ["weights", "convert", "{pth}", "--arch", "sequential", "-o", "{dir}/x.pth"],
            ".safetensors",
        ),
    ],
    ids=["probe", "texture", "convert"],
)
def test_output_suffixes_match_what_is_written(inputs, capsys, tmp_path, argv, suffix):
    fill = {"photo": inputs["photo"], "pth": inputs["pth"], "dir": tmp_path / "out"}
    argv = [a.format(**fill) for a in argv]
    if argv[0] != "weights":
        argv += ["--weights", str(inputs["weights"])]
    code, err = run_cli(capsys, *argv)
    assert code == 2 and f"--output must end in {suffix}" in one_line(err)
    assert not (tmp_path / "out").exists()
