"""Offline datasets for training small matched standard / adversarially robust backbones.

Every dataset is a :class:`Dataset`: NHWC float32 images in [0, 1] (numpy, on the host) and int32
labels indexing ``class_names``. Nothing is downloaded; the data comes from packages:

* :func:`texture_dataset` — one class per source texture: GIMP patterns (Debian ``gimp-data`` and
  ``gimp-data-extras``) and texture-like samples bundled in scikit-image's wheel (PyPI
  ``scikit-image``). :func:`skimage_texture_dataset` needs no apt package at all.
* :func:`fashion_mnist` — Debian ``dataset-fashion-mnist``.

Missing data raises :class:`~paramviz.errors.UserError` naming the package to install. Data
locations can be overridden by argument or environment variable (``$PARAMVIZ_GIMP_PATTERNS``, a
``os.pathsep``-separated list of folders, and ``$PARAMVIZ_FASHION_MNIST_DIR``).

**Train/test split of the textures: disjoint seeds, not disjoint regions.** Each class is a single
source image, and the GIMP patterns are small periodic tiles (median side 100 px, many 50–64 px):
a 32 px crop already sees a large part of the period, so a held-out region would be a strip too
small to crop from without tiling a non-seamless piece, i.e. test crops would show seams the
training crops never do. Instead train and test draw crop offsets, orientations and brightness from
independent random streams (``SeedSequence([seed, split, crc32(class name)])``). The test set
therefore measures recognition of new crops of known textures, which is what these backbones are
for; it does not measure generalisation to unseen texture instances. Keying the stream on the class
name keeps every class's samples unchanged when other classes are added or removed.
"""

from __future__ import annotations

import functools
import os
import re
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from paramviz.errors import UserError
from paramviz.experiments.data.formats import Pattern, read_idx, read_pat

__all__ = [
    "Dataset",
    "Pattern",
    "TextureSource",
    "fashion_mnist",
    "make_batches",
    "read_pat",
    "skimage_texture_dataset",
    "texture_dataset",
    "texture_sources",
]

SPLITS = ("train", "test")

GIMP_PATTERNS_ENV = "PARAMVIZ_GIMP_PATTERNS"
GIMP_PATTERN_DIRS = (Path("/usr/share/gimp/2.0/patterns"), Path("/usr/share/gimp/3.0/patterns"))
GIMP_PACKAGES = "gimp-data gimp-data-extras"

# Texture-like samples that ship inside scikit-image's wheel (no download). Left out: moon (mostly
# flat grey), cell, microaneurysms, coins, text, page (objects or text on a plain background).
SKIMAGE_TEXTURES = (
    "brick",
    "grass",
    "gravel",
    "checkerboard",
    "hubble_deep_field",
    "immunohistochemistry",
)

# Default class selection. A pattern is left out when its shorter side is under MIN_TEXTURE_SIDE
# pixels (too few distinct crops: tiling repeats it several times inside one crop) or when, after
# conversion to RGB on mid-grey, the standard deviation of all its values is under
# MIN_TEXTURE_STD (about 2.5 grey levels: a flat colour, not a texture).
MIN_TEXTURE_SIDE = 16
MIN_TEXTURE_STD = 0.01
# Larger sources are shrunk by an integer factor (block mean) so that a crop sees several texture
# elements at a scale comparable to the GIMP patterns, instead of one brick or a black sky.
MAX_SOURCE_SIDE = 256
ALPHA_BACKGROUND = 0.5

# Pictures with objects and scenes for the test bed (``sources=("photos", ...)``): every raster
# wallpaper of these Debian packages, and scikit-image's colour photographs.
WALLPAPER_DIRS = (Path("/usr/share/backgrounds"), Path("/usr/share/wallpapers"))
WALLPAPER_PACKAGES = "mate-backgrounds gnome-backgrounds plasma-workspace-wallpapers"
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
SKIMAGE_PHOTOS = ("rocket", "retina")  # the others are the experiments' content pictures
PHOTO_SIDE = 128
HELD_OUT = ("skimage/gravel", "skimage/hubble_deep_field", "skimage/immunohistochemistry")
"""Style pictures of the experiments: a network trained on them would have seen its test."""

