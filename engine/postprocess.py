"""Model outputs -> answers: classification top-k, detections in image pixels, annotated images.

Labels: a list of strings; class c is labels[c + offset] (the COCO labelmap's line 0 is "???", so the
SSD's registry entry says offset 1). An index outside the list is named "class <c>", never an error.
"""

from __future__ import annotations

import colorsys
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from . import atomic
from .errors import InputError
from .model import TensorInfo


@dataclass(frozen=True)
class Prediction:
    label: str
    index: int
    score: float  # dequantized (for a softmax output: a probability)
    raw: float  # the output value as stored (the quantized integer for integer outputs)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Detection:
    label: str
    class_id: int
    score: float
    box: tuple[float, float, float, float]  # (x0, y0, x1, y1) in original image pixels, not clipped
    box_normalized: tuple[float, float, float, float]  # (x0, y0, x1, y1) / image size, as box

    def to_dict(self) -> dict:
        d = asdict(self)
        d["box"], d["box_normalized"] = list(self.box), list(self.box_normalized)
        return d


def label_for(labels: list[str] | None, index: int, offset: int = 0) -> str:
    i = int(index) + offset
    if labels is not None and 0 <= i < len(labels):
        return labels[i]
    return f"class {int(index)}"


def dequantize(values: np.ndarray, info: TensorInfo | None) -> np.ndarray:
    """Integer outputs -> float32 with the tensor's scale and zero point; float outputs unchanged."""
    values = np.asarray(values)
    if info is not None and values.dtype.kind in "iu" and info.scale > 0:
        return info.dequantize(values)
    return values.astype(np.float32)


def top_k(
    output: np.ndarray, info: TensorInfo | None, labels: list[str] | None, k: int = 1
) -> list[list[Prediction]]:
    """[N, classes] scores -> for each row the k best, best first (ties: the lower index first)."""
    out = np.asarray(output)
    if out.ndim == 1:
        out = out[None]
    if out.ndim != 2:
        out = out.reshape(out.shape[0], -1)
    if k < 1:
        raise InputError(f"top-k must be at least 1, not {k}")
    scores = dequantize(out, info)
    k = min(k, out.shape[1])
    # stable sort on the stored values keeps equal scores in index order
    order = np.argsort(-out.astype(np.float64), axis=1, kind="stable")[:, :k]
    return [
        [Prediction(label_for(labels, c), int(c), float(scores[n, c]), _scalar(out[n, c])) for c in order[n]]
        for n in range(out.shape[0])
    ]


def _scalar(v) -> float:
    v = v.item()
    return int(v) if isinstance(v, (int, np.integer)) else float(v)


def detections(
    outputs: list[np.ndarray],
    image_sizes: list[tuple[int, int]],
    labels: list[str] | None,
    label_offset: int = 0,
    score_threshold: float = 0.0,
) -> list[list[Detection]]:
    """TFLite_Detection_PostProcess outputs (boxes [N,K,4], classes [N,K], scores [N,K], count [N])
    -> for each image (size (w, h)) the detections scoring at least score_threshold, best first."""
    if len(outputs) < 4:
        raise InputError(
            f"a detection model has 4 outputs (boxes, classes, scores, count), not {len(outputs)}"
        )
    boxes, classes, scores, count = (np.asarray(o) for o in outputs[:4])
    if (
        boxes.ndim != 3
        or boxes.shape[2] != 4
        or classes.shape != boxes.shape[:2]
        or scores.shape != boxes.shape[:2]
    ):
        raise InputError(
            f"detection outputs have shapes {[list(np.shape(o)) for o in outputs[:4]]}: "
            "expected boxes [N, K, 4], classes [N, K], scores [N, K], count [N]"
        )
    if len(image_sizes) != boxes.shape[0]:
        raise InputError(f"{len(image_sizes)} image sizes for a batch of {boxes.shape[0]}")
    result = []
    for n, (w, h) in enumerate(image_sizes):
        m = min(int(np.asarray(count).reshape(-1)[n]), boxes.shape[1])
        found = []
        for i in range(m):
            s = float(scores[n, i])
            if s < score_threshold:
                continue
            ymin, xmin, ymax, xmax = (float(v) for v in boxes[n, i])
            c = int(classes[n, i])
            found.append(
                Detection(
                    label_for(labels, c, label_offset),
                    c,
                    s,
                    (xmin * w, ymin * h, xmax * w, ymax * h),
                    (xmin, ymin, xmax, ymax),
                )
            )
        found.sort(key=lambda d: -d.score)  # the op already sorts; keep it true for any model
        result.append(found)
    return result


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


