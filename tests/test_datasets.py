"""Offline datasets: hand-written .pat and idx parsers, texture crops, Fashion-MNIST, batches."""

from __future__ import annotations

import gzip
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from paramviz.errors import UserError
from paramviz.experiments import datasets
from paramviz.experiments.data.formats import parse_idx, parse_pat, read_idx, read_pat

GIMP_PACKAGES = ("gimp-data", "gimp-data-extras")


def pat_bytes(
    pixels: np.ndarray, name: str = "test", *, magic: bytes = b"GPAT", version: int = 1
) -> bytes:
    """A GIMP pattern file as GIMP writes it, from ``(H, W, C)`` uint8 pixels."""
    encoded_name = name.encode() + b"\0"
    height, width, bpp = pixels.shape
    header = struct.pack(">5I4s", 24 + len(encoded_name), version, width, height, bpp, magic)
    return header + encoded_name + pixels.astype(np.uint8).tobytes()


def idx_bytes(array: np.ndarray, type_code: int) -> bytes:
    """An idx file holding ``array`` (already in the big-endian dtype matching ``type_code``)."""
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def user_error_message(call, *args) -> str:
    with pytest.raises(UserError) as caught:
        call(*args)
    return str(caught.value)


# --- GIMP .pat ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bpp", [1, 2, 3, 4])
def test_parse_pat_every_depth(bpp: int) -> None:
    pixels = np.arange(5 * 3 * bpp, dtype=np.uint8).reshape(5, 3, bpp)
    pattern = parse_pat(pat_bytes(pixels, "Brique é"))
    assert pattern.name == "Brique é"
    assert pattern.image.dtype == np.uint8
    np.testing.assert_array_equal(pattern.image, pixels)


def test_parse_pat_name_padded_with_nuls_and_trailing_bytes() -> None:
    pixels = np.full((2, 2, 3), 7, np.uint8)
    header = struct.pack(">5I4s", 24 + 8, 1, 2, 2, 3, b"GPAT") + b"Oily\0\0\0\0"
    pattern = parse_pat(header + pixels.tobytes() + b"extra")
    assert pattern.name == "Oily"
    np.testing.assert_array_equal(pattern.image, pixels)


GOOD = pat_bytes(np.zeros((4, 2, 3), np.uint8), "ok")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (GOOD[:10], "x.pat: not a GIMP pattern: 10 bytes is shorter than the 24-byte header"),
        (
            pat_bytes(np.zeros((4, 2, 3)), magic=b"GIMP"),
            "x.pat: not a GIMP pattern: magic b'GIMP', expected b'GPAT'",
        ),
        (
            pat_bytes(np.zeros((4, 2, 3)), version=2),
            "x.pat: unsupported GIMP pattern version 2 (only 1 exists)",
        ),
        (
            GOOD[:-1],
            "x.pat: truncated GIMP pattern: 2x4 RGB needs 24 bytes of pixels, the file has 23",
        ),
        (
            struct.pack(">5I4s", 24, 1, 2, 4, 3, b"GPAT") + bytes(24),
            "x.pat: bad GIMP pattern header: header size 24 must exceed 24 (room for the "
            "NUL-terminated name) and fit in the 48-byte file",
        ),
        (
            struct.pack(">5I4s", 25, 1, 0, 4, 3, b"GPAT") + bytes(1),
            "x.pat: bad GIMP pattern header: 0x4 pixels (each side must be 1..524288)",
        ),
        (
            struct.pack(">5I4s", 25, 1, 2, 4, 5, b"GPAT") + bytes(41),
            "x.pat: bad GIMP pattern header: 5 bytes per pixel "
            "(expected 1 grey, 2 grey+alpha, 3 RGB or 4 RGBA)",
        ),
    ],
    ids=["short", "magic", "version", "truncated", "header-size", "zero-width", "depth"],
)
def test_parse_pat_rejects_corrupt_files(data: bytes, message: str) -> None:
    assert user_error_message(parse_pat, data, "x.pat") == message