FASHION_MNIST_ENV = "PARAMVIZ_FASHION_MNIST_DIR"
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


@dataclass(frozen=True)
class Dataset:
    """Images ``(N, H, W, C)`` float32 in [0, 1], labels ``(N,)`` int32, and the class names."""

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclass(frozen=True)
class TextureSource:
    """One texture class: its image ``(H, W, 3)`` float32 in [0, 1] and how to extend it.

    ``periodic`` sources (GIMP patterns, made to tile seamlessly) are cropped at any offset and
    wrapped around; the others are cropped inside the image and mirrored only when a crop is
    larger than the image, which avoids a hard seam.
    """

    name: str
    image: np.ndarray
    periodic: bool


def check_split(split: str) -> int:
    """The split's index (its random stream), or a UserError for an unknown name."""
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}: expected one of {', '.join(SPLITS)}")
    return SPLITS.index(split)


def to_rgb(pixels: np.ndarray) -> np.ndarray:
    """uint8 ``(H, W, C)`` grey / grey+alpha / RGB / RGBA -> float32 RGB, alpha over mid-grey."""
    image = pixels.astype(np.float32) / 255.0
    if image.shape[-1] in (2, 4):
        alpha = image[..., -1:]
        image = image[..., :-1] * alpha + ALPHA_BACKGROUND * (1.0 - alpha)
    return np.broadcast_to(image, (*image.shape[:2], 3)).astype(np.float32)


