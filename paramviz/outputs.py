"""Writing a render to disk: the picture, an optional GIF of its progress, and a JSON sidecar.

The sidecar records every setting, the seed, each network's architecture and weights hash, the
losses and the paramviz version: enough to make the same picture again. All files of one result
are written to temporary names first and renamed only once every one of them is complete, the
sidecar last, so a failure leaves nothing at the target paths and a kill between the renames
leaves a picture without a sidecar that readers can tell apart (:func:`read_result`).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from paramviz.backbones.base import Backbone
from paramviz.errors import UserError
from paramviz.io import (
    PICTURE_FORMATS,
    atomic_path,
    file_sha256,
    json_text,
    read_json,
    save_png,
    to_json_data,
    to_uint8,
    write_png,
)
from paramviz.objectives import MAIN
from paramviz.render import RenderResult
from paramviz.version import __version__


def contact_sheet(
    images: np.ndarray,
    labels: Sequence[str] | None = None,
    columns: int | None = None,
    gap: int = 2,
) -> np.ndarray:
    """Tile an ``(N, H, W, 3)`` batch row by row on white, each tile labelled underneath.

    Labels use PIL's default font and are cut with an ellipsis to the tile width. ``columns``
    defaults to ``ceil(sqrt(N))``. Returns an ``(H', W', 3)`` float image in [0, 1].
    """
    from PIL import Image, ImageDraw, ImageFont

    images = np.asarray(images)
    n, h, w, _ = images.shape
    if labels is not None and len(labels) != n:
        raise UserError(f"{len(labels)} labels for {n} images")
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    font = ImageFont.load_default()
    label_height = (font.getbbox("Ag")[3] + 4) if labels else 0
    cell_h, cell_w = h + label_height + gap, w + gap
    sheet = Image.new("RGB", (columns * cell_w + gap, rows * cell_h + gap), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, image in enumerate(images):
        left, top = gap + (i % columns) * cell_w, gap + (i // columns) * cell_h
        sheet.paste(Image.fromarray(to_uint8(image)), (left, top))
        if labels:
            draw.text(
                (left + 1, top + h + 1), _fit(labels[i], w - 2, font), fill=(0, 0, 0), font=font
            )
    return np.asarray(sheet, dtype=np.float32) / 255.0


def _fit(text: str, width: float, font: Any) -> str:
    """``text`` shortened with an ellipsis until it is at most ``width`` pixels long."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…"


def picture(images: np.ndarray, labels: Sequence[str] | None) -> np.ndarray:
    """One image as is; a batch as a labelled contact sheet (default labels: batch indices)."""
    images = np.asarray(images)
    if images.ndim == 3:
        return images
    if len(images) == 1:
        return images[0]
    return contact_sheet(
        images, labels if labels is not None else [str(i) for i in range(len(images))]
    )


def gif_frames(result: RenderResult) -> list[tuple[int, np.ndarray]]:
    """``(step, images)`` of the snapshots in step order, then the final image if not among them."""
    frames = sorted(result.snapshots.items())
    if result.steps_run not in result.snapshots:
        frames.append((result.steps_run, result.image))
    return frames


def _parsed(text: str) -> Any:
    """Backbone metadata values are strings, some of them JSON: decode those."""
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


def network_record(backbone: Backbone) -> dict[str, Any]:
    """What identifies a network's weights: architecture, the sha256 of the ``.safetensors``
    file used (None for weights that never were a file, e.g. random ones), the sha256 of the
    checkpoint it was converted from when known, and the file's metadata."""
    metadata = {key: _parsed(value) for key, value in dict(backbone.metadata).items()}
    return {
        "arch": backbone.arch,
        "weights_sha256": metadata.get("weights_sha256") or None,
        "weights_file": metadata.get("weights_file") or None,
        "source_sha256": metadata.get("source_sha256") or None,
        "metadata": metadata,
    }


