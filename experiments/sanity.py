"""Is a neuron's visualisation processed like the natural images that drive the neuron?

Geirhos et al., "Don't trust your eyes: on the (un)reliability of feature visualizations" (ICML
2024) show that a picture can drive a unit as strongly as its natural drivers while the network
gets there by a different route: a convincing-looking visualisation then says nothing about what
the unit does on natural images. Their sanity check compares the network's processing of the
visualisation, layer by layer along the path up to the unit, with its processing of natural images.

Here the processing at a layer is summarised by the per-channel spatial means of its activations
(the "signature"), z-scored per channel over a pool of natural crops. For a unit ``(layer,
channel)`` the crops that drive it most (the top ``k``) give a reference signature; a picture's
*path similarity* is the mean over the path's layers (the backbone's style-preset layers up to the
unit's, plus the unit's own) of the Pearson correlation between its signature and the reference.

What the numbers mean (:class:`PathCheck`): 1 is processed exactly like the natural drivers;
``natural`` is what the next ``k`` natural drivers reach (the ceiling a natural image gets; below 1,
since natural drivers differ among themselves), ``unrelated`` what the pool's other crops reach (the
baseline: around 0). ``normalised`` rescales a picture's score so that the natural drivers are 1 and
unrelated crops 0: a visualisation near 0 activates the unit without being processed like anything
that activates it in natural images. Where ``natural`` is not clearly above ``unrelated`` the unit's
natural drivers share no path (on Lite0 at 64 px, about 1 channel in 10 of ``block4``), the check
has nothing to compare with and ``normalised`` is noise.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from paramviz.backbones import Backbone, style_preset
from paramviz.errors import UserError
from paramviz.experiments.datasets import to_rgb, wallpaper_files, wallpaper_name

Unit = tuple[str, int]  # (layer name, channel index)

SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "retina", "stereo_motorcycle")
"""scikit-image's bundled colour photographs of objects and scenes (its other colour pictures are
textures, a logo, a colour wheel or microscopy)."""

CROP_SCALE = 2
"""A photo's short side is this many crop sides: a crop shows an object part, not a whole scene."""


@dataclasses.dataclass(frozen=True)
class NaturalCrops:
    """A pool of natural image crops: ``images`` (N, size, size, 3) float32 in [0, 1], and one
    ``sources`` label per crop (``"photo@top,left"``) to tell where a top-ranked crop comes from."""

    images: np.ndarray
    sources: tuple[str, ...]


def natural_crops(size: int, count: int, seed: int = 0) -> NaturalCrops:
    """``count`` random ``size`` px crops of offline photographs (scikit-image's and the Debian
    wallpapers that are installed), dealt out over the photos in a random order so that the pool
    is as varied as the photos allow; deterministic for ``seed``."""
    names = list(photo_loaders())
    rng = np.random.default_rng(seed)
    # every photo once before any twice; the crop count per photo differs by at most one
    chosen = [names[i % len(names)] for i in rng.permutation(max(count, len(names)))[:count]]
    needed = list(dict.fromkeys(chosen))
    with ThreadPoolExecutor() as threads:  # decoding the large wallpapers is most of the time
        scaled = threads.map(functools.partial(scaled_photo, side=CROP_SCALE * size), needed)
        photos = dict(zip(needed, scaled, strict=True))
    images, sources = [], []
    for name in chosen:
        photo = photos[name]
        top = int(rng.integers(photo.shape[0] - size + 1))
        left = int(rng.integers(photo.shape[1] - size + 1))
        images.append(photo[top : top + size, left : left + size].astype(np.float32) / 255)
        sources.append(f"{name}@{top},{left}")
    return NaturalCrops(np.stack(images), tuple(sources))


