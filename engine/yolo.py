"""YOLO detection heads: letterbox in, decode + class-wise non-maximum suppression out.

Layouts (engine.tasks): YOLOv8 [1, 4 + C, N] = (cx, cy, w, h, C class scores), no objectness;
YOLOv5 [1, N, 5 + C] = (cx, cy, w, h, objectness, C scores), score = objectness x class score.
Coordinates are in input pixels or normalized to 0..1 (Ultralytics' int8 TFLite exports normalize:
one quantization scale has to hold the scores too); normalized ones are recognized (all <= 2) and
scaled. As Ultralytics does: each box keeps its best class, candidates below the score threshold are
dropped, NMS runs per class (boxes of different classes never suppress each other), at most
`max_det` boxes are kept, and boxes are mapped back through the letterbox and clipped to the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

SCORE_THRESHOLD = 0.25
IOU_THRESHOLD = 0.45
MAX_DET = 300
MAX_CANDIDATES = 30000
FILL = 114


@dataclass(frozen=True)
class Letterbox:
    """How an image of size (w, h) sits in the model input: scaled by (sx, sy), then offset (left, top).

    Letterboxed: sx == sy (aspect kept, gray borders); stretched (plain resize): left == top == 0."""

    sx: float
    sy: float
    left: int
    top: int
    new_w: int
    new_h: int

    @classmethod
    def of(cls, size_wh: tuple[int, int], input_wh: tuple[int, int]) -> Letterbox:
        w, h = size_wh
        tw, th = input_wh
        r = min(tw / w, th / h)
        nw, nh = max(1, round(w * r)), max(1, round(h * r))
        # Ultralytics splits the padding in two, the odd pixel going right/bottom (round(d -/+ 0.1))
        left, top = round((tw - nw) / 2 - 0.1), round((th - nh) / 2 - 0.1)
        return cls(r, r, max(0, left), max(0, top), nw, nh)

    @classmethod
    def stretch(cls, size_wh: tuple[int, int], input_wh: tuple[int, int]) -> Letterbox:
        return cls(input_wh[0] / size_wh[0], input_wh[1] / size_wh[1], 0, 0, input_wh[0], input_wh[1])

    def to_image(self, boxes: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
        """[K, 4] (x0, y0, x1, y1) in input pixels -> original image pixels, clipped to the image."""
        out = np.array(boxes, np.float64, copy=True).reshape(-1, 4)
        out[:, [0, 2]] = ((out[:, [0, 2]] - self.left) / self.sx).clip(0, size_wh[0])
        out[:, [1, 3]] = ((out[:, [1, 3]] - self.top) / self.sy).clip(0, size_wh[1])
        return out


def letterbox(img: Image.Image, input_wh: tuple[int, int], fill: int = FILL, resample=None) -> Image.Image:
    """The image scaled to fit input_wh with its aspect ratio kept, centered on a gray (fill) canvas."""
    lb = Letterbox.of(img.size, input_wh)
    resized = img if img.size == (lb.new_w, lb.new_h) else img.resize((lb.new_w, lb.new_h), resample)
    canvas = Image.new(img.mode, input_wh, (fill,) * len(img.getbands()) if img.mode != "L" else fill)
    canvas.paste(resized, (lb.left, lb.top))
    return canvas


@dataclass(frozen=True)
class Boxes:
    """Decoded detections of one image: xyxy [K, 4] (input pixels), scores [K], classes [K]."""

    xyxy: np.ndarray
    scores: np.ndarray
    classes: np.ndarray


def candidates(pred: np.ndarray, head: str, input_wh: tuple[int, int], score_threshold: float) -> Boxes:
    """One image's head output (float, without batch axis) -> boxes scoring at least the threshold."""
    p = np.asarray(pred, np.float32)
    if head == "yolov8":
        p = p.T  # [N, 4 + C]
        cls_scores = p[:, 4:]
    elif head == "yolov5":
        obj = p[:, 4:5]
        keep = obj[:, 0] >= score_threshold
        p, obj = p[keep], obj[keep]
        cls_scores = p[:, 5:] * obj
    else:
        raise ValueError(f"unknown YOLO head {head!r}")
    if cls_scores.shape[1] == 0:
        return Boxes(np.zeros((0, 4)), np.zeros(0, np.float32), np.zeros(0, np.int64))
    classes = np.argmax(cls_scores, axis=1)
    scores = cls_scores[np.arange(len(p)), classes]
    keep = scores >= score_threshold
    p, scores, classes = p[keep], scores[keep], classes[keep]
    if len(p) > MAX_CANDIDATES:
        top = np.argsort(-scores, kind="stable")[:MAX_CANDIDATES]
        p, scores, classes = p[top], scores[top], classes[top]
    cxcywh = p[:, :4].astype(np.float64)
    if len(cxcywh) and np.abs(cxcywh).max() <= 2.0:  # normalized coordinates
        cxcywh *= np.array([input_wh[0], input_wh[1], input_wh[0], input_wh[1]], np.float64)
    half = cxcywh[:, 2:] / 2
    xyxy = np.concatenate([cxcywh[:, :2] - half, cxcywh[:, :2] + half], axis=1)
    return Boxes(xyxy, scores.astype(np.float32), classes.astype(np.int64))


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of a [K, 4] with every box of b [M, 4] (x0, y0, x1, y1)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def nms(boxes: Boxes, iou_threshold: float, max_det: int = MAX_DET) -> Boxes:
    """Greedy class-wise NMS: best first, a box is dropped when its IoU with a kept box of its class
    exceeds iou_threshold. Equal scores keep the earlier box first."""
    order = np.argsort(-boxes.scores, kind="stable")
    xyxy, classes = boxes.xyxy[order], boxes.classes[order]
    alive = np.ones(len(order), bool)
    kept: list[int] = []
    for i in range(len(order)):
        if not alive[i]:
            continue
        kept.append(i)
        if len(kept) == max_det:
            break
        rest = np.nonzero(alive[i + 1 :])[0] + i + 1
        rest = rest[classes[rest] == classes[i]]
        if len(rest):
            alive[rest[iou_matrix(xyxy[i : i + 1], xyxy[rest])[0] > iou_threshold]] = False
    sel = order[kept]
    return Boxes(boxes.xyxy[sel], boxes.scores[sel], boxes.classes[sel])


def decode(
    pred: np.ndarray,
    head: str,
    input_wh: tuple[int, int],
    score_threshold: float = SCORE_THRESHOLD,
    iou_threshold: float = IOU_THRESHOLD,
    max_det: int = MAX_DET,
) -> Boxes:
    """candidates + nms for one image."""
    return nms(candidates(pred, head, input_wh, score_threshold), iou_threshold, max_det)