def sidecar(
    result: RenderResult,
    settings: Mapping[str, Any],
    backbones: Backbone | Mapping[str, Backbone] | None = None,
    labels: Sequence[str] | None = None,
    files: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The JSON record of a render (see the module docstring)."""
    if isinstance(backbones, Backbone):
        backbones = {MAIN: backbones}
    return {
        "paramviz_version": __version__,
        "created_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "seed": result.seed,
        "settings": to_json_data(dict(settings), "settings"),
        "networks": {name: network_record(b) for name, b in (backbones or {}).items()},
        "result": to_json_data(
            {
                "started_at": result.started_at,
                "elapsed_s": round(result.elapsed_s, 3),
                "steps_run": result.steps_run,
                "stopped_reason": result.stopped_reason,
                "final_loss": result.final_loss,
                "terms": result.terms,
                "image_shape": list(result.image.shape),
                "snapshot_steps": sorted(result.snapshots),
                "losses": np.asarray(result.losses),
            },
            "result",
        ),
        "labels": list(labels) if labels is not None else None,
        "files": dict(files or {}),
    }


def result_paths(out_path: str | os.PathLike, gif: bool = False) -> dict[str, Path]:
    """``{kind: path}`` of the files :func:`save_result` writes for ``out_path``."""
    png = Path(out_path)
    paths = {"image": png, "json": png.with_suffix(".json")}
    if gif:
        paths["gif"] = png.with_suffix(".gif")
    if len(set(paths.values())) != len(paths):
        raise UserError(f"output path {png} must not end in .json or .gif")
    return paths


def save_result(
    result: RenderResult,
    out_path: str | os.PathLike,
    settings: Mapping[str, Any],
    *,
    backbones: Backbone | Mapping[str, Backbone] | None = None,
    labels: Sequence[str] | None = None,
    gif: bool = False,
    frame_ms: int = 200,
) -> dict[str, Path]:
    """Write ``out_path`` (PNG, JPEG or WebP by its suffix), its ``.json`` sidecar and, with
    ``gif=True``, a ``.gif``.

    A batch becomes a contact sheet with one tile per unit, labelled with ``labels`` (e.g. the
    unit names). GIF frames are the snapshots plus the final image. Returns ``{kind: path}``.

    The sidecar is the result's commit record (see DESIGN.md, "Errors and files"): every file is
    written to a temporary name, then the old sidecar is removed, the pictures are renamed into
    place, and the new sidecar, which holds each picture's sha256, is renamed last. A picture
    without a sidecar, or whose bytes do not match it, is incomplete (:func:`read_result`).
    """
    paths = result_paths(out_path, gif)
    frames = gif_frames(result) if gif else []
    record = sidecar(result, settings, backbones, labels, {k: p.name for k, p in paths.items()})
    json_text(record)  # fails before anything is written
    with contextlib.ExitStack() as stack:
        # Entered first, so renamed last: the sidecar commits the result.
        sidecar_tmp = stack.enter_context(atomic_path(paths["json"]))
        pictures = {
            kind: stack.enter_context(atomic_path(path))
            for kind, path in paths.items()
            if kind != "json"
        }
        write_png(pictures["image"], picture(result.image, labels), paths["image"].suffix)
        if gif:
            _write_gif(pictures["gif"], [picture(images, labels) for _, images in frames], frame_ms)
        record["sha256"] = {kind: file_sha256(tmp) for kind, tmp in pictures.items()}
        sidecar_tmp.write_text(json_text(record), encoding="utf-8")
        paths["json"].unlink(missing_ok=True)
    return paths


def read_result(out_path: str | os.PathLike) -> dict[str, Any]:
    """The sidecar of a complete result; ``UserError`` if it is missing or does not describe the
    pictures beside it (a write that was interrupted, or files changed since)."""
    paths = result_paths(out_path)
    if not paths["json"].is_file():
        raise UserError(f"{paths['image']} has no sidecar {paths['json'].name}: it is incomplete")
    record = read_json(paths["json"])
    for kind, digest in dict(record.get("sha256") or {}).items():
        path = paths["image"].with_name(record["files"][kind])
        if not path.is_file() or file_sha256(path) != digest:
            raise UserError(f"{path} does not match its sidecar {paths['json'].name}")
    return record


def _write_gif(path: Path, frames: Sequence[np.ndarray], frame_ms: int) -> None:
    import imageio.v3 as iio

    stack = np.stack([to_uint8(frame) for frame in frames])
    with open(path, "wb") as handle:  # closed here, even on a full disk
        iio.imwrite(handle, stack, extension=".gif", duration=frame_ms, loop=0)


@dataclasses.dataclass(frozen=True)
class Result:
    """A finished job, in memory: its pictures, what made them and how the loss went.

    Nothing is on disk until :meth:`save`, which writes exactly what the command line writes. In
    Jupyter a result shows its picture (a labelled sheet for a batch) and its loss curve.
    """

    render: RenderResult
    settings: Mapping[str, Any]
    """What the sidecar records as the settings: every input and choice."""
    backbones: Mapping[str, Backbone]
    labels: tuple[str, ...] | None = None
    snapshots_at: Path | None = None
    """Where the snapshots were written as the render reached them (``snapshot_to``), if so."""

    @property
    def images(self) -> np.ndarray:
        """The rendered images ``(N, H, W, 3)`` in [0, 1]."""
        return self.render.image

    @property
    def picture(self) -> np.ndarray:
        """What :meth:`save` writes: the image, or the labelled sheet of a batch."""
        return picture(self.render.image, self.labels)

    @property
    def losses(self) -> np.ndarray:
        """The loss after each step (``-objective``)."""
        return np.asarray(self.render.losses)

    def save(self, path: str | os.PathLike) -> dict[str, Path]:
        """Write the picture (PNG, JPEG or WebP by the suffix of ``path``) with its JSON sidecar,
        and with snapshots their PNGs and a GIF; returns ``{kind: path}``."""
        path = Path(path)
        if path.suffix.lower() not in PICTURE_FORMATS:
            raise UserError(f"--output must end in {', '.join(PICTURE_FORMATS)}: {path}")
        if path != self.snapshots_at:  # not written already, as the render went
            for step, images in self.render.snapshots.items():
                save_png(snapshot_path(path, step), picture(images, self.labels))
        return save_result(
            self.render,
            path,
            self.settings,
            backbones=self.backbones,
            labels=self.labels,
            gif=bool(self.render.snapshots),
        )

    def _repr_png_(self) -> bytes:
        return png_bytes(self.picture)

    def _repr_html_(self) -> str:
        from jinja2 import Environment

        template = Environment(autoescape=True).from_string(_RESULT_HTML)
        networks = ", ".join(backbone.arch for backbone in self.backbones.values())
        return template.render(
            picture=base64.b64encode(self._repr_png_()).decode("ascii"),
            curve=loss_curve_points(self.losses),
            caption=f"{networks}: {self.render.steps_run} steps, final loss "
            f"{self.render.final_loss:.4g} ({self.render.stopped_reason})",
        )


_RESULT_HTML = """<figure style="display:flex;gap:12px;align-items:flex-start;margin:0">
<img src="data:image/png;base64,{{ picture }}" alt="the rendered picture">
{% if curve %}<svg width="240" height="120" viewBox="0 0 240 120" role="img">
<title>loss per step</title><rect width="240" height="120" fill="white" stroke="#ccc"/>
<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{{ curve }}"/></svg>{% endif %}
</figure><figcaption>{{ caption }}</figcaption>"""


def loss_curve_points(losses: np.ndarray, width: int = 240, height: int = 120) -> str:
    """The finite losses as SVG polyline points scaled into ``width`` x ``height`` ('' when
    there are fewer than two)."""
    values = np.asarray(losses, np.float64)
    values = values[np.isfinite(values)]
    if len(values) < 2:
        return ""
    low, high = float(values.min()), float(values.max())
    span = high - low or 1.0
    xs = np.linspace(4, width - 4, len(values))
    ys = height - 4 - (values - low) / span * (height - 8)
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))


def png_bytes(image: np.ndarray) -> bytes:
    """``image`` ``(H, W, 3)`` in [0, 1] as PNG bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buffer, format="PNG")
    return buffer.getvalue()


def snapshot_path(output: str | os.PathLike, step: int) -> Path:
    """Where the snapshot of ``step`` goes (``out_step00020.png`` beside ``out.png``)."""
    output = Path(output)
    return output.with_name(f"{output.stem}_step{step:05d}.png")
