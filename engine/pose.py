"""Single-pose keypoints (MoveNet [N, 1, 17, 3] = y, x, score, normalized to the input) -> named points,
drawn with the COCO skeleton. The input is the image stretched to the model's size, so coordinates
normalized to the input are normalized to the original image as well."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from .errors import InputError

KEYPOINTS = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
SKELETON = (
    (0, 1), (0, 2), (1, 3), (2, 4), (0, 5), (0, 6), (5, 7), (7, 9), (6, 8), (8, 10),
    (5, 6), (5, 11), (6, 12), (11, 12), (11, 13), (13, 15), (12, 14), (14, 16),
)  # fmt: skip
MIN_SCORE = 0.2  # points below it are reported but not drawn


def keypoints(output: np.ndarray) -> list[list[dict]]:
    """[N, 1, 17, 3] (y, x, score) -> per image 17 dicts: name, x, y (normalized), score."""
    a = np.asarray(output, np.float64)
    if a.ndim != 4 or a.shape[1:] != (1, 17, 3):
        raise InputError(f"a pose output is [N, 1, 17, 3] (y, x, score), not {list(a.shape)}")
    return [
        [
            {
                "name": name,
                "x": float(a[n, 0, k, 1]),
                "y": float(a[n, 0, k, 0]),
                "score": float(a[n, 0, k, 2]),
            }
            for k, name in enumerate(KEYPOINTS)
        ]
        for n in range(a.shape[0])
    ]


def draw(image: Image.Image, points: list[dict], min_score: float = MIN_SCORE) -> Image.Image:
    """A copy of the image (RGB) with the skeleton's lines and the keypoints scoring >= min_score."""
    img = image.convert("RGB")
    d = ImageDraw.Draw(img)
    w, h = img.size
    xy = [(p["x"] * w, p["y"] * h) for p in points]
    ok = [p["score"] >= min_score for p in points]
    width = max(2, round(min(w, h) / 150))
    for a, b in SKELETON:
        if ok[a] and ok[b]:
            d.line((xy[a], xy[b]), fill=(0, 255, 255), width=width)
    r = width + 1
    for (x, y), good in zip(xy, ok):
        if good:
            d.ellipse((x - r, y - r, x + r, y + r), fill=(255, 0, 255), outline=(0, 0, 0))
    return img
