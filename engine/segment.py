"""Segmentation outputs -> class maps, per-class pixel fractions, a color overlay with a legend, a mask file.

The model's map covers its input, which is the image resized to H x W (aspect not kept), so the map is
stretched back to the original size with nearest-neighbour sampling. Fractions are counted on the
model's own map (what the model says, independent of the picture's size).
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageDraw

from . import atomic
from .errors import InputError
from .postprocess import _color, _font, label_for


def class_maps(output: np.ndarray, head: str) -> np.ndarray:
    """[N, H, W] class ids from an ARG_MAX output [N, H, W] (or [N, H, W, 1]) or logits [N, H, W, C]."""
    a = np.asarray(output)
    if head == "logits" and a.ndim == 4 and a.shape[3] > 1:
        return np.argmax(a, axis=3).astype(np.int64)
    if a.ndim == 4 and a.shape[3] == 1:
        a = a[..., 0]
    if a.ndim != 3:
        raise InputError(f"a segmentation output is [N, H, W] or [N, H, W, C], not {list(a.shape)}")
    return a.astype(np.int64)


def fractions(cmap: np.ndarray, labels: list[str] | None) -> list[dict]:
    """Per class present: label, class_id, fraction of pixels; largest first (ties: lower id first)."""
    ids, counts = np.unique(cmap, return_counts=True)
    order = sorted(range(len(ids)), key=lambda k: (-counts[k], ids[k]))
    total = cmap.size
    return [
        {
            "label": label_for(labels, int(ids[k])),
            "class_id": int(ids[k]),
            "fraction": float(counts[k] / total),
        }
        for k in order
    ]


def to_size(cmap: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """A class map stretched to (w, h) by nearest-neighbour sampling (pixel centers)."""
    h, w = cmap.shape
    ys = np.minimum(((np.arange(size_wh[1]) + 0.5) * h / size_wh[1]).astype(np.int64), h - 1)
    xs = np.minimum(((np.arange(size_wh[0]) + 0.5) * w / size_wh[0]).astype(np.int64), w - 1)
    return cmap[ys[:, None], xs[None, :]]


def _palette(n: int) -> np.ndarray:
    colors = np.array([(0, 0, 0)] + [_color(i) for i in range(1, max(n, 1))], np.uint8)
    return colors


def overlay(image: Image.Image, cmap: np.ndarray, summary: list[dict], alpha: float = 0.55) -> Image.Image:
    """The image (RGB) with each non-background class (id 0 is background) tinted, and a legend."""
    img = image.convert("RGB")
    full = to_size(cmap, img.size)
    top = int(full.max()) + 1 if full.size else 1
    colors = _palette(top)
    base = np.asarray(img, np.float32)
    tint = colors[np.clip(full, 0, top - 1)].astype(np.float32)
    mask = (full > 0)[..., None]
    mixed = np.where(mask, base * (1 - alpha) + tint * alpha, base)
    out = Image.fromarray(np.clip(mixed + 0.5, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(out)
    font = _font(max(11, round(min(out.size) / 32)))
    y = 2
    for s in summary:
        text = f"{s['label']} {100 * s['fraction']:.1f}%"
        l, t, r, b = draw.textbbox((0, 0), text, font=font)
        th = b - t + 4
        sw = th  # a square swatch of the class color, then the text on white
        draw.rectangle(
            (2, y, 2 + sw, y + th), fill=tuple(int(c) for c in colors[min(s["class_id"], top - 1)])
        )
        draw.rectangle((4 + sw, y, 4 + sw + r - l + 4, y + th), fill=(255, 255, 255))
        draw.text((6 + sw - l, y + 2 - t), text, fill=(0, 0, 0), font=font)
        y += th + 2
    return out


def save_mask(cmap: np.ndarray, path: str | os.PathLike) -> None:
    """The class map as a PNG whose pixel values are the class ids (palette PNG, as PASCAL VOC masks:
    viewers show colors, np.asarray(Image.open(path)) gives the ids); over 255 classes: 16-bit gray."""
    if not str(path).lower().endswith(".png"):
        raise InputError(f"--mask-out {path}: the class map is written as .png")
    if cmap.size and cmap.min() < 0:
        raise InputError("negative class ids cannot be stored in a mask")
    if cmap.size == 0 or cmap.max() < 256:
        img = Image.fromarray(cmap.astype(np.uint8), "P")
        img.putpalette(_palette(256).reshape(-1).tolist())
    else:
        img = Image.fromarray(cmap.astype(np.uint16), "I;16")
    with atomic.atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