# ---------------------------------------------------------------- drawing


def _color(i: int) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # old Pillow or no FreeType: the fixed bitmap font
        return ImageFont.load_default()


def image_format(path: str | os.PathLike) -> str:
    """The Pillow format for a file name's extension, or InputError."""
    fmt = Image.registered_extensions().get(Path(path).suffix.lower())
    if fmt is None:
        raise InputError(f"{path}: unknown image extension (use .png or .jpg)")
    return fmt


def _label_box(
    draw: ImageDraw.ImageDraw,
    xy: tuple[float, float],
    text: str,
    color,
    font,
    width: int,
    height: int,
    above: bool = True,
) -> float:
    """A filled label box with its text at xy: above the point (a box's caption, when it fits) or
    below it (above=False: lines stacked downwards). Returns the y just under the box."""
    l, t, r, b = draw.textbbox((0, 0), text, font=font)
    tw, th = r - l + 4, b - t + 4
    x = min(max(0.0, xy[0]), max(0.0, width - tw))
    if above and xy[1] - th >= 0:
        y = xy[1] - th
    else:
        y = min(max(0.0, xy[1]), max(0.0, height - th))
    draw.rectangle((x, y, x + tw, y + th), fill=color)
    draw.text((x + 2 - l, y + 2 - t), text, fill=(0, 0, 0), font=font)
    return y + th


def draw_detections(image: Image.Image, found: list[Detection]) -> Image.Image:
    """A copy of the image (RGB) with each detection's box and 'label score' drawn."""
    img = image.convert("RGB")
    draw = ImageDraw.Draw(img)
    w, h = img.size
    line = max(2, round(min(w, h) / 200))
    font = _font(max(11, round(min(w, h) / 32)))
    for d in sorted(found, key=lambda d: d.score):  # best drawn last, on top
        color = _color(d.class_id)
        x0, y0, x1, y1 = d.box
        box = (max(0.0, x0), max(0.0, y0), min(w - 1.0, x1), min(h - 1.0, y1))
        if box[2] > box[0] and box[3] > box[1]:
            draw.rectangle(box, outline=color, width=line)
        _label_box(draw, (box[0], box[1]), f"{d.label} {d.score:.2f}", color, font, w, h)
    return img


def draw_predictions(image: Image.Image, preds: list[Prediction]) -> Image.Image:
    """A copy of the image (RGB, enlarged when tiny) with the top predictions written in a corner."""
    img = image.convert("RGB")
    if min(img.size) < 224:  # a 28x28 digit cannot hold a caption
        f = -(-224 // min(img.size))
        img = img.resize((img.width * f, img.height * f), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(img)
    font = _font(max(11, round(min(img.size) / 16)))
    y = 0.0
    for p in preds:  # one line under the other, best first (each placed below y, never above it)
        y = _label_box(
            draw, (0, y), f"{p.label} {p.score:.3f}", (255, 255, 255), font, img.width, img.height, False
        )
        y += 2
    return img


def save_image(img: Image.Image, path: str | os.PathLike) -> None:
    """Save atomically; the format follows the extension."""
    fmt = image_format(path)
    if fmt == "JPEG" and img.mode != "RGB":
        img = img.convert("RGB")
    with atomic.atomic_path(path) as tmp:
        img.save(tmp, format=fmt)