@functools.lru_cache(maxsize=1)
def photo_loaders() -> dict[str, Callable[[int], Image.Image]]:
    """``{label: load}`` of every photo; ``load(side)`` opens it as an RGB(A) picture, decoded at
    a reduced size where the format allows, short side still at least ``side``. Wallpapers only
    where installed."""
    import skimage.data

    def skimage_photo(name: str, _side: int) -> Image.Image:  # small already
        pixels = getattr(skimage.data, name)()
        return Image.fromarray(pixels[0] if name == "stereo_motorcycle" else pixels)

    def wallpaper(path: Path, side: int) -> Image.Image:
        with Image.open(path) as image:
            scale = side / min(image.size)
            image.draft("RGB", (math.ceil(image.width * scale), math.ceil(image.height * scale)))
            return image.convert("RGBA" if image.has_transparency_data else "RGB")

    loaders = {name: functools.partial(skimage_photo, name) for name in SKIMAGE_PHOTOS}
    for path in wallpaper_files():
        # one picture in several formats (Sway's "..._768x1024_Portrait") counts once: a crop of
        # one copy among the top drivers and of another among the held-out ones would be a leak
        name = re.sub(r"(_\d+x\d+)?(_Portrait)?$", "", wallpaper_name(path))
        loaders.setdefault(name, functools.partial(wallpaper, path))
    return loaders


@functools.lru_cache(maxsize=256)
def scaled_photo(name: str, side: int) -> np.ndarray:
    """Photo ``name`` as uint8 RGB with short side ``side``, cached: decoding the large
    wallpapers is what a crop pool costs, and tests and experiments draw several pools."""
    image = photo_loaders()[name](side)
    scale = side / min(image.size)
    size = (max(side, round(image.width * scale)), max(side, round(image.height * scale)))
    image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    photo = np.round(to_rgb(np.asarray(image)) * 255).astype(np.uint8)  # alpha over mid-grey
    photo.setflags(write=False)
    return photo


def path_layers(backbone: Backbone, layer: str) -> tuple[str, ...]:
    """The style-preset layers at or before ``layer``, and ``layer``: the stages of processing
    that a picture must share with the natural drivers to be driving the unit the same way."""
    names = backbone.layer_names
    if layer not in names:
        raise UserError(f"{backbone.arch} has no layer {layer!r} (layers: {', '.join(names)})")
    stages = set(style_preset(backbone)[0]) | {layer}
    return tuple(name for name in names[: names.index(layer) + 1] if name in stages)


def path_signatures(
    backbone: Backbone, images: np.ndarray, layers: Sequence[str], batch: int = 32
) -> dict[str, np.ndarray]:
    """``{layer: (N, C)}`` spatial means of the activations: what a layer computes on a picture,
    independent of where in the picture it happens. Batched, so a large pool fits in memory."""
    layers = tuple(layers)
    parts: dict[str, list[np.ndarray]] = {layer: [] for layer in layers}
    for start in range(0, len(images), batch):
        activations = backbone.features(images[start : start + batch], layers)
        for layer in layers:
            parts[layer].append(np.asarray(activations[layer].mean(axis=(1, 2))))
    return {layer: np.concatenate(parts[layer]) for layer in layers}


def path_similarity(
    signature: Mapping[str, np.ndarray],
    reference: Mapping[str, np.ndarray],
    mean: Mapping[str, np.ndarray],
    std: Mapping[str, np.ndarray],
) -> np.ndarray:
    """``(P,)``: per picture, the mean over ``signature``'s layers of the Pearson correlation
    between its channel means ``(P, C)`` and the mean of ``reference``'s ``(k, C)``, both z-scored
    with the crop pool's per-channel ``mean`` and ``std``. Centring on the pool matters: post-ReLU
    channel means are all positive and would otherwise correlate with anything; scaling keeps a
    few loud channels from deciding alone. Channels constant over the pool are left out."""
    scores = []
    for layer, channels in signature.items():
        keep = std[layer] > 0
        scale, centre = std[layer][keep], mean[layer][keep]
        picture = (np.asarray(channels)[..., keep] - centre) / scale
        target = (np.mean(reference[layer], axis=0)[keep] - centre) / scale
        picture = picture - picture.mean(axis=-1, keepdims=True)
        target = target - target.mean()
        norms = np.linalg.norm(picture, axis=-1) * np.linalg.norm(target)
        scores.append(picture @ target / np.maximum(norms, np.finfo(np.float32).tiny))
    return np.mean(scores, axis=0)