def test_read_pat_file_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "one.pat"
    path.write_bytes(GOOD)
    assert read_pat(path).image.shape == (4, 2, 3)
    message = user_error_message(read_pat, tmp_path / "absent.pat")
    assert message.startswith(f"cannot read GIMP pattern {tmp_path / 'absent.pat'}")


def installed_patterns(package: str) -> list[Path]:
    """The .pat files a Debian package installed; skips when dpkg or the package is absent."""
    if shutil.which("dpkg") is None:
        pytest.skip("dpkg not available: not a Debian system")
    listing = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True)
    if listing.returncode != 0:
        pytest.skip(f"Debian package {package} not installed (apt-get install {package})")
    return [Path(line) for line in listing.stdout.splitlines() if line.endswith(".pat")]


@pytest.mark.parametrize("package", GIMP_PACKAGES)
def test_every_installed_gimp_pattern_parses(package: str) -> None:
    paths = installed_patterns(package)
    assert paths, f"{package} lists no .pat files"
    for path in paths:
        pattern = read_pat(path)
        assert pattern.name, path
        assert pattern.image.ndim == 3 and pattern.image.shape[2] in (1, 2, 3, 4), path


# --- idx ---------------------------------------------------------------------------------------


def test_parse_idx_bytes_and_ints() -> None:
    images = np.arange(2 * 3 * 4, dtype=">u1").reshape(2, 3, 4)
    np.testing.assert_array_equal(parse_idx(idx_bytes(images, 0x08)), images)
    ints = np.array([-1, 70000], dtype=">i4")
    parsed = parse_idx(idx_bytes(ints, 0x0C))
    assert parsed.dtype == np.int32 and parsed.tolist() == [-1, 70000]


def test_parse_idx_rejects_corrupt_files() -> None:
    data = idx_bytes(np.zeros((2, 3), ">u1"), 0x08)
    assert user_error_message(parse_idx, b"\x1f\x8b\x08\x00" + data, "f").startswith(
        "f: not an idx file: magic b'\\x1f\\x8b\\x08\\x00'"
    )
    assert user_error_message(parse_idx, data[:-1], "f") == (
        "f: truncated idx file: shape (2, 3) of uint8 needs 6 bytes, the file has 5"
    )
    assert user_error_message(parse_idx, data[:7], "f") == (
        "f: truncated idx file: header of 2 dimensions is cut off"
    )


def test_read_idx_gunzips(tmp_path: Path) -> None:
    labels = np.array([3, 1, 4], ">u1")
    (tmp_path / "l.gz").write_bytes(gzip.compress(idx_bytes(labels, 0x08)))
    np.testing.assert_array_equal(read_idx(tmp_path / "l.gz"), labels)
    (tmp_path / "bad.gz").write_bytes(b"not gzip")
    assert "corrupt gzip data" in user_error_message(read_idx, tmp_path / "bad.gz")


# --- textures ----------------------------------------------------------------------------------


@pytest.fixture
def gimp_available() -> None:
    try:
        datasets.texture_sources(("gimp",))
    except UserError as err:
        pytest.skip(str(err))


def test_skimage_textures_shapes_ranges_balance() -> None:
    data = datasets.skimage_texture_dataset(size=24, n_per_class=5, split="test")
    assert data.class_names == tuple(f"skimage/{name}" for name in datasets.SKIMAGE_TEXTURES)
    assert data.images.shape == (5 * len(data.class_names), 24, 24, 3)
    assert data.images.dtype == np.float32 and data.labels.dtype == np.int32
    assert 0.0 <= data.images.min() and data.images.max() <= 1.0
    assert np.bincount(data.labels).tolist() == [5] * data.num_classes


def test_texture_dataset_is_deterministic_and_splits_differ() -> None:
    def crops(**options) -> np.ndarray:
        return datasets.skimage_texture_dataset(size=16, n_per_class=4, **options).images

    np.testing.assert_array_equal(crops(seed=3), crops(seed=3))
    assert not np.allclose(crops(seed=3), crops(seed=4))
    assert not np.allclose(crops(split="train"), crops(split="test"))