def shrink_to_fit(image: np.ndarray, max_side: int = MAX_SOURCE_SIDE) -> np.ndarray:
    """Block-mean downscale by the smallest integer factor that brings both sides to max_side."""
    factor = -(-max(image.shape[:2]) // max_side)
    if factor == 1:
        return image
    height, width = (side // factor for side in image.shape[:2])
    blocks = image[: height * factor, : width * factor]
    return blocks.reshape(height, factor, width, factor, -1).mean(axis=(1, 3), dtype=np.float32)


def is_usable_texture(image: np.ndarray) -> bool:
    """The default selection rule (see MIN_TEXTURE_SIDE and MIN_TEXTURE_STD)."""
    return min(image.shape[:2]) >= MIN_TEXTURE_SIDE and float(image.std()) >= MIN_TEXTURE_STD


def make_source(name: str, pixels: np.ndarray, periodic: bool) -> TextureSource:
    """A read-only texture source from raw uint8 pixels (so cached sources cannot be altered)."""
    image = shrink_to_fit(to_rgb(pixels))
    image.setflags(write=False)
    return TextureSource(name, image, periodic)


def gimp_pattern_dirs(pattern_dirs: Sequence[str | Path] | None = None) -> tuple[Path, ...]:
    """Folders of ``.pat`` files: the argument, else ``$PARAMVIZ_GIMP_PATTERNS``, else GIMP's."""
    if pattern_dirs is None and (env := os.environ.get(GIMP_PATTERNS_ENV)):
        pattern_dirs = [part for part in env.split(os.pathsep) if part]
    return tuple(Path(d) for d in pattern_dirs) if pattern_dirs is not None else GIMP_PATTERN_DIRS


@functools.lru_cache(maxsize=4)
def load_gimp_sources(dirs: tuple[Path, ...]) -> tuple[TextureSource, ...]:
    """Every pattern under ``dirs`` (recursively), named ``gimp/<relative path>``, sorted.

    A name found in several folders is taken from the first. Cached per folder list for the
    life of the process (the arrays are read-only).
    """
    by_name: dict[str, Path] = {}
    for directory in dirs:
        for path in sorted(directory.rglob("*.pat")):
            by_name.setdefault(
                f"gimp/{path.relative_to(directory).with_suffix('').as_posix()}", path
            )
    if not by_name:
        raise UserError(
            f"no GIMP patterns (*.pat) in {', '.join(map(str, dirs))}: install Debian packages "
            f"{GIMP_PACKAGES} (apt-get install {GIMP_PACKAGES}), point ${GIMP_PATTERNS_ENV} at a "
            'folder of .pat files, or use sources=("skimage",), which needs no apt package'
        )
    return tuple(
        make_source(name, read_pat(path).image, periodic=True)
        for name, path in sorted(by_name.items())
    )


@functools.lru_cache(maxsize=1)
def load_skimage_sources() -> tuple[TextureSource, ...]:
    """The SKIMAGE_TEXTURES samples, named ``skimage/<name>``."""
    try:
        import skimage.data

        images = [getattr(skimage.data, name)() for name in SKIMAGE_TEXTURES]
    except (ImportError, OSError, ValueError) as err:
        raise UserError(
            f"scikit-image's sample textures are unavailable ({err}): "
            "install the PyPI package scikit-image>=0.24 (pip install 'scikit-image>=0.24')"
        ) from err
    return tuple(
        make_source(f"skimage/{name}", image if image.ndim == 3 else image[..., None], False)
        for name, image in zip(SKIMAGE_TEXTURES, images, strict=True)
    )


def wallpaper_files(roots: Sequence[Path] = WALLPAPER_DIRS) -> list[Path]:
    """One raster file per wallpaper under ``roots``: the light variant, the largest size.

    KDE keeps each wallpaper in ``NAME/contents/images/WxH.ext`` (several sizes, a dark variant
    beside), GNOME names variants ``NAME-l``/``NAME-d``, MATE repeats a picture as
    ``NAME_WxH``; each of these counts once.
    """
    chosen: dict[str, Path] = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.suffix.lower() not in PHOTO_SUFFIXES or path.stem == "screenshot":
                continue
            if "images_dark" in path.parts or path.stem.endswith("-d"):
                continue
            key = wallpaper_name(path)
            if key not in chosen or path.stat().st_size > chosen[key].stat().st_size:
                chosen[key] = path
    return [chosen[key] for key in sorted(chosen)]


def wallpaper_name(path: Path) -> str:
    """The wallpaper a file shows: KDE's folder name, else the stem without a variant suffix."""
    if "contents" in path.parts:
        return path.parts[path.parts.index("contents") - 1]
    return re.sub(r"(_\d+x\d+|-l)$", "", path.stem)


def at_short_side(pixels: np.ndarray, side: int) -> np.ndarray:
    """uint8 RGB resized (Lanczos) so that its shorter side is ``side`` pixels."""
    from PIL import Image

    image = Image.fromarray(np.asarray(pixels, np.uint8)).convert("RGB")
    scale = side / min(image.size)
    size = (max(side, round(image.width * scale)), max(side, round(image.height * scale)))
    return np.asarray(image.resize(size, Image.Resampling.LANCZOS))


@functools.lru_cache(maxsize=1)
def load_photo_sources(side: int = PHOTO_SIDE) -> tuple[TextureSource, ...]:
    """Photographs and pictures with objects: Debian's wallpapers and scikit-image's photos.

    Each is one class, resized so its shorter side is ``side`` px (the test bed's rendering
    size), so a network trained on crops of them sees objects at the scale it will render them.
    """
    import skimage.data
    from PIL import Image

    files = wallpaper_files(WALLPAPER_DIRS)
    if not files:
        raise UserError(
            f"no wallpapers under {', '.join(map(str, WALLPAPER_DIRS))}: install the Debian "
            f"packages {WALLPAPER_PACKAGES} (apt-get install {WALLPAPER_PACKAGES})"
        )
    pictures = [
        (f"photo/{wallpaper_name(path)}", np.asarray(Image.open(path).convert("RGB")))
        for path in files
    ]
    pictures += [(f"skimage/{name}", getattr(skimage.data, name)()) for name in SKIMAGE_PHOTOS]
    return tuple(
        TextureSource(name, _read_only(to_rgb(at_short_side(pixels, side))), False)
        for name, pixels in pictures
    )


def _read_only(image: np.ndarray) -> np.ndarray:
    image.setflags(write=False)
    return image


def texture_sources(
    sources: Sequence[str] = ("gimp", "skimage"),
    pattern_dirs: Sequence[str | Path] | None = None,
) -> tuple[TextureSource, ...]:
    """The default class selection: every usable texture of the requested sources, in order."""
    loaders = {
        "gimp": lambda: load_gimp_sources(gimp_pattern_dirs(pattern_dirs)),
        "skimage": load_skimage_sources,
        "photos": load_photo_sources,
    }
    if unknown := sorted(set(sources) - set(loaders)):
        raise UserError(f"unknown texture sources {unknown}: expected some of {sorted(loaders)}")
    return tuple(
        source
        for kind in dict.fromkeys(sources)
        for source in loaders[kind]()
        if is_usable_texture(source.image)
    )


def select_classes(
    available: Sequence[TextureSource], classes: Sequence[str] | None
) -> tuple[TextureSource, ...]:
    """The sources named in ``classes`` (in that order), or all of them when it is None."""
    if classes is None:
        return tuple(available)
    by_name = {source.name: source for source in available}
    if missing := [name for name in classes if name not in by_name]:
        raise UserError(f"unknown texture classes {missing}; available: {sorted(by_name)}")
    return tuple(by_name[name] for name in classes)


def window_indices(
    rng: np.random.Generator, count: int, size: int, period: int, periodic: bool
) -> np.ndarray:
    """``(count, size)`` source indices along one axis for random windows of ``size`` pixels."""
    high = period if periodic else max(period - size, 0) + 1
    indices = rng.integers(0, high, size=(count, 1)) + np.arange(size)
    if periodic:
        return indices % period
    folded = indices % (2 * period)  # mirror: 0 1 .. p-1 p-1 .. 1 0 0 1 ..
    return np.minimum(folded, 2 * period - 1 - folded)


def random_dihedral_grids(
    rng: np.random.Generator, rows: np.ndarray, cols: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(count, size, size)`` gather grids for square windows under a uniformly random flip /
    90-degree rotation (all 8 orientations): done on indices, so the pixels are gathered once.
    """
    flip_rows, flip_cols, transpose = rng.random((3, len(rows), 1)) < 0.5
    rows = np.where(flip_rows, rows[:, ::-1], rows)
    cols = np.where(flip_cols, cols[:, ::-1], cols)
    transpose = transpose[..., None]
    row_grid = np.where(transpose, rows[:, None, :], rows[:, :, None])
    col_grid = np.where(transpose, cols[:, :, None], cols[:, None, :])
    return row_grid, col_grid


def random_brightness(rng: np.random.Generator, crops: np.ndarray, amount: float) -> np.ndarray:
    """Add one uniform offset in [-amount, amount] per crop, clipped back to [0, 1]."""
    offsets = rng.uniform(-amount, amount, size=(len(crops), 1, 1, 1)).astype(np.float32)
    return np.clip(crops + offsets, 0.0, 1.0)


def sample_crops(
    rng: np.random.Generator, source: TextureSource, count: int, size: int, brightness: float
) -> np.ndarray:
    """``count`` augmented ``size`` x ``size`` crops of one source, float32 in [0, 1]."""
    height, width = source.image.shape[:2]
    rows = window_indices(rng, count, size, height, source.periodic)
    cols = window_indices(rng, count, size, width, source.periodic)
    crops = source.image[random_dihedral_grids(rng, rows, cols)]
    return random_brightness(rng, crops, brightness)


def class_rng(seed: int, split: str, class_name: str) -> np.random.Generator:
    """The random stream for one class of one split (see the module docstring)."""
    return np.random.default_rng([seed, check_split(split), zlib.crc32(class_name.encode())])


def texture_dataset(
    size: int = 32,
    n_per_class: int = 64,
    seed: int = 0,
    sources: Sequence[str] = ("gimp", "skimage"),
    split: str = "train",
    *,
    classes: Sequence[str] | None = None,
    brightness: float = 0.05,
    pattern_dirs: Sequence[str | Path] | None = None,
) -> Dataset:
    """Random augmented crops, ``n_per_class`` per texture class, ordered by class.

    ``classes`` picks a subset of :func:`texture_sources` names (e.g. ``"gimp/Stone/granite1"``);
    the default is every usable texture. ``brightness`` is the half-width of the per-crop additive
    brightness jitter. Same arguments, same arrays.
    """
    check_split(split)
    if size < 1 or n_per_class < 1:
        raise UserError(f"size ({size}) and n_per_class ({n_per_class}) must be positive")
    selected = select_classes(texture_sources(sources, pattern_dirs), classes)
    images = [
        sample_crops(class_rng(seed, split, src.name), src, n_per_class, size, brightness)
        for src in selected
    ]
    labels = np.repeat(np.arange(len(selected), dtype=np.int32), n_per_class)
    return Dataset(np.concatenate(images), labels, tuple(src.name for src in selected))


def scene_dataset(**options: Any) -> Dataset:
    """:func:`texture_dataset` on textures and photographs (the test bed's data), leaving out
    the style experiments' own pictures (:data:`HELD_OUT`)."""
    sources = ("gimp", "skimage", "photos")
    kept = [src.name for src in texture_sources(sources) if src.name not in HELD_OUT]
    return texture_dataset(sources=sources, classes=kept, **options)


def skimage_texture_dataset(**options: Any) -> Dataset:
    """:func:`texture_dataset` on scikit-image's textures only: works on a fresh machine."""
    return texture_dataset(sources=("skimage",), **options)


def fashion_mnist_dir(data_dir: str | Path | None = None) -> Path:
    """The argument, else ``$PARAMVIZ_FASHION_MNIST_DIR``, else where Debian installs it."""
    return Path(data_dir or os.environ.get(FASHION_MNIST_ENV) or FASHION_MNIST_DIR)


def find_idx_file(directory: Path, stem: str) -> Path:
    """``stem.gz`` or ``stem`` in ``directory``, or a UserError naming the package to install."""
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.is_file():
            return candidate
    raise UserError(
        f"Fashion-MNIST file {stem}.gz not found in {directory}: install Debian package "
        "dataset-fashion-mnist (apt-get install dataset-fashion-mnist), or point "
        f"${FASHION_MNIST_ENV} at a folder holding the idx files"
    )


def fashion_mnist(split: str = "train", data_dir: str | Path | None = None) -> Dataset:
    """Fashion-MNIST: images ``(N, 28, 28, 1)`` (60000 train, 10000 test) and labels 0..9."""
    check_split(split)
    directory = fashion_mnist_dir(data_dir)
    image_path, label_path = (find_idx_file(directory, s) for s in FASHION_MNIST_FILES[split])
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.dtype != np.uint8 or images.shape[1:] != (28, 28):
        raise UserError(
            f"{image_path}: expected uint8 images of 28x28, got {images.dtype} {images.shape}"
        )
    labels_fit = labels.shape == images.shape[:1] and np.all(labels < len(FASHION_MNIST_CLASSES))
    if labels.dtype != np.uint8 or not labels_fit:
        raise UserError(
            f"{label_path}: expected {len(images)} labels in 0..9 to match {image_path.name}, "
            f"got shape {labels.shape}"
        )
    return Dataset(
        (images[..., None] / np.float32(255)).astype(np.float32),
        labels.astype(np.int32),
        FASHION_MNIST_CLASSES,
    )


def make_batches(
    images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int = 0, epochs: int = 1
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Shuffled ``(images, labels)`` batches, reshuffled every epoch (arguments checked at once).

    The last incomplete batch of an epoch is dropped so every batch has the same shape (one jit
    compilation).
    """
    if len(images) != len(labels):
        raise UserError(f"{len(images)} images but {len(labels)} labels")
    if not 1 <= batch_size <= len(images):
        raise UserError(f"batch size {batch_size} must be between 1 and the {len(images)} examples")
    return shuffled_batches(images, labels, batch_size, np.random.default_rng(seed), epochs)


def shuffled_batches(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    rng: np.random.Generator,
    epochs: int,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The generator behind :func:`make_batches`."""
    for _ in range(epochs):
        order = rng.permutation(len(images))
        for start in range(0, len(order) - batch_size + 1, batch_size):
            batch = order[start : start + batch_size]
            yield images[batch], labels[batch]