@dataclasses.dataclass(frozen=True)
class PathCheck:
    """A unit's pictures' path similarities, with the natural ceiling and unrelated baseline."""

    pictures: np.ndarray  # (P,) path similarity of each checked picture
    natural: float  # held-out natural drivers (crops ranked k+1..2k, against the top k)
    unrelated: float  # the pool's crops outside the top 2k
    drivers: np.ndarray = dataclasses.field(default_factory=lambda: np.empty(0, int))
    """The pool's crops by how strongly they drive the unit, strongest first (what
    :func:`check_units` ranked them by, so a caller can show them without a second pass)."""

    @property
    def normalised(self) -> np.ndarray:
        """``(P,)`` scores on the scale unrelated crops = 0, natural drivers = 1."""
        return (self.pictures - self.unrelated) / (self.natural - self.unrelated)


def top_crops(backbone: Backbone, units: Sequence[Unit], crops: NaturalCrops, k: int) -> np.ndarray:
    """``(U, k)`` indices of the crops that drive each unit most (spatial-mean activation, the
    quantity a channel visualisation maximises), strongest first."""
    layers = tuple(dict.fromkeys(layer for layer, _ in units))
    return ranked_crops(path_signatures(backbone, crops.images, layers), units)[:, :k]


def ranked_crops(signatures: Mapping[str, np.ndarray], units: Sequence[Unit]) -> np.ndarray:
    """``(U, N)`` crop indices by decreasing spatial-mean activation of each unit (stable)."""
    return np.stack(
        [np.argsort(-signatures[layer][:, channel], kind="stable") for layer, channel in units]
    )


def check_units(
    backbone: Backbone,
    units: Sequence[Unit],
    pictures: np.ndarray,
    crops: NaturalCrops,
    k: int = 4,
) -> list[PathCheck]:
    """One :class:`PathCheck` per unit for its pictures ``(U, P, H, W, 3)`` (or one picture per
    unit, ``(U, H, W, 3)``). The pool's signatures are computed once for every path's layers, and
    the pictures in one batch, so checking many units costs little more than checking one."""
    pictures = np.asarray(pictures, np.float32)
    if pictures.ndim == 4:
        pictures = pictures[:, None]
    if pictures.ndim != 5 or len(pictures) != len(units):
        raise UserError(f"pictures {pictures.shape}: expected (U, P, H, W, 3), U = {len(units)}")
    if len(crops.images) <= 2 * k:
        raise UserError(f"{len(crops.images)} crops: need more than 2k = {2 * k} for a baseline")
    paths = [path_layers(backbone, layer) for layer, _ in units]
    layers = tuple(name for name in backbone.layer_names if any(name in path for path in paths))
    pool = path_signatures(backbone, crops.images, layers)
    mean = {layer: values.mean(axis=0) for layer, values in pool.items()}
    std = {layer: values.std(axis=0) for layer, values in pool.items()}
    checked = path_signatures(backbone, pictures.reshape(-1, *pictures.shape[2:]), layers)
    per_unit = pictures.shape[1]
    checks = []
    for index, (path, ranked) in enumerate(zip(paths, ranked_crops(pool, units), strict=True)):
        score = functools.partial(
            path_similarity, reference=rows(pool, path, ranked[:k]), mean=mean, std=std
        )
        own = slice(index * per_unit, (index + 1) * per_unit)
        checks.append(
            PathCheck(
                pictures=score(rows(checked, path, own)),
                natural=float(score(rows(pool, path, ranked[k : 2 * k])).mean()),
                unrelated=float(score(rows(pool, path, ranked[2 * k :])).mean()),
                drivers=ranked,
            )
        )
    return checks


def rows(
    signatures: Mapping[str, np.ndarray], layers: Sequence[str], index: slice | np.ndarray
) -> dict[str, np.ndarray]:
    """The signatures of some pictures, at some layers."""
    return {layer: signatures[layer][index] for layer in layers}