def test_a_class_samples_do_not_depend_on_the_other_classes() -> None:
    alone = datasets.skimage_texture_dataset(n_per_class=3, classes=["skimage/grass"])
    everything = datasets.skimage_texture_dataset(n_per_class=3)
    grass = everything.class_names.index("skimage/grass")
    np.testing.assert_array_equal(alone.images, everything.images[everything.labels == grass])


def is_substring(sequence: np.ndarray, pattern: np.ndarray) -> bool:
    tiled = np.tile(pattern, len(sequence) // len(pattern) + 2)
    return any(np.array_equal(tiled[i : i + len(sequence)], sequence) for i in range(len(pattern)))


@pytest.mark.parametrize("periodic", [True, False])
def test_crops_are_flipped_rotated_windows_of_the_tiled_source(periodic: bool) -> None:
    """Crops larger than the source: periodic tiling, or mirroring for non-periodic sources."""
    height, width = 5, 7
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    image = np.stack([rows, cols, np.zeros_like(rows)], -1).astype(np.float32) / 100
    source = datasets.TextureSource("ids", image, periodic)
    crops = datasets.sample_crops(np.random.default_rng(0), source, 16, 12, brightness=0.0)
    tile_rows = np.arange(height) if periodic else np.r_[np.arange(height), np.arange(height)[::-1]]
    tile_cols = np.arange(width) if periodic else np.r_[np.arange(width), np.arange(width)[::-1]]
    orientations = set()
    for crop in np.rint(crops * 100).astype(int):
        for k, flip in np.ndindex(4, 2):
            oriented = np.rot90(crop[:, ::-1] if flip else crop, k)
            r, c = oriented[..., 0], oriented[..., 1]
            if (
                (r == r[:, :1]).all()
                and (c == c[:1]).all()
                and is_substring(r[:, 0], tile_rows)
                and is_substring(c[0], tile_cols)
            ):
                orientations.add((k, flip))
                break
        else:
            pytest.fail(f"crop is not a window of the tiled source:\n{crop[..., :2]}")
    assert len(orientations) > 1, "augmentation never changes the orientation"


@pytest.mark.parametrize("sources", [("skimage",), ("gimp", "skimage")])
def test_crop_colours_match_their_own_texture(sources: tuple[str, ...], request) -> None:
    if "gimp" in sources:
        request.getfixturevalue("gimp_available")
    data = datasets.texture_dataset(size=32, n_per_class=16, sources=sources, split="test")
    source_means = np.stack([s.image.mean((0, 1)) for s in datasets.texture_sources(sources)])
    distances = np.linalg.norm(data.images.mean((1, 2))[:, None] - source_means, axis=-1)
    own = distances[np.arange(len(data.labels)), data.labels]
    closer_classes = (distances < own[:, None]).sum(1)
    assert (closer_classes < data.num_classes / 2).mean() >= 0.75
    assert (closer_classes == 0).mean() >= 2 / data.num_classes


def test_default_selection_rule() -> None:
    assert datasets.is_usable_texture(np.random.default_rng(0).random((16, 40, 3)))
    assert not datasets.is_usable_texture(np.random.default_rng(0).random((15, 40, 3)))
    assert not datasets.is_usable_texture(np.full((64, 64, 3), 0.3) + 0.001 * np.eye(64)[..., None])


def test_gimp_classes(gimp_available) -> None:
    sources = datasets.texture_sources(("gimp",))
    names = [source.name for source in sources]
    assert len(sources) >= 50 and len(set(names)) == len(names)
    assert all(s.periodic and s.image.shape[2] == 3 for s in sources)
    assert "gimp/Legacy/Stripes1px" in names  # RGBA: only the alpha varies, kept after compositing


def test_texture_conversions() -> None:
    grey_alpha = np.array([[[255, 0], [0, 255]]], np.uint8)
    np.testing.assert_allclose(datasets.to_rgb(grey_alpha), [[[0.5] * 3, [0.0] * 3]])
    big = np.arange(600 * 300, dtype=np.float32).reshape(600, 300, 1)
    assert datasets.shrink_to_fit(big).shape == (200, 100, 1)


def test_missing_gimp_patterns_name_the_packages(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(datasets.GIMP_PATTERNS_ENV, str(tmp_path))
    message = user_error_message(datasets.texture_dataset)
    assert "apt-get install gimp-data gimp-data-extras" in message
    assert str(tmp_path) in message and 'sources=("skimage",)' in message


def test_pattern_folder_override(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    noise = np.random.default_rng(0).integers(0, 256, (20, 30, 1), dtype=np.uint8)
    (tmp_path / "sub" / "noise.pat").write_bytes(pat_bytes(noise))
    (tmp_path / "tiny.pat").write_bytes(pat_bytes(noise[:8, :8]))
    data = datasets.texture_dataset(
        size=8, n_per_class=2, sources=("gimp",), pattern_dirs=[tmp_path]
    )
    assert data.class_names == ("gimp/sub/noise",)


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"split": "val"}, "unknown split 'val'"),
        ({"sources": ("imagenet",)}, "unknown texture sources ['imagenet']"),
        ({"sources": ("skimage",), "classes": ["skimage/moon"]}, "unknown texture classes"),
        ({"sources": ("skimage",), "size": 0}, "must be positive"),
    ],
)
def test_texture_dataset_rejects_bad_options(options: dict, fragment: str) -> None:
    assert fragment in user_error_message(lambda: datasets.texture_dataset(**options))


# --- Fashion-MNIST -----------------------------------------------------------------------------


def test_fashion_mnist_test_split() -> None:
    if not (datasets.fashion_mnist_dir() / "t10k-labels-idx1-ubyte.gz").is_file():
        pytest.skip("Debian package dataset-fashion-mnist not installed")
    data = datasets.fashion_mnist("test")
    assert data.images.shape == (10000, 28, 28, 1) and data.images.dtype == np.float32
    assert 0.0 == data.images.min() and data.images.max() == 1.0
    assert data.labels.dtype == np.int32 and np.bincount(data.labels).tolist() == [1000] * 10
    assert data.class_names[9] == "Ankle boot"


def test_fashion_mnist_from_an_overridden_folder(tmp_path: Path, monkeypatch) -> None:
    images = np.arange(3 * 28 * 28, dtype=">u1").reshape(3, 28, 28)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx_bytes(images, 0x08))
    labels = gzip.compress(idx_bytes(np.array([0, 9, 2], ">u1"), 0x08))
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(labels)
    monkeypatch.setenv(datasets.FASHION_MNIST_ENV, str(tmp_path))
    data = datasets.fashion_mnist("train")
    assert data.images.shape == (3, 28, 28, 1) and data.labels.tolist() == [0, 9, 2]
    np.testing.assert_allclose(data.images[..., 0] * 255, images, atol=1e-4)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images, 8)))
    assert "expected 3 labels in 0..9" in user_error_message(datasets.fashion_mnist)


def test_missing_fashion_mnist_names_the_package(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(datasets.FASHION_MNIST_ENV, str(tmp_path))
    message = user_error_message(datasets.fashion_mnist, "test")
    assert (
        "install Debian package dataset-fashion-mnist (apt-get install dataset-fashion-mnist)"
        in (message)
    )
    assert str(tmp_path) in message


# --- batching ----------------------------------------------------------------------------------


def test_make_batches_covers_each_epoch_in_a_new_order() -> None:
    images, labels = np.arange(10)[:, None] * np.ones((1, 2)), np.arange(10)
    batches = list(datasets.make_batches(images, labels, 3, seed=1, epochs=2))
    assert len(batches) == 6 and all(len(b[1]) == 3 for b in batches)
    first, second = (np.concatenate([b[1] for b in batches[i : i + 3]]) for i in (0, 3))
    assert len(set(first)) == 9 and len(set(second)) == 9 and not np.array_equal(first, second)
    assert all(np.array_equal(x[:, 0], y) for x, y in batches)
    repeat = list(datasets.make_batches(images, labels, 3, seed=1, epochs=2))
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(batches, repeat, strict=True))
    message = user_error_message(datasets.make_batches, images, labels, 11)
    assert message == "batch size 11 must be between 1 and the 10 examples"
